"""The text-embedding servable returns the embedding as the model defines it.

Tiny TF1 checkpoint (fast): exported twice, `--pooling pooler` (the default, via
the CLI) and `--pooling mean --normalize`; every signature is run as TF Serving
runs it (tests/serving_utils: fresh process, tf.compat.v1 session, tag serve)
on its warmup requests, on direct feeds, on the example clients' REST bodies
and gRPC request, and compared with the Python API (bert_hub.load_encoder +
create_preprocessing, pooled in numpy here).

all-MiniLM-L6-v2 (slow, real weights): the package as published, and copies
whose modules / 1_Pooling/config.json / prompts / 2_Dense were edited; each
served embedding is compared with SentenceTransformer(dir).encode(...), the
independent reference.

To keep the time small, every export is made once (module-scoped fixtures) and
all the TF1-session runs of a fixture happen in one child process
(serving_utils.run_many_in_serving_sessions).
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (tf.saved_model.load needs the TF Text ops)
from tensorflow_serving.apis import prediction_log_pb2

from bert_hub import preprocessing
from bert_hub import sentence_transformers as st
from bert_hub.errors import BertHubError, ExportVerificationError
from export import cli, lib, pipeline, verify, warmup
from export.kinds import text_embedding
from export.pages import text_embedding_page
from export.serving import ops
from tests import fixtures, rest_oracle, serving_utils

TESTS = pathlib.Path(__file__).resolve().parent
CONFIG = fixtures.tiny_config()
H = CONFIG.hidden_size
SEQ_LENGTH = 16
# The session's graph optimizer may fuse or order float ops differently from
# the eager call (measured: 1.1e-6 on a value of 1.7).
SESSION_TOLERANCE = dict(atol=1e-6, rtol=1e-5)
# sentence-transformers (PyTorch) vs the served graph (TensorFlow), per embedding:
# max|got - want| / max|want| (measured: about 1e-6).
ST_RELATIVE = 1e-5

SENTENCES = ["hello world", "The cat sat on the mat.", "I liked this film very much!",
             "", "Café naïve über straße 中国人", " ".join(["the dog"] * 20)]
SECOND = ["a good book", "she was not fun", "", "we read it", "?", "they hated it !"]


def _strings(values):
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def _warmup_records(path):
  """(signature_name, inputs) of each PredictionLog in the export's warmup file."""
  file = pathlib.Path(path) / warmup.WARMUP_RELATIVE_PATH
  records = []
  for raw in tf.data.TFRecordDataset(str(file)).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(raw)
    assert log.WhichOneof("log_type") == "predict_log"
    request = log.predict_log.request
    records.append((request.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
  return records


def _signatures(path):
  """The serving SignatureDefs by name, without TF's __saved_model_init_op."""
  return {name: signature for name, signature in rest_oracle.serving_signatures(path).items()
          if not name.startswith("__")}


_serve_all = serving_utils.run_many_in_serving_sessions


def _assert_rows_close(got, want, *, relative=ST_RELATIVE, what=""):
  """Each row within `relative` of the reference: max|got - want| / max|want|."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (what, got.shape, want.shape)
  scale = np.maximum(np.max(np.abs(want), axis=1), 1e-30)
  errors = np.max(np.abs(got - want), axis=1) / scale
  assert np.all(errors <= relative), f"{what}: relative errors {errors}"


# ======================================================================== tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, run_shared):
  """The tiny checkpoint exported with the CLI (pooler: tests/fixtures.py
  tiny_text_embedding, made once per run; tests must not change it) and with
  mean + normalize (this module's)."""
  shared = fixtures.tiny_text_embedding(run_shared)
  root = tmp_path_factory.mktemp("text_embedding")
  mean = lib.export_text_embedding(
      checkpoint=shared["prefix"], output_dir=str(root / "mean"), seq_length=SEQ_LENGTH,
      lower_case=True, pooling="mean", normalize=True, report=lib.quiet_report).path
  return dict(prefix=shared["prefix"], vocab=shared["vocab"], printed=shared["printed"],
              embed=pathlib.Path(shared["out"]), pooler=shared["path"], mean=mean)


@pytest.fixture(scope="module")
def python_api(tiny):
  """The in-memory models of the Python API, pooled here in numpy."""
  model = bert_hub.load_encoder(tiny["prefix"])
  preprocessor = preprocessing.create_preprocessing(
      vocab_file=tiny["vocab"], lower_case=True, default_seq_length=SEQ_LENGTH)

  def encode(sentences, second=None):
    sentences = tf.constant(sentences, tf.string)
    if second is None:
      inputs = preprocessor(sentences)
    else:
      inputs = preprocessor.bert_pack_inputs(
          [preprocessor.tokenize(sentences),
           preprocessor.tokenize(tf.constant(second, tf.string))], seq_length=SEQ_LENGTH)
    out = model(inputs, training=False)
    return {"pooled_output": out["pooled_output"].numpy(),
            "sequence_output": out["sequence_output"].numpy(),
            "input_mask": inputs["input_mask"].numpy()}

  def embedding(kind, sentences, second=None):
    out = encode(sentences, second)
    if kind == "pooler":
      return out["pooled_output"]
    mask = out["input_mask"][..., None].astype(np.float64)  # [B, S, 1]
    mean = (out["sequence_output"] * mask).sum(1) / mask.sum(1)  # [B, H]
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)

  return dict(model=model, preprocessor=preprocessor, encode=encode, embedding=embedding)


@pytest.fixture(scope="module")
def loaded_tiny(tiny):
  """tf.saved_model.load of a tiny export, once per module: kind -> object.

  Each signature's first call optimizes its graph (about 1-2 s); the tests
  that only read share one loaded object per export.
  """
  cache = {}

  def load(kind):
    if kind not in cache:
      cache[kind] = tf.saved_model.load(tiny[kind])
    return cache[kind]
  return load


@pytest.fixture(scope="module")
def tiny_served(tiny):
  """Every signature of both tiny exports, run in TF1 sessions (one process).

  Requests: the warmup file's, the sentences fed directly, the REST bodies of
  examples/rest_client.py (both formats, read by tests/rest_oracle.py as the
  server reads JSON) and the gRPC request of examples/grpc_client.py.
  """
  rest_client = serving_utils.load_example("rest_client")
  grpc_client = serving_utils.load_example("grpc_client")
  requests, predict_requests = {}, {}
  for kind in ("pooler", "mean"):
    path = tiny[kind]
    signatures = rest_oracle.serving_signatures(path)
    by_signature = {name: {} for name in text_embedding.FIXED_SIGNATURES}
    for i, (name, inputs) in enumerate(_warmup_records(path)):
      by_signature[name][f"warmup {i}"] = inputs
    for name, second in (("serving_default", None), ("pairs", SECOND),
                         ("token_embeddings", None)):
      direct = {"sentences": _strings(SENTENCES)}
      if second is not None:
        direct["second_sentences"] = _strings(second)
      by_signature[name]["direct"] = direct
      signature_name = None if name == "serving_default" else name
      for format_ in ("instances", "inputs"):
        body = json.dumps(rest_client.build_body(
            SENTENCES, signature_name if name == "token_embeddings" else None,
            format=format_, second_sentences=second))
        request = rest_oracle.predict_request(body, signatures, model_name="embed")
        assert request.model_spec.signature_name == name
        predict_requests[(kind, name, format_)] = request
        by_signature[name][f"rest {format_}"] = rest_oracle.signature_feeds(
            request, signatures)
      request = grpc_client.build_request(SENTENCES, "embed", signature_name,
                                          second_sentences=second)
      assert request.model_spec.signature_name == name
      predict_requests[(kind, name, "grpc")] = request
      by_signature[name]["grpc"] = rest_oracle.signature_feeds(request, signatures)
    requests[kind] = by_signature
  jobs, labels = [], []
  for kind, by_signature in requests.items():
    for name, by_label in by_signature.items():
      jobs.append((tiny[kind], name, list(by_label.values())))
      labels.append((kind, name, list(by_label)))
  served = {kind: {} for kind in requests}
  for (kind, name, label_list), outputs in zip(labels, _serve_all(jobs)):
    served[kind][name] = dict(zip(label_list, outputs))
  return dict(requests=requests, served=served, predict_requests=predict_requests)


def test_signatures_take_sentences_and_return_the_embedding(tiny):
  for kind in ("pooler", "mean"):
    signatures = _signatures(tiny[kind])
    assert sorted(signatures) == sorted(text_embedding.FIXED_SIGNATURES)

    def spec(info):
      return tf.dtypes.as_dtype(info.dtype).name, [d.size for d in info.tensor_shape.dim]

    def specs(name):
      signature = signatures[name]
      return ({k: spec(v) for k, v in signature.inputs.items()},
              {k: spec(v) for k, v in signature.outputs.items()})

    sentences = ("string", [-1])
    embedding = {"embedding": ("float32", [-1, H])}
    assert specs("serving_default") == ({"sentences": sentences}, embedding)
    assert specs("pairs") == ({"sentences": sentences, "second_sentences": sentences},
                              embedding)
    assert specs("token_embeddings") == (
        {"sentences": sentences},
        {"sequence_output": ("float32", [-1, SEQ_LENGTH, H]),
         "input_mask": ("int32", [-1, SEQ_LENGTH])})


@pytest.mark.parametrize("kind", ["pooler", "mean"])
@pytest.mark.parametrize("signature", ["serving_default", "pairs", "token_embeddings"])
def test_served_signatures_equal_the_python_api(python_api, tiny_served, kind, signature):
  """Warmup requests, direct feeds, REST bodies and gRPC requests, as served."""
  served = tiny_served["served"][kind][signature]
  requests = tiny_served["requests"][kind][signature]
  assert len([label for label in served if label.startswith("warmup")]) == 2
  second = SECOND if signature == "pairs" else None
  for label in ("direct", "rest instances", "rest inputs", "grpc"):
    for key in requests["direct"]:
      np.testing.assert_array_equal(requests[label][key], requests["direct"][key])
    outputs = served[label]
    if signature == "token_embeddings":
      want = python_api["encode"](SENTENCES)
      assert sorted(outputs) == ["input_mask", "sequence_output"]
      np.testing.assert_array_equal(outputs["input_mask"], want["input_mask"])
      mask = want["input_mask"][..., None]  # [B, S, 1]
      np.testing.assert_allclose(outputs["sequence_output"], want["sequence_output"] * mask,
                                 atol=verify.VERIFY_TOLERANCE)  # real tokens equal
      assert not np.any(outputs["sequence_output"][mask[..., 0] == 0])  # zeros on padding
      assert outputs["input_mask"][-1].sum() == SEQ_LENGTH  # the long one, truncated
    else:
      assert sorted(outputs) == ["embedding"]
      np.testing.assert_allclose(outputs["embedding"],
                                 python_api["embedding"](kind, SENTENCES, second),
                                 atol=verify.VERIFY_TOLERANCE, err_msg=label)
  for label, outputs in served.items():  # the warmup requests ran, with real numbers
    assert all(np.all(np.isfinite(v)) for v in outputs.values() if v.dtype.kind == "f")


@pytest.mark.parametrize("signature", ["serving_default", "pairs", "token_embeddings"])
@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_example_body_is_the_grpc_example_request(tiny_served, signature, format_):
  """The same sentences by REST (as documented) and by gRPC: the same PredictRequest."""
  by_label = tiny_served["predict_requests"]
  assert by_label[("pooler", signature, format_)] == by_label[("pooler", signature, "grpc")]


@pytest.mark.parametrize("requests, message", [
    ({"pairs": [{"sentences": ["a"]}]}, "does not match signature 'pairs'"),
    ({"serving_default": [{"sentences": ["a"]}], "classify": [{"x": [1]}]},
     "has no signature 'classify'"),
    ({"serving_default": [], "pairs": []}, "bad number of warmup requests"),
])
def test_warmup_for_several_signatures_is_checked_before_writing(tiny, requests, message):
  before = _warmup_records(tiny["pooler"])
  with pytest.raises(BertHubError, match=message):
    warmup.write_warmup_requests(export_dir=tiny["pooler"], requests=requests)
  assert len(_warmup_records(tiny["pooler"])) == len(before)


def test_object_api_gives_the_embedding_tensor(tiny, loaded_tiny, python_api):
  """tf.saved_model.load(path)(sentences) and hub.KerasLayer: [B, D] (TF Hub's
  text-embedding convention); token_embeddings and embed_pairs beside it."""
  loaded = loaded_tiny("mean")
  sentences = tf.constant(SENTENCES)
  want = python_api["embedding"]("mean", SENTENCES)
  embedding = loaded(sentences)
  assert isinstance(embedding, tf.Tensor) and embedding.shape == (len(SENTENCES), H)
  np.testing.assert_allclose(embedding, want, atol=verify.VERIFY_TOLERANCE)
  np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-6)
  tokens = loaded.token_embeddings(sentences)
  encoded = python_api["encode"](SENTENCES)
  np.testing.assert_array_equal(tokens["input_mask"], encoded["input_mask"])
  np.testing.assert_allclose(tokens["sequence_output"],
                             encoded["sequence_output"] * encoded["input_mask"][..., None],
                             atol=verify.VERIFY_TOLERANCE)
  np.testing.assert_allclose(loaded.embed_pairs(sentences, tf.constant(SECOND)),
                             python_api["embedding"]("mean", SENTENCES, SECOND),
                             atol=verify.VERIFY_TOLERANCE)
  layer = hub.KerasLayer(tiny["pooler"])
  np.testing.assert_allclose(layer(sentences), python_api["embedding"]("pooler", SENTENCES),
                             atol=verify.VERIFY_TOLERANCE)
  assert len(layer.weights) == len(python_api["model"].variables)


# Mixed lengths across several chunks (length_buckets.CHUNK_SIZE rows each):
# empty strings, one-word texts, texts longer than SEQ_LENGTH, in no order.
MIXED = (["", "hello", " ".join(["the dog"] * 30), "The cat sat on the mat.", "?",
          "I liked this film very much!", "", "Café naïve über straße 中国人",
          " ".join(["word"] * 9), "a b c d e f", " ".join(["long text"] * 50)] * 2
         + ["one more", ""])
MIXED_SECOND = [MIXED[(i * 7) % len(MIXED)] for i in range(len(MIXED))]
LENGTH_TOLERANCE = 1e-5  # by-length vs padded to S: float rounding only


@pytest.mark.parametrize("kind", ["pooler", "mean"])
@pytest.mark.parametrize("batch", [MIXED, MIXED[2:3], MIXED[:5]])
def test_outputs_follow_length_and_equal_the_fixed_length_computation(
    loaded_tiny, python_api, kind, batch):
  """Every signature computes on the rows' own lengths (bert_hub/length_buckets);
  results equal the encoder run on the batch padded to S (python_api), in the
  request's order: batches of 23 (three chunks), 1 and 5 rows."""
  loaded = loaded_tiny(kind)
  second = MIXED_SECOND[:len(batch)]
  got = loaded.signatures["serving_default"](sentences=tf.constant(batch))["embedding"]
  np.testing.assert_allclose(got, python_api["embedding"](kind, batch),
                             atol=LENGTH_TOLERANCE)
  got = loaded.signatures["pairs"](sentences=tf.constant(batch),
                                   second_sentences=tf.constant(second))["embedding"]
  np.testing.assert_allclose(got, python_api["embedding"](kind, batch, second),
                             atol=LENGTH_TOLERANCE)
  tokens = loaded.signatures["token_embeddings"](sentences=tf.constant(batch))
  want = python_api["encode"](batch)
  mask = want["input_mask"]
  np.testing.assert_array_equal(tokens["input_mask"], mask)
  np.testing.assert_allclose(tokens["sequence_output"].numpy()[mask == 1],
                             want["sequence_output"][mask == 1], atol=LENGTH_TOLERANCE)
  assert not np.any(tokens["sequence_output"].numpy()[mask == 0])


def test_by_length_as_tf_serving_runs_it(tiny, python_api):
  """The mixed batch through a TF1 session (tag serve), as TF Serving runs it."""
  (embedding,), (tokens,) = _serve_all(
      [(tiny["mean"], "serving_default", [{"sentences": _strings(MIXED)}]),
       (tiny["mean"], "token_embeddings", [{"sentences": _strings(MIXED)}])])
  np.testing.assert_allclose(embedding["embedding"], python_api["embedding"]("mean", MIXED),
                             atol=LENGTH_TOLERANCE)
  want = python_api["encode"](MIXED)
  mask = want["input_mask"]
  np.testing.assert_allclose(tokens["sequence_output"][mask == 1],
                             want["sequence_output"][mask == 1], atol=LENGTH_TOLERANCE)


def test_bfloat16_serving_precision(tiny, tmp_path, python_api):
  """--serving-precision bfloat16: every signature in bfloat16 (float32 outputs),
  serving_float32 = serving_default in float32; ops within TF Serving's list."""
  path = lib.export_text_embedding(
      checkpoint=tiny["prefix"], output_dir=str(tmp_path / "bf16"), seq_length=SEQ_LENGTH,
      lower_case=True, pooling="mean", normalize=True, serving_precision="bfloat16",
      report=lib.quiet_report).path
  assert sorted(_signatures(path)) == sorted(
      list(text_embedding.FIXED_SIGNATURES) + [text_embedding.FLOAT32_SIGNATURE])
  assert ops.ops_outside_allowlist(path) == []
  loaded = tf.saved_model.load(path)
  want = python_api["embedding"]("mean", MIXED)
  got = loaded.signatures["serving_default"](sentences=tf.constant(MIXED))["embedding"]
  assert got.dtype == tf.float32
  cosine = np.sum(got.numpy() * want, axis=1)  # both L2-normalized
  assert cosine.min() > 0.999
  float32 = loaded.signatures[text_embedding.FLOAT32_SIGNATURE](sentences=tf.constant(MIXED))
  np.testing.assert_allclose(float32["embedding"], want, atol=LENGTH_TOLERANCE)
  np.testing.assert_allclose(loaded(tf.constant(MIXED)), want, atol=LENGTH_TOLERANCE)
  meta = json.loads((pathlib.Path(path) / "bert_hub.json").read_text())
  assert meta["serving_precision"] == "bfloat16"
  section = (pathlib.Path(path) / "README.md").read_text().split("## Serving precision")[1]
  assert "--serving-precision bfloat16" in section and "`serving_float32`" in section
  assert "object API (fine-tuning) stays float32" in section


def test_pairs_refuse_unequal_batches(loaded_tiny):
  pairs = loaded_tiny("pooler").signatures["pairs"]
  with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
    pairs(sentences=tf.constant(["a", "b"]), second_sentences=tf.constant(["c"]))


@pytest.mark.parametrize("kind", ["pooler", "mean"])
def test_every_op_is_in_tf_serving_and_every_signature_warms_up(tiny, kind):
  """Core TF 2.12.1 + TF Text 2.12.1 (export/data/serving_ops_allowlist.txt)."""
  assert ops.ops_outside_allowlist(tiny[kind]) == []
  assert "FastWordpieceTokenizeWithOffsets" in ops.saved_model_op_types(tiny[kind])
  warmed = sorted({name for name, _ in _warmup_records(tiny[kind])})
  assert warmed == sorted(text_embedding.FIXED_SIGNATURES)


def test_verification_catches_other_weights(loaded_tiny, python_api):
  """What the export checks after reload: a model that differs is refused."""
  from bert_hub.encoder import build_encoder  # pylint: disable=g-import-not-at-top
  head = text_embedding.head_from_options(pooling="mean", normalize=True)
  kind = text_embedding.TextEmbeddingExport.__new__(text_embedding.TextEmbeddingExport)
  kind.seq_length, kind.head, kind.serving_precision = SEQ_LENGTH, head, "float32"
  kind.signature_names = list(text_embedding.FIXED_SIGNATURES)
  loaded = loaded_tiny("mean")
  for model, fails in ((python_api["model"], False), (build_encoder(CONFIG), True)):
    obj, _, float32 = text_embedding.text_embedding_functions(
        model, python_api["preprocessor"], seq_length=SEQ_LENGTH, head=head)
    kind._functions = dict(float32, __call__=obj.__call__)  # pylint: disable=protected-access
    with pipeline._in_memory_reference():  # as the export computes it  pylint: disable=protected-access
      reference = kind.reference()
    checks = kind.checks(loaded, reference)
    if not fails:
      assert verify.check_all("x", checks, compared="").max_diff <= verify.VERIFY_TOLERANCE
      continue
    with pytest.raises(ExportVerificationError,
                       match="serving_default embedding.*pairs embedding"):
      verify.check_all("x", checks, compared="")


def test_page_and_metadata_describe_the_export(tiny):
  page = (pathlib.Path(tiny["mean"]) / "README.md").read_text()
  assert "`embedding` float32 `[batch, 16]`" in page
  assert "pooling mean, L2 normalization" in page and "--pooling mean --normalize" in page
  assert "`do_lower_case=True` (passed by the user)" in page
  meta = json.loads((pathlib.Path(tiny["mean"]) / "bert_hub.json").read_text())
  assert meta["kind"] == "text-embedding" and meta["seq_length"] == SEQ_LENGTH
  assert meta["embedding"]["pooling"] == ["mean"] and meta["embedding"]["normalize"]
  assert meta["signatures"] == list(text_embedding.FIXED_SIGNATURES)
  assert meta["verification"]["passed"] and meta["serving_precision"] == "float32"
  assert "## Serving precision" not in page


# ---------------------------------------------------------------- CLI


def test_cli_reports_its_stages(tiny):
  printed = tiny["printed"]
  stages = [line.split("]")[0][1:] for line in printed.splitlines() if line.startswith("[")]
  assert stages == ["tokenizer", "reading", "building", "tracing", "writing", "verifying",
                    "warmup", "model page", "done"]
  assert "embedding: pooled_output (the encoder's pooler)" in printed
  assert "largest difference after reload" in printed
  assert sorted(os.listdir(tiny["embed"])) == ["1"]  # no leftovers


@pytest.mark.parametrize("extra, message", [
    ([], "version exists"),
    (["--version", "2", "--seq-length", "65"], "bad --seq-length"),
    (["--version", "2", "--seq-length", "2"], "bad --seq-length"),
    (["--version", "0"], "bad --version"),
])
def test_cli_refuses_before_any_work(tiny, capsys, extra, message):
  code = cli.main(["text-embedding", "--checkpoint", tiny["prefix"], "--output",
                   str(tiny["embed"]), "--seq-length", str(SEQ_LENGTH),
                   "--lower-case"] + extra)
  assert code == 2
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1
  assert sorted(os.listdir(tiny["embed"])) == ["1"]


def test_cli_needs_the_checkpoints_vocab(tiny, tmp_path, capsys):
  small = fixtures.write_vocab(str(tmp_path), fixtures.TINY_VOCAB[:-3])
  code = cli.main(["text-embedding", "--checkpoint", tiny["prefix"], "--vocab", small,
                   "--output", str(tmp_path / "out"), "--seq-length", "8", "--lower-case"])
  assert code == 2
  err = capsys.readouterr().err
  assert "vocabulary does not fit the model" in err and f"{CONFIG.vocab_size}" in err
  assert not (tmp_path / "out" / "1").exists()


def test_cli_inspect_shows_the_signatures(tiny, capsys):
  assert cli.main(["inspect", tiny["pooler"]]) == 0
  report = capsys.readouterr().out
  assert "pairs  (tensorflow/serving/predict)" in report
  assert "second_sentences: string [None]" in report
  assert f"embedding: float32 [None, {H}]" in report
  assert f"sequence_output: float32 [None, {SEQ_LENGTH}, {H}]" in report
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): none" in report


# ------------------------------------------------ sentence-transformers refusals


def _fake_st_checkpoint(tmp_path, tiny, modules, files=None):
  """A copy of the tiny checkpoint's folder with sentence-transformers files."""
  folder = tmp_path / "st"
  shutil.copytree(os.path.dirname(tiny["prefix"]), folder)
  (folder / "modules.json").write_text(json.dumps(modules))
  for name, content in (files or {}).items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
      (folder / name).write_bytes(content)
    else:
      (folder / name).write_text(json.dumps(content))
  return str(folder / os.path.basename(tiny["prefix"]))


_TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
_POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
_POOLING_CONFIG = {"1_Pooling/config.json": {"word_embedding_dimension": H,
                                             "pooling_mode_mean_tokens": True}}


@pytest.mark.parametrize("modules, files, needles", [
    ([_TRANSFORMER, _POOLING, {"idx": 2, "name": "2", "path": "2_LSTM",
                               "type": "sentence_transformers.models.LSTM"}],
     _POOLING_CONFIG,
     ("cannot reproduce sentence-transformers module 2 sentence_transformers.models.LSTM "
      "(2_LSTM)", "bert-hub never skips a module")),
    ([_TRANSFORMER, _POOLING, {"idx": 2, "name": "2", "path": "2_Dense",
                               "type": "sentence_transformers.models.Dense"}],
     dict(_POOLING_CONFIG, **{"2_Dense/config.json": {"in_features": H, "out_features": 4},
                              "2_Dense/pytorch_model.bin": b"not read"}),
     ("pickled checkpoint refused", "2_Dense/pytorch_model.bin")),
    ([_TRANSFORMER, _POOLING],
     dict(_POOLING_CONFIG, **{"config_sentence_transformers.json": {
         "prompts": {"pairs": "pair: "}}}),
     ("prompt name 'pairs' cannot be a signature name",)),
    ([_TRANSFORMER, dict(_POOLING, type="my_package.FancyPooling")], _POOLING_CONFIG,
     ("my_package.FancyPooling",)),
    ([_TRANSFORMER, _POOLING, {"idx": 2, "name": "2", "path": "2_Dense",
                               "type": "sentence_transformers.models.Dense"}],
     dict(_POOLING_CONFIG, **{"2_Dense/config.json": {
         "in_features": H, "out_features": H, "use_residual": True}}),
     ("cannot reproduce sentence-transformers module 2", "use_residual false")),
    ([_TRANSFORMER, _POOLING, {"idx": 2, "name": "2", "path": "2_Dense",
                               "type": "sentence_transformers.models.Dense"}],
     dict(_POOLING_CONFIG, **{"2_Dense/config.json": {
         "in_features": H, "out_features": 4,
         "activation_function": "torch.nn.modules.activation.Softplus"}}),
     ("activation_function torch.nn Tanh|Identity|ReLU|Sigmoid|GELU", "Softplus")),
    ([_TRANSFORMER, _POOLING],
     {"1_Pooling/config.json": {"embedding_dimension": H, "pooling_mode": "median"}},
     ("pooling modes from cls, max, mean",)),
])
def test_cli_refuses_what_it_cannot_reproduce(tiny, tmp_path, capsys, modules, files,
                                              needles):
  checkpoint = _fake_st_checkpoint(tmp_path, tiny, modules, files)
  code = cli.main(["text-embedding", "--checkpoint", checkpoint, "--output",
                   str(tmp_path / "out"), "--seq-length", "8", "--lower-case"])
  err = capsys.readouterr().err
  assert code == 2, err
  assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
  assert "expected" in err and "received" in err and "fix:" in err
  for needle in needles:
    assert needle in err
  assert not (tmp_path / "out").exists()


def test_cli_refuses_pooling_options_for_a_sentence_transformers_model(tiny, tmp_path,
                                                                      capsys):
  checkpoint = _fake_st_checkpoint(tmp_path, tiny, [_TRANSFORMER, _POOLING], _POOLING_CONFIG)
  code = cli.main(["text-embedding", "--checkpoint", checkpoint, "--output",
                   str(tmp_path / "out"), "--seq-length", "8", "--lower-case",
                   "--pooling", "cls"])
  assert code == 2
  assert "--pooling/--normalize given for a sentence-transformers model" in (
      capsys.readouterr().err)


def test_reading_the_published_minilm_modules():
  spec = st.read(fixtures.minilm_dir(), hidden_size=384)
  assert spec.pooling_modes == ("mean",) and spec.include_prompt
  assert spec.normalize and spec.dense == () and spec.embedding_dimension == 384
  assert spec.max_seq_length == 256 and spec.prompts == () and spec.default_prompt_name is None
  assert st.read(os.path.dirname(fixtures.__file__), hidden_size=384) is None


# ======================================================================= MiniLM

# Long enough to be truncated at max_seq_length (256 tokens) the same way.
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)
ST_SENTENCES = list(warmup.SENTENCES) + [
    "中文句子，用于测试。", "日本語の文も少し。", "Ünïcödé àccents ÉTÉ", LONG]
PROMPTS = {"query": "query: ", "passage": "passage: ", "empty": ""}
DENSE_OUT = 24
# The edited copies: a small random BERT (L=2, H=32) with MiniLM's real vocab
# and tokenizer files, so real text tokenizes as MiniLM's does; what they test
# (modules, pooling modes, prompts, Dense) does not need the real weights.
SMALL = fixtures.tiny_config(vocab_size=30522, hidden_size=32, max_position_embeddings=512)
SMALL_WEIGHTS = ("config.json", "model.safetensors")


def _copy_minilm(target: pathlib.Path, *, weights=None, modules=None, pooling=None,
                 extra=None):
  """A copy of the MiniLM package directory (files symlinked), edited; with
  `weights`, config.json and model.safetensors are that folder's."""
  source = pathlib.Path(fixtures.minilm_dir())
  target.mkdir(parents=True)
  for item in source.iterdir():
    if item.is_file():
      origin = (pathlib.Path(weights) / item.name
                if weights and item.name in SMALL_WEIGHTS else item)
      os.symlink(origin, target / item.name)
  (target / "1_Pooling").mkdir()
  pooling_config = pooling or json.loads((source / "1_Pooling" / "config.json").read_text())
  (target / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
  if modules is not None:
    (target / "modules.json").unlink()
    (target / "modules.json").write_text(json.dumps(modules))
  for name, content in (extra or {}).items():
    (target / name).unlink(missing_ok=True)
    (target / name).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
      (target / name).write_text(json.dumps(content))
    else:
      content(target / name)
  return str(target)


def _modules(*names):
  types = {"Pooling": "1_Pooling", "Dense": "2_Dense", "Normalize": "3_Normalize"}
  out = [dict(_TRANSFORMER)]
  for i, name in enumerate(names, start=1):
    out.append({"idx": i, "name": str(i), "path": types[name],
                "type": f"sentence_transformers.models.{name}"})
  return out


def _write_dense(path: pathlib.Path):
  """2_Dense/model.safetensors laid out as sentence-transformers' Dense saves it."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(7)
  in_features = SMALL.hidden_size * 2
  save_file({"linear.weight": (rng.standard_normal((DENSE_OUT, in_features)) /
                               np.sqrt(in_features)).astype(np.float32),
             "linear.bias": rng.standard_normal(DENSE_OUT).astype(np.float32) * 0.1},
            str(path))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, minilm_demo):
  """MiniLM as published (the demo's export) and two edited copies, served once.

  published  the real weights, mean + Normalize (modules.json as shipped)
  modes      SMALL: pooling_mode [cls, max, mean_sqrt_len_tokens, weightedmean,
             lasttoken], no Normalize
  prompts    SMALL: pooling [cls, mean] with include_prompt false, a Dense module
             (64 -> 24, tanh), Normalize; prompts query/passage/empty, default
             prompt "query"
  """
  root = tmp_path_factory.mktemp("minilm")
  small = str(root / "small")
  fixtures.write_hf_checkpoint(small, SMALL, pretraining=False)
  dirs = {
      "published": fixtures.minilm_dir(),
      "modes": _copy_minilm(
          root / "modes", weights=small, modules=_modules("Pooling"),
          pooling={"embedding_dimension": SMALL.hidden_size, "pooling_mode": [
              "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]}),
      "prompts": _copy_minilm(
          root / "prompts", weights=small,
          modules=_modules("Pooling", "Dense", "Normalize"),
          pooling={"embedding_dimension": SMALL.hidden_size,
                   "pooling_mode": ["cls", "mean"], "include_prompt": False},
          extra={"config_sentence_transformers.json": {
                     "prompts": PROMPTS, "default_prompt_name": "query",
                     "similarity_fn_name": "cosine"},
                 "2_Dense/config.json": {
                     "in_features": 2 * SMALL.hidden_size, "out_features": DENSE_OUT,
                     "bias": True,
                     "activation_function": "torch.nn.modules.activation.Tanh"},
                 "2_Dense/model.safetensors": _write_dense}),
  }
  paths = {name: lib.export_text_embedding(checkpoint=folder,
                                           output_dir=str(root / "out" / name),
                                           report=lib.quiet_report).path
           for name, folder in dirs.items() if name != "published"}
  paths["published"] = str(minilm_demo["output"] / "minilm_l6_embed" / "1")
  jobs, labels = [], []
  for name, path in paths.items():
    signatures = _signatures(path)
    warm = {}
    for signature, inputs in _warmup_records(path):
      warm.setdefault(signature, []).append(inputs)
    assert sorted(warm) == sorted(signatures)  # every signature warms up
    for signature in signatures:
      feeds = {"sentences": _strings(ST_SENTENCES)}
      if signature == "pairs":
        feeds["second_sentences"] = _strings(["Another segment."] * len(ST_SENTENCES))
      jobs.append((path, signature, warm[signature] + [feeds]))
      labels.append((name, signature))
  served = {name: {} for name in paths}
  for (name, signature), outputs in zip(labels, _serve_all(jobs)):
    served[name][signature] = outputs[-1]
  loaded = {}

  def load(name):  # one tf.saved_model.load per export for the whole module
    if name not in loaded:
      loaded[name] = tf.saved_model.load(paths[name])
    return loaded[name]
  return dict(dirs=dirs, paths=paths, served=served, root=root, load=load)


@pytest.fixture(scope="module")
def st_models(minilm):
  from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  return {name: SentenceTransformer(folder, device="cpu")
          for name, folder in minilm["dirs"].items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["published", "modes", "prompts"])
def test_served_embedding_is_sentence_transformers_encode(minilm, st_models, name):
  """Empty, non-ASCII, CJK and a text longer than max_seq_length included."""
  want = st_models[name].encode(ST_SENTENCES)  # the default prompt, if any, applied
  _assert_rows_close(minilm["served"][name]["serving_default"]["embedding"], want,
                     what=f"{name} serving_default")
  loaded = minilm["load"](name)
  _assert_rows_close(loaded(tf.constant(ST_SENTENCES)), want, what=f"{name} __call__")


@pytest.mark.slow
def test_modules_are_what_sentence_transformers_loads(minilm, st_models):
  modes = st_models["modes"]
  assert [type(m).__name__ for m in modes] == ["Transformer", "Pooling"]
  assert modes[1].pooling_mode == ("cls", "max", "mean_sqrt_len_tokens", "weightedmean",
                                   "lasttoken")
  assert modes.get_embedding_dimension() == 5 * SMALL.hidden_size
  prompts = st_models["prompts"]
  assert [type(m).__name__ for m in prompts] == ["Transformer", "Pooling", "Dense",
                                                 "Normalize"]
  assert prompts[1].include_prompt is False
  assert prompts.prompts["query"] == "query: " and prompts.default_prompt_name == "query"
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  written = load_file(os.path.join(minilm["dirs"]["prompts"], "2_Dense", "model.safetensors"))
  np.testing.assert_array_equal(prompts[2].linear.weight.detach().numpy(),
                                written["linear.weight"])
  assert type(prompts[2].activation_function).__name__ == "Tanh"
  assert prompts.get_embedding_dimension() == DENSE_OUT
  loaded = minilm["load"]("prompts")
  assert loaded(tf.constant(["x"])).shape == (1, DENSE_OUT)


@pytest.mark.slow
def test_prompt_signatures_are_encode_with_prompt_name(minilm, st_models):
  served = minilm["served"]["prompts"]
  assert sorted(served) == sorted(list(text_embedding.FIXED_SIGNATURES) + list(PROMPTS))
  for prompt_name in PROMPTS:
    want = st_models["prompts"].encode(ST_SENTENCES, prompt_name=prompt_name)
    _assert_rows_close(served[prompt_name]["embedding"], want, what=prompt_name)
  # The default prompt is the query prompt: serving_default == query.
  np.testing.assert_allclose(served["serving_default"]["embedding"],
                             served["query"]["embedding"], atol=1e-6)
  # include_prompt false makes the prompt matter to cls: "empty" differs from "query".
  assert np.max(np.abs(served["empty"]["embedding"] - served["query"]["embedding"])) > 1e-2


@pytest.mark.slow
def test_minilm_pairs_and_token_embeddings(minilm, st_models):
  """pairs: sentence-transformers' encode of (a, b) when neither is truncated;
  token_embeddings: encode(output_value="token_embeddings") on the tokens."""
  served = minilm["served"]["published"]
  short = ST_SENTENCES[:-1]  # the long one is trimmed round-robin (TF Hub's packing)
  want = st_models["published"].encode([(s, "Another segment.") for s in short])
  _assert_rows_close(served["pairs"]["embedding"][:-1], want, what="pairs")
  tokens = st_models["published"].encode(ST_SENTENCES, output_value="token_embeddings")
  mask = served["token_embeddings"]["input_mask"]
  assert mask.shape == (len(ST_SENTENCES), 256) and mask[-1].sum() == 256
  for i, want in enumerate(tokens):
    n = int(mask[i].sum())
    assert n == len(want)
    _assert_rows_close(served["token_embeddings"]["sequence_output"][i, :n],
                       want.numpy(), relative=1e-4, what=f"tokens {i}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["published", "prompts"])
def test_minilm_ops_and_page_examples(minilm, name):
  path = minilm["paths"][name]
  assert ops.ops_outside_allowlist(path) == []
  page = (pathlib.Path(path) / "README.md").read_text()
  (snippet,) = text_embedding_page.python_blocks(page)
  namespace = {}
  exec(compile(snippet, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  D = 384 if name == "published" else DENSE_OUT  # pylint: disable=invalid-name
  assert namespace["embeddings"].shape == (2, D)
  assert -1.0 <= float(namespace["similarity"]) <= 1.0
  bodies = text_embedding_page.curl_bodies(page)
  assert len(bodies) == (1 if name == "published" else 2)
  signatures = rest_oracle.serving_signatures(path)
  loaded = minilm["load"](name)
  for body in bodies:
    request = rest_oracle.predict_request(body, signatures)
    feeds = rest_oracle.signature_feeds(request, signatures)
    got = loaded.signatures[request.model_spec.signature_name](
        **{k: tf.constant(v) for k, v in feeds.items()})
    assert got["embedding"].shape == (len(feeds["sentences"]), D)
  meta = json.loads((pathlib.Path(path) / "bert_hub.json").read_text())
  assert meta["embedding"]["dimension"] == D
  assert meta["checkpoint"]["files"][0]["sha256"]
