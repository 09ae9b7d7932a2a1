"""Bulk inference with Apache Beam: a text servable over many text files, to Parquet.

  pip install .[beam]     (apache-beam is not in the core install)

  TextServableHandler(model_path, signature=...)   a RunInference ModelHandler:
      load_model() imports tensorflow_text (the servables' tokenizer ops) and
      tf.saved_model.load(model_path); run_inference() calls the named signature
      on a batch of strings; one bad element does not fail its batch (the batch
      is retried element by element and the bad one carries its error).
  batch_predict(model=, input_pattern=, output_prefix=, ...) -> BatchResult
      the `bert-hub-export batch-predict` pipeline:

  files matching GLOB -> lines (id = "file:line", or JSON lines with --text-field
  and --id-field) -> RunInference(KeyedModelHandler(TextServableHandler)) ->
  PREFIX-SSSSS-of-NNNNN.parquet: columns id, text and each output of the
  signature (float32 [D] -> list<float>, [S, H] -> list<list<float>>, strings
  as UTF-8 text). Bad lines (not UTF-8, not JSON, no such field, a text the
  signature refuses) are counted and written to PREFIX-errors-*.jsonl
  ({"id", "error", "line"}), never a failed pipeline.

The signature must take one string tensor [B] (serving_default of the
text-embedding and text-classifier servables, their prompt signatures,
token_embeddings): checked from saved_model.pb before the pipeline starts.
Runs on any Beam runner; DirectRunner by default, in processes with
--direct_num_workers N (README "Bulk inference").
"""
import dataclasses
import json
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence

from bert_hub.errors import BertHubError

try:  # the beam extra; without it, batch_predict and the handler say how to install it
  from apache_beam.ml.inference.base import ModelHandler, PredictionResult
except ImportError:
  ModelHandler, PredictionResult = object, None

log = logging.getLogger("bert_hub")
NAMESPACE = "bert_hub"  # the Beam metrics' namespace
ERROR_KEY = "__error__"
# SignatureDef DataType enum -> (numpy-free) column kind.
_DT_STRING, _DT_FLOAT, _DT_INT32, _DT_INT64, _DT_DOUBLE = 7, 1, 3, 9, 2


def _require_beam():
  if PredictionResult is None:
    raise BertHubError(
        "apache-beam is not installed", expected="the beam extra",
        received="no module apache_beam", fix="pip install '.[beam]' (or "
        "pip install apache-beam)")


@dataclasses.dataclass(frozen=True)
class SignatureColumns:
  """What a signature takes and gives, from saved_model.pb (no model loaded)."""
  input_name: str
  outputs: Dict[str, tuple]  # name -> (DataType enum, rank without the batch axis)


def signature_columns(model_path: str, signature: str) -> SignatureColumns:
  from export.serving import files  # pylint: disable=g-import-not-at-top
  sig = files.signature_def(model_path, signature)
  inputs = dict(sig.inputs)
  strings = [n for n, t in inputs.items() if t.dtype == _DT_STRING
             and not t.tensor_shape.unknown_rank and len(t.tensor_shape.dim) == 1]
  if len(inputs) != 1 or len(strings) != 1:
    raise BertHubError(
        f"signature {signature!r} does not take one batch of strings",
        expected="one string input of shape [B] (e.g. serving_default of a "
        "text-embedding or text-classifier export)",
        received=", ".join(f"{n} (dtype {t.dtype}, rank {len(t.tensor_shape.dim)})"
                           for n, t in sorted(inputs.items())),
        fix="pass --signature with a one-sentence signature (bert-hub-export inspect "
        "lists them)")
  outputs = {}
  for name, t in sorted(sig.outputs.items()):
    if t.dtype not in (_DT_STRING, _DT_FLOAT, _DT_INT32, _DT_INT64, _DT_DOUBLE):
      raise BertHubError(f"output {name!r} of {signature!r} has no Parquet column type",
                         expected="float, int or string outputs",
                         received=f"DataType {t.dtype}",
                         fix="pass another --signature")
    outputs[name] = (t.dtype, max(len(t.tensor_shape.dim) - 1, 0))
  return SignatureColumns(input_name=strings[0], outputs=outputs)


def parquet_schema(columns: SignatureColumns):
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  scalar = {_DT_STRING: pa.string(), _DT_FLOAT: pa.float32(), _DT_DOUBLE: pa.float64(),
            _DT_INT32: pa.int32(), _DT_INT64: pa.int64()}
  fields = [pa.field("id", pa.string()), pa.field("text", pa.string())]
  for name, (dtype, rank) in columns.outputs.items():
    kind = scalar[dtype]
    for _ in range(rank):
      kind = pa.list_(kind)
    fields.append(pa.field(name, kind))
  return pa.schema(fields)


class TextServableHandler(ModelHandler):
  """RunInference over a text servable's one-string signature (module docstring)."""

  def __init__(self, model_path: str, *, signature: str = "serving_default",
               input_name: str = "sentences", max_batch_size: int = 64):
    _require_beam()
    super().__init__(min_batch_size=1, max_batch_size=max_batch_size)
    self._model_path, self._signature = model_path, signature
    self._input_name = input_name

  def load_model(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    return tf.saved_model.load(self._model_path)

  def _call(self, model, texts: Sequence[str]) -> List[Dict[str, Any]]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    out = model.signatures[self._signature](
        **{self._input_name: tf.constant(list(texts), tf.string)})
    out = {k: v.numpy() for k, v in out.items()}
    return [{k: v[i] for k, v in out.items()} for i in range(len(texts))]

  def run_inference(self, batch, model, inference_args=None):
    del inference_args
    try:
      rows = self._call(model, batch)
    except Exception:  # pylint: disable=broad-except  (find the bad element)
      rows = []
      for text in batch:
        try:
          rows += self._call(model, [text])
        except Exception as e:  # pylint: disable=broad-except
          rows.append({ERROR_KEY: f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
    return [PredictionResult(text, row) for text, row in zip(batch, rows)]

  def get_num_bytes(self, batch) -> int:
    return sum(len(t.encode("utf-8")) for t in batch)

  def get_metrics_namespace(self) -> str:
    return NAMESPACE


# ---------------------------------------------------------------- lines in


def parse_lines(file_name: str, data: bytes, *, text_field: Optional[str],
                id_field: Optional[str]) -> Iterable[dict]:
  """The records of one file: {"id", "text"} or {"id", "error", "line"}.

  Lines are split on "\\n" ("\\r\\n" accepted); a final empty line is not a record.
  """
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  for number, raw in enumerate(lines, start=1):
    where = f"{file_name}:{number}"
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      yield dict(id=where, error=f"not UTF-8 at byte {e.start}", line=repr(raw[:200]))
      continue
    if text_field is None:
      yield dict(id=where, text=line)
      continue
    try:
      record = json.loads(line)
    except ValueError as e:
      yield dict(id=where, error=f"not JSON: {e}", line=line[:200])
      continue
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
      yield dict(id=where, error=f"no string field {text_field!r}", line=line[:200])
      continue
    if id_field is not None and record.get(id_field) is None:
      yield dict(id=where, error=f"no field {id_field!r}", line=line[:200])
      continue
    yield dict(id=where if id_field is None else str(record[id_field]),
               text=record[text_field])


def to_row(key: str, result, columns: SignatureColumns):
  """(id, PredictionResult) -> a Parquet row, or an error record."""
  inference = result.inference
  if ERROR_KEY in inference:
    return False, dict(id=key, error=inference[ERROR_KEY], line=result.example[:200])
  row = {"id": key, "text": result.example}
  for name, (dtype, _) in columns.outputs.items():
    value = inference[name]
    if dtype == _DT_STRING:
      value = (value.decode("utf-8", "replace") if isinstance(value, bytes)
               else [v.decode("utf-8", "replace") for v in value.tolist()])
    else:
      value = value.tolist()
    row[name] = value
  return True, row


class _Progress:
  """Logs, in each worker process, every EVERY elements predicted."""
  EVERY = 1000

  def __init__(self):
    self.count = 0

  def tick(self):
    self.count += 1
    if self.count % self.EVERY == 0:
      log.warning("[batch-predict] this worker: %d elements predicted", self.count)


@dataclasses.dataclass
class BatchResult:
  counters: Dict[str, int]  # lines_read, predicted, bad_lines
  output_prefix: str
  errors_prefix: str


def batch_predict(*, model: str, input_pattern: str, output_prefix: str,
                  signature: str = "serving_default", text_field: Optional[str] = None,
                  id_field: Optional[str] = None, max_batch_size: int = 64,
                  pipeline_args: Sequence[str] = (), report=print) -> BatchResult:
  """Runs the batch-predict pipeline (module docstring) and waits for it."""
  _require_beam()
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.io import fileio  # pylint: disable=g-import-not-at-top
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  from apache_beam.ml.inference.base import KeyedModelHandler, RunInference  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions  # pylint: disable=g-import-not-at-top
  from export.serving.files import saved_model_dir  # pylint: disable=g-import-not-at-top
  if id_field is not None and text_field is None:
    raise BertHubError("--id-field without --text-field", expected="JSON lines: "
                       "--text-field F (and optionally --id-field F)",
                       received=f"--id-field {id_field}",
                       fix="add --text-field, or drop --id-field for text lines")
  model = str(saved_model_dir(model))
  columns = signature_columns(model, signature)
  try:
    matched = FileSystems.match([input_pattern])[0].metadata_list
  except Exception:  # pylint: disable=broad-except  (BeamIOError: e.g. no such folder)
    matched = []
  if not matched:
    raise BertHubError("no input files", expected="files matching --input",
                       received=repr(input_pattern), fix="check the --input glob")
  schema = parquet_schema(columns)
  options = PipelineOptions(list(pipeline_args))
  direct = options.view_as(DirectOptions)
  if direct.direct_num_workers and direct.direct_num_workers > 1 and (
      "--direct_running_mode" not in " ".join(pipeline_args)):
    direct.direct_running_mode = "multi_processing"
  handler = KeyedModelHandler(TextServableHandler(
      model, signature=signature, input_name=columns.input_name,
      max_batch_size=max_batch_size))
  errors_prefix = output_prefix + "-errors"
  report(f"[batch-predict] {len(matched)} file(s) -> {output_prefix}-*.parquet "
         f"({signature}: {', '.join(columns.outputs)})")
  lines_read = beam.metrics.Metrics.counter(NAMESPACE, "lines_read")
  predicted = beam.metrics.Metrics.counter(NAMESPACE, "predicted")
  bad_lines = beam.metrics.Metrics.counter(NAMESPACE, "bad_lines")

  def read(readable):
    n = bad = 0
    for record in parse_lines(readable.metadata.path, readable.read(),
                              text_field=text_field, id_field=id_field):
      lines_read.inc()
      n += 1
      if "error" in record:
        bad += 1
        bad_lines.inc()
        yield beam.pvalue.TaggedOutput("bad", record)
      else:
        yield (record["id"], record["text"])
    log.warning("[batch-predict] read %s: %d lines, %d bad", readable.metadata.path, n, bad)

  progress = _Progress()

  def split(keyed):
    ok, row = to_row(keyed[0], keyed[1], columns)
    progress.tick()
    if ok:
      predicted.inc()
      yield row
    else:
      bad_lines.inc()
      yield beam.pvalue.TaggedOutput("bad", row)

  with beam.Pipeline(options=options) as p:
    records = (p | "Match" >> fileio.MatchFiles(input_pattern)
               | "Open" >> fileio.ReadMatches()
               | "Lines" >> beam.FlatMap(read).with_outputs("bad", main="good"))
    results = (records.good | "Spread" >> beam.Reshuffle()
               | "Predict" >> RunInference(handler)
               | "Rows" >> beam.FlatMap(split).with_outputs("bad", main="rows"))
    _ = results.rows | "Parquet" >> beam.io.WriteToParquet(
        output_prefix, schema, file_name_suffix=".parquet")
    _ = ((records.bad, results.bad) | "Bad" >> beam.Flatten()
         | "Json" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
         | "Errors" >> beam.io.WriteToText(errors_prefix, file_name_suffix=".jsonl"))
  counters = {name: 0 for name in ("lines_read", "predicted", "bad_lines")}
  for counter in p.result.metrics().query(
      beam.metrics.MetricsFilter().with_namespace(NAMESPACE))["counters"]:
    if counter.key.metric.name in counters:
      counters[counter.key.metric.name] += counter.committed or counter.attempted or 0
  report(f"[batch-predict] done: {counters['lines_read']} lines read, "
         f"{counters['predicted']} predicted, {counters['bad_lines']} bad "
         f"(see {errors_prefix}-*.jsonl)")
  return BatchResult(counters=counters, output_prefix=output_prefix,
                     errors_prefix=errors_prefix)
