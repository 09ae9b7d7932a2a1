"""The warmup file every export writes into `assets.extra/`, and its requests.

TF Serving replays `DIR/<version>/assets.extra/tf_serving_warmup_requests`
(TFRecord of PredictionLog) when it loads a version, before it marks the
version available, so the first user request does not pay for building the
graph's executors and allocating its buffers. A request that fails there makes
the server refuse the version, so every request is checked against the
signature when written (write_warmup_requests) and run by the tests in a TF1
session as the server runs it.

The requests of each export:
  encoder_requests(config, version)   ids of a padded two-segment batch, at
                                      seq_length 128 (or max_position_embeddings)
  preprocessing_requests()            {"sentences": [...]}
  (the text-embedding export builds its own, for each of its signatures, from
  SENTENCES and SECOND_SENTENCES: export/kinds/text_embedding.py warmup_requests)
  write(stage, requests, *, output_dir, report)   what the exporters call
The file, for any SavedModel:
  write_warmup_requests(*, export_dir, requests, signature_name, model_name) -> str
  read_warmup_requests(path) -> list[dict[str, np.ndarray]]
"""
import os
import pathlib
from typing import Any, Mapping, Sequence

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from bert_hub.errors import BertHubError
from export.serving import files

WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses a warmup file with more records.

# Real text: a short sentence, a long one (packed to seq_length, truncated if
# it is longer), punctuation, non-ASCII, and the empty string.
SENTENCES = (
    "Hello, world!",
    "BERT turns sentences into vectors that a server can return in one request.",
    "Café, naïve, straße; 中国人 — “quotes” and emoji 🙂.",
    "",
)
SECOND_SENTENCES = (
    "Greetings to everyone.",
    "TF Serving replays these requests before the model takes traffic.",
    "Accents and other scripts are part of the warmup too.",
    "The first segment of this pair is empty.",
)
# A typical client seq_length; exports with a smaller max_position_embeddings
# use that instead.
ENCODER_SEQ_LENGTH = 128


def _strings(values) -> np.ndarray:
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def encoder_requests(config, version) -> list[dict[str, np.ndarray]]:
  """Two requests (batch 1 and 4) for an encoder's `serving_default`.

  Args:
    config: the encoder's BertConfig.
    version: its export/versions.py Version (for the input names: v1 and v2
      call the segment ids `segment_ids`).
  """
  from bert_hub.encoder import INPUT_NAMES, sample_inputs  # pylint: disable=g-import-not-at-top
  seq_length = min(ENCODER_SEQ_LENGTH, config.max_position_embeddings)
  requests = []
  for batch in (1, 4):
    inputs = sample_inputs(config, batch=batch, seq_length=seq_length, seed=batch)
    requests.append({name: inputs[canonical]
                     for name, canonical in zip(version.input_names, INPUT_NAMES)})
  return requests


def preprocessing_requests() -> list[dict[str, np.ndarray]]:
  """Two requests (batch 1 and all of SENTENCES) for `serving_default`."""
  return [{"sentences": _strings(SENTENCES[:1])}, {"sentences": _strings(SENTENCES)}]


def model_name(output_dir: str) -> str:
  """The ModelSpec name in the records: DIR's name (TF Serving does not check it)."""
  return os.path.basename(os.path.abspath(output_dir)) or "model"


def write(stage: str, requests: Sequence[Mapping] | Mapping[str, Sequence], *,
          output_dir: str, report) -> str:
  """Writes the warmup file into the staged SavedModel `stage`; returns its path.

  `requests` as for write_warmup_requests; `report(stage_name, message)` is told
  how many; the ModelSpec name is model_name(output_dir).
  """
  count = (sum(len(r) for r in requests.values()) if isinstance(requests, Mapping)
           else len(requests))
  report("warmup", f"{count} requests -> {WARMUP_RELATIVE_PATH}")
  return write_warmup_requests(export_dir=stage, requests=requests,
                               model_name=model_name(output_dir))


# ---------------------------------------------------------------- the file


def _as_tensor_proto(value, info, *, what: str):
  """A TensorProto of the signature input's dtype, or a BertHubError."""
  dtype = tf.dtypes.as_dtype(info.dtype)
  array = np.asarray(value)
  kind = array.dtype.kind
  compatible = (
      (dtype == tf.string and kind in "SUO") or
      (dtype.is_bool and kind == "b") or
      (dtype.is_integer and kind in "iu") or
      (dtype.is_floating and kind in "iuf"))
  if not compatible:
    raise BertHubError(
        f"{what}: wrong dtype", expected=f"values for a {dtype.name} input",
        received=f"a numpy array of dtype {array.dtype}",
        fix=f"pass np.asarray(values, dtype={dtype.name!r})" if dtype != tf.string
        else "pass an array of str or bytes")
  if dtype.is_integer and array.size and (array.min() < dtype.min or
                                          array.max() > dtype.max):
    raise BertHubError(
        f"{what}: values out of range", expected=f"{dtype.name} values "
        f"in [{dtype.min}, {dtype.max}]", received=f"[{array.min()}, {array.max()}]",
        fix="check the values; they would wrap around silently")
  expected_shape = tf.TensorShape(None if info.tensor_shape.unknown_rank else
                                  [d.size if d.size >= 0 else None
                                   for d in info.tensor_shape.dim])
  if not expected_shape.is_compatible_with(array.shape):
    raise BertHubError(
        f"{what}: wrong shape", expected=f"shape {expected_shape} (None: any size)",
        received=f"shape {list(array.shape)}",
        fix="reshape the values to the signature's input shape")
  if kind == "O":
    array = np.vectorize(lambda v: v.encode("utf-8") if isinstance(v, str) else v,
                         otypes=[object])(array) if array.size else array
  return tf.make_tensor_proto(array, dtype=dtype)


# Signatures TF Serving runs through its Classify / Regress APIs: their warmup
# records are classify_log / regress_log with the request's tf.Examples (the
# request dict holds {"inputs": serialized tf.Examples}).
_EXAMPLE_METHODS = ("tensorflow/serving/classify", "tensorflow/serving/regress")


def _example_log(spec, method_name: str, request, *, what: str):
  """A PredictionLog with a ClassificationRequest or RegressionRequest."""
  from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2  # pylint: disable=g-import-not-at-top
  if set(request) != {"inputs"}:
    raise BertHubError(
        f"{what} does not match a {method_name} signature",
        expected='a dict with the one key "inputs" (serialized tf.Examples)',
        received=f"keys {sorted(request)}", fix="pass {'inputs': [example bytes]}")
  try:
    examples = [tf.train.Example.FromString(bytes(v)) for v in np.ravel(request["inputs"])]
  except Exception as e:  # protobuf's DecodeError, TypeError
    raise BertHubError(
        f"{what}: not serialized tf.Examples", expected="tf.train.Example bytes",
        received=f"{type(e).__name__}: {e}",
        fix="pass [example.SerializeToString(), ...]") from None
  model_input = input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))
  if method_name.endswith("classify"):
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest(model_spec=spec,
                                                         input=model_input)))
  return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
      request=regression_pb2.RegressionRequest(model_spec=spec, input=model_input)))


def write_warmup_requests(*, export_dir,
                          requests: Sequence[Mapping[str, Any]] | Mapping[str, Sequence],
                          signature_name: str = "serving_default",
                          model_name: str = "model") -> str:
  """Writes the TF Serving warmup file of a SavedModel.

  TF Serving replays these requests when it loads the model, so the first real
  request does not pay for lazy initialization.

  Args:
    export_dir: the SavedModel directory (one version, holding saved_model.pb).
    requests: 1 to 1000 requests, each a dict from every input name of the
      signature to a numpy array (or list) of that input's dtype and shape,
      e.g. [{"sentences": np.array([b"hello world"])}]; or, to warm up several
      signatures, a dict {signature name: [request, ...]} (1 to 1000 requests
      in all; `signature_name` is then unused).
    signature_name: the signature the requests call.
    model_name: the ModelSpec name in the requests (TF Serving does not check it).

  Returns:
    The path written: `export_dir/assets.extra/tf_serving_warmup_requests`, a
    TFRecord file of PredictionLog(predict_log=PredictLog(request=...)); for a
    signature whose method_name is tensorflow/serving/classify (or regress),
    whose request is {"inputs": serialized tf.Examples}, classify_log (or
    regress_log) with the Examples in input.example_list.
  """
  export_dir = files.saved_model_dir(export_dir)
  by_signature = (dict(requests) if isinstance(requests, Mapping)
                  else {signature_name: requests})
  signatures = {name: files.signature_def(export_dir, name) for name in by_signature}
  total = sum(len(batch) for batch in by_signature.values())
  if not 1 <= total <= MAX_WARMUP_RECORDS:
    raise BertHubError(
        "bad number of warmup requests", expected=f"1 to {MAX_WARMUP_RECORDS}",
        received=str(total),
        fix="pass a few representative requests (TF Serving rejects more than 1000)")
  logs = []
  for signature_name, signature, i, request in (
      (name, signatures[name], i, request)
      for name, batch in by_signature.items() for i, request in enumerate(batch)):
    if not isinstance(request, Mapping) or set(request) != set(signature.inputs):
      raise BertHubError(
          f"warmup request {i} does not match signature {signature_name!r}",
          expected=f"a dict with exactly the keys {sorted(signature.inputs)}",
          received=(f"keys {sorted(request)}" if isinstance(request, Mapping)
                    else repr(type(request))),
          fix="feed every input of the signature, and nothing else")
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    if signature.method_name in _EXAMPLE_METHODS:
      logs.append(_example_log(spec, signature.method_name, request,
                               what=f"warmup request {i}"))
      continue
    predict = predict_pb2.PredictRequest(model_spec=spec)
    for key, value in request.items():
      predict.inputs[key].CopyFrom(_as_tensor_proto(
          value, signature.inputs[key], what=f"warmup request {i}, input {key!r}"))
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=predict)))
  target = export_dir / WARMUP_RELATIVE_PATH
  target.parent.mkdir(exist_ok=True)
  with tf.io.TFRecordWriter(str(target)) as writer:
    for log in logs:
      writer.write(log.SerializeToString())
  return str(target)


def read_warmup_requests(path) -> list[dict[str, np.ndarray]]:
  """The requests in a warmup file, as dicts of numpy arrays.

  Args:
    path: the warmup file, or a SavedModel directory holding
      assets.extra/tf_serving_warmup_requests.

  Returns:
    One dict per record, input name -> np.ndarray (strings as bytes objects);
    a classify_log or regress_log record as {"inputs": its serialized
    tf.Examples}, as write_warmup_requests takes it.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / WARMUP_RELATIVE_PATH
  if not path.is_file():
    raise BertHubError("no warmup file", expected=f"a file at {path}",
                       received="nothing there",
                       fix="write one with write_warmup_requests")
  requests = []
  for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record)
    if log.WhichOneof("log_type") in ("classify_log", "regress_log"):
      examples = getattr(log, log.WhichOneof("log_type")).request.input.example_list
      requests.append({"inputs": np.array([e.SerializeToString() for e in
                                           examples.examples], dtype=object)})
      continue
    if log.WhichOneof("log_type") != "predict_log":
      raise BertHubError(
          f"warmup file {path} has a {log.WhichOneof('log_type')} record",
          expected="predict_log, classify_log or regress_log records",
          received=log.WhichOneof("log_type"),
          fix="only Predict, Classify and Regress warmup records are supported here")
    requests.append({key: tf.make_ndarray(tensor)
                     for key, tensor in log.predict_log.request.inputs.items()})
  return requests
