"""Every export is a TF Serving servable: tested as the server loads it.

One tiny TF1 checkpoint (tests/fixtures.tiny_config) is exported as the encoder
(versions 1, 2, 3), the preprocessing model and the text-embedding model (the
last through `bert-hub-export text-embedding`). Each is then
  * read as files: one MetaGraph tagged `serve`, `serving_default` (and `pairs`)
    with meaningful names, batch dimension first;
  * run by tests/serving_utils.py in a fresh process, in a tf.compat.v1
    session, fed by tensor names, as tensorflow_model_server does, with its
    warmup requests and with the requests the example clients build;
  * compared with the eager call of the reloaded signature (the same kernels)
    and with the Python API (bert_hub.load_encoder + create_preprocessing).
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import contextlib
import io
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (tf.saved_model.load needs the TF Text ops)
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from bert_hub import preprocessing
from bert_hub.encoder import INPUT_NAMES, sample_inputs
from export import cli, lib, serving, versions
from export.saved_model import VERIFY_TOLERANCE
from tests import fixtures
from tests.serving_utils import load_example, run_signature_in_serving_session

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = fixtures.tiny_config()
H = CONFIG.hidden_size
SEQ_LENGTH = 16
# The session and the eager call run the same kernels, but the session's graph
# optimizer may fuse or order them differently (measured: 1.1e-6 on a value of
# 1.7). Integers and strings must match exactly.
SESSION_TOLERANCE = dict(atol=1e-6, rtol=1e-5)

SENTENCES = ["hello world", "The cat sat on the mat.", "I liked this film very much!",
             "", "Café naïve über straße 中国人", " ".join(["the dog"] * 20)]
SECOND = ["a good book", "she was not fun", "", "we read it", "?", "they hated it !"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving_exports")
  prefix, _ = fixtures.write_tf1_checkpoint(str(root / "ckpt"), CONFIG, with_mlm=False)
  vocab = fixtures.write_vocab(str(root / "ckpt"))
  paths = {}
  for version in (1, 2, 3):
    paths[f"encoder_v{version}"] = lib.export_encoder(
        checkpoint=prefix, output_dir=str(root / "encoder"), version=version,
        lower_case=True, report=lib.quiet_report).path
  paths["preprocessing"] = lib.export_preprocessing(
      vocab=vocab, output_dir=str(root / "preprocess"), seq_length=SEQ_LENGTH,
      lower_case=True, report=lib.quiet_report).path
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):  # the CLI, as a user runs it
    assert cli.main(["text-embedding", "--checkpoint", prefix, "--output",
                     str(root / "embed"), "--seq-length", str(SEQ_LENGTH),
                     "--lower-case"]) == 0
  paths["text_embedding"] = str(root / "embed" / "1")
  return dict(root=root, prefix=prefix, vocab=vocab, printed=printed.getvalue(), **paths)


@pytest.fixture(scope="module")
def python_api(exports):
  """The in-memory models of the Python API, as a user composes them."""
  model = bert_hub.load_encoder(exports["prefix"])
  preprocessor = preprocessing.create_preprocessing(
      vocab_file=exports["vocab"], lower_case=True, default_seq_length=SEQ_LENGTH)

  def embed(sentences, second=None):
    sentences = tf.constant(sentences, tf.string)
    if second is None:
      inputs = preprocessor(sentences)
    else:
      inputs = preprocessor.bert_pack_inputs(
          [preprocessor.tokenize(sentences),
           preprocessor.tokenize(tf.constant(second, tf.string))],
          seq_length=SEQ_LENGTH)
    out = model(inputs, training=False)
    return {"pooled_output": out["pooled_output"].numpy(),
            "sequence_output": out["sequence_output"].numpy(),
            "input_mask": inputs["input_mask"].numpy()}

  return dict(model=model, preprocessor=preprocessor, embed=embed)


# ---------------------------------------------------------------- helpers


def _meta_graphs(path):
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
  return list(saved_model.meta_graphs)


def _signature_def(path, name):
  (meta_graph,) = _meta_graphs(path)
  return meta_graph.signature_def[name]


def _warmup_records(path):
  """(signature_name, inputs) of each PredictionLog in the export's warmup file."""
  file = pathlib.Path(path) / "assets.extra" / "tf_serving_warmup_requests"
  records = []
  for raw in tf.data.TFRecordDataset(str(file)).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(raw)
    assert log.WhichOneof("log_type") == "predict_log"
    request = log.predict_log.request
    records.append((request.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
  return records


def _eager(path, feeds, signature_name="serving_default"):
  function = tf.saved_model.load(path).signatures[signature_name]
  return {k: v.numpy() for k, v in
          function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def _assert_same(actual, expected, *, atol, rtol=0.0):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    want = np.asarray(expected[name])
    if want.dtype.kind == "f":
      np.testing.assert_allclose(actual[name], want, rtol=rtol, atol=atol, err_msg=name)
    else:
      np.testing.assert_array_equal(actual[name], want, err_msg=name)


def _strings(values):
  return np.array([v.encode("utf-8") for v in values], dtype=object)


# ---------------------------------------------------------------- version dirs


def _specs(signature):
  def spec(info):
    dims = [d.size for d in info.tensor_shape.dim]
    return tf.dtypes.as_dtype(info.dtype).name, dims
  return ({k: spec(v) for k, v in signature.inputs.items()},
          {k: spec(v) for k, v in signature.outputs.items()})


def _expected_signatures(kind):
  ids = ("int32", [-1, -1])
  sentences = ("string", [-1])
  embeddings = {"pooled_output": ("float32", [-1, H]),
                "sequence_output": ("float32", [-1, SEQ_LENGTH, H]),
                "input_mask": ("int32", [-1, SEQ_LENGTH])}
  if kind == "encoder_v3":
    outputs = {"pooled_output": ("float32", [-1, H]), "default": ("float32", [-1, H]),
               "sequence_output": ("float32", [-1, -1, H])}
    outputs.update({f"encoder_outputs_{i}": ("float32", [-1, -1, H])
                    for i in range(CONFIG.num_layers)})
    return {"serving_default": (dict.fromkeys(INPUT_NAMES, ids), outputs)}
  if kind in ("encoder_v1", "encoder_v2"):
    return {"serving_default": (
        dict.fromkeys(("input_word_ids", "input_mask", "segment_ids"), ids),
        {"pooled_output": ("float32", [-1, H]),
         "sequence_output": ("float32", [-1, -1, H])})}
  if kind == "preprocessing":
    return {"serving_default": (
        {"sentences": sentences},
        dict.fromkeys(INPUT_NAMES, ("int32", [-1, SEQ_LENGTH])))}
  return {"serving_default": ({"sentences": sentences}, embeddings),
          "pairs": ({"sentences": sentences, "second_sentences": sentences}, embeddings)}


KINDS = ["encoder_v1", "encoder_v2", "encoder_v3", "preprocessing", "text_embedding"]


@pytest.mark.parametrize("kind", KINDS)
def test_export_is_a_tf_serving_version_directory(exports, kind):
  path = pathlib.Path(exports[kind])
  assert path.name.isdigit()  # DIR/<version>
  (meta_graph,) = _meta_graphs(path)
  assert list(meta_graph.meta_info_def.tags) == ["serve"]
  signatures = {k: v for k, v in meta_graph.signature_def.items()
                if not k.startswith("__")}
  expected = _expected_signatures(kind)
  assert sorted(signatures) == sorted(expected)
  for name, (inputs, outputs) in expected.items():
    assert signatures[name].method_name == "tensorflow/serving/predict"
    assert _specs(signatures[name]) == (inputs, outputs)
  # Every tensor's first dimension is the (unknown) batch: TF Serving's
  # batching and the REST row format split and join along it.


# ---------------------------------------------------------------- warmup


@pytest.mark.parametrize("kind", KINDS)
def test_warmup_file_holds_prediction_logs_for_the_signatures(exports, kind):
  records = _warmup_records(exports[kind])
  expected = _expected_signatures(kind)
  assert 2 <= len(records) <= 10  # a few
  assert {name for name, _ in records} == set(expected)
  for name, inputs in records:
    assert sorted(inputs) == sorted(expected[name][0])
    for key, value in inputs.items():
      dtype, dims = expected[name][0][key]
      assert value.dtype == (object if dtype == "string" else np.dtype(dtype))
      assert value.ndim == len(dims) and value.shape[0] >= 1
  # Real requests: sentences with words of the vocabulary, or valid ids.
  if kind in ("preprocessing", "text_embedding"):
    assert b"Hello, world!" in records[0][1]["sentences"]
  if kind.startswith("encoder"):
    ids = records[-1][1]["input_word_ids"]
    assert ids.min() >= 0 and ids.max() < CONFIG.vocab_size and ids.shape[1] == 64


@pytest.mark.parametrize("requests, message", [
    ({"pairs": [{"sentences": ["a"]}]}, "does not match signature 'pairs'"),
    ({"serving_default": [{"sentences": ["a"]}], "classify": [{"x": [1]}]},
     "has no signature 'classify'"),
    ({"serving_default": [], "pairs": []}, "bad number of warmup requests"),
])
def test_warmup_for_several_signatures_is_checked_before_writing(exports, requests,
                                                                 message):
  before = _warmup_records(exports["text_embedding"])
  with pytest.raises(bert_hub.BertHubError, match=message):
    serving.write_warmup_requests(export_dir=exports["text_embedding"], requests=requests)
  assert len(_warmup_records(exports["text_embedding"])) == len(before)


# ---------------------------------------------------------------- serve-tag sessions


@pytest.mark.parametrize("version", [1, 2, 3])
def test_encoder_runs_in_a_serving_session(exports, python_api, version):
  path = exports[f"encoder_v{version}"]
  names = versions.get(version).input_names
  inputs = sample_inputs(CONFIG, batch=3, seq_length=SEQ_LENGTH, seed=7)
  direct = {name: inputs[canonical] for name, canonical in zip(names, INPUT_NAMES)}
  feeds = [request for _, request in _warmup_records(path)] + [direct]
  report = {}
  served = run_signature_in_serving_session(path, feeds, report=report)
  assert report == {"imported_tensorflow_text": False, "ops_not_in_core": []}
  for request, outputs in zip(feeds, served):  # the warmup requests run, too
    _assert_same(outputs, _eager(path, request), **SESSION_TOLERANCE)
  want = python_api["model"](inputs, training=False)
  reference = {"pooled_output": want["pooled_output"],
               "sequence_output": want["sequence_output"]}
  if version == 3:
    reference["default"] = want["pooled_output"]
    reference.update({f"encoder_outputs_{i}": t
                      for i, t in enumerate(want["encoder_outputs"])})
  _assert_same(served[-1], {k: np.asarray(v) for k, v in reference.items()},
               atol=VERIFY_TOLERANCE)


def test_preprocessing_runs_in_a_serving_session(exports, python_api):
  path = exports["preprocessing"]
  direct = {"sentences": _strings(SENTENCES)}
  feeds = [request for _, request in _warmup_records(path)] + [direct]
  report = {}
  served = run_signature_in_serving_session(path, feeds, report=report)
  assert report["imported_tensorflow_text"]  # FastWordpiece, as TF Serving embeds it
  for request, outputs in zip(feeds, served):
    _assert_same(outputs, _eager(path, request), atol=0)
  want = python_api["preprocessor"](tf.constant(SENTENCES))
  _assert_same(served[-1], {k: v.numpy() for k, v in want.items()}, atol=0)
  assert served[-1]["input_mask"][-1].sum() == SEQ_LENGTH  # the long one, truncated


@pytest.fixture(scope="module")
def text_embedding_served(exports):
  """Both signatures of the text-embedding export, run once each in a session.

  Requests: the warmup file's, the sentences fed directly, the REST bodies of
  examples/rest_client.py (both formats, parsed as the server parses JSON) and
  the gRPC request of examples/grpc_client.py (its TensorProtos).
  """
  path = exports["text_embedding"]
  rest_client, grpc_client = load_example("rest_client"), load_example("grpc_client")
  requests = {"serving_default": {}, "pairs": {}}
  for i, (name, inputs) in enumerate(_warmup_records(path)):
    requests[name][f"warmup {i}"] = inputs
  for name, second in (("serving_default", None), ("pairs", SECOND)):
    requests[name]["direct"] = {"sentences": _strings(SENTENCES)}
    if second is not None:
      requests[name]["direct"]["second_sentences"] = _strings(second)
    for format_ in ("instances", "inputs"):
      body = json.dumps(rest_client.build_body(SENTENCES, format=format_,
                                               second_sentences=second))
      signature = json.loads(body).get("signature_name", "serving_default")
      assert signature == name
      requests[name][f"rest {format_}"] = serving.rest_body_to_feeds(
          body, _signature_def(path, signature))
    request = grpc_client.build_request(SENTENCES, "embed", second_sentences=second)
    assert request.model_spec.signature_name == name
    requests[name]["grpc"] = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
  served = {}
  for name, by_label in requests.items():
    outputs = run_signature_in_serving_session(path, list(by_label.values()),
                                               signature_name=name)
    served[name] = dict(zip(by_label, outputs))
  return dict(requests=requests, served=served)


@pytest.mark.parametrize("signature", ["serving_default", "pairs"])
def test_text_embedding_runs_in_a_serving_session(exports, python_api,
                                                  text_embedding_served, signature):
  path = exports["text_embedding"]
  requests = text_embedding_served["requests"][signature]
  served = text_embedding_served["served"][signature]
  assert len([label for label in served if label.startswith("warmup")]) == 2
  for label, outputs in served.items():  # warmup requests included
    _assert_same(outputs, _eager(path, requests[label], signature),
                 **SESSION_TOLERANCE)
  second = SECOND if signature == "pairs" else None
  _assert_same(served["direct"], python_api["embed"](SENTENCES, second),
               atol=VERIFY_TOLERANCE)


@pytest.mark.parametrize("signature", ["serving_default", "pairs"])
@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_example_body_gives_the_python_api_numbers(
    python_api, text_embedding_served, signature, format_):
  second = SECOND if signature == "pairs" else None
  feeds = text_embedding_served["requests"][signature][f"rest {format_}"]
  np.testing.assert_array_equal(feeds["sentences"], _strings(SENTENCES))
  outputs = text_embedding_served["served"][signature][f"rest {format_}"]
  _assert_same(outputs, python_api["embed"](SENTENCES, second), atol=VERIFY_TOLERANCE)


@pytest.mark.parametrize("signature", ["serving_default", "pairs"])
def test_grpc_example_request_converts_to_the_same_tensors(
    python_api, text_embedding_served, signature):
  requests = text_embedding_served["requests"][signature]
  assert sorted(requests["grpc"]) == sorted(requests["direct"])
  for key in requests["direct"]:
    np.testing.assert_array_equal(requests["grpc"][key], requests["direct"][key])
  second = SECOND if signature == "pairs" else None
  _assert_same(text_embedding_served["served"][signature]["grpc"],
               python_api["embed"](SENTENCES, second), atol=VERIFY_TOLERANCE)


def test_text_embedding_equals_preprocessing_then_encoder_exports(exports):
  """The one-request model computes what the two exports compute in two."""
  ids = _eager(exports["preprocessing"], {"sentences": _strings(SENTENCES)})
  encoded = _eager(exports["encoder_v3"], ids)
  embedded = _eager(exports["text_embedding"], {"sentences": _strings(SENTENCES)})
  np.testing.assert_array_equal(embedded["input_mask"], ids["input_mask"])
  for key in ("pooled_output", "sequence_output"):
    np.testing.assert_allclose(embedded[key], encoded[key], rtol=0, atol=VERIFY_TOLERANCE)


def test_text_embedding_pairs_refuse_unequal_batches(exports):
  pairs = tf.saved_model.load(exports["text_embedding"]).signatures["pairs"]
  with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
    pairs(sentences=tf.constant(["a", "b"]), second_sentences=tf.constant(["c"]))


def test_text_embedding_in_hub_keras_layer(exports, python_api):
  layer = hub.KerasLayer(exports["text_embedding"])
  outputs = layer(tf.constant(SENTENCES))
  _assert_same({k: v.numpy() for k, v in outputs.items()},
               python_api["embed"](SENTENCES), atol=VERIFY_TOLERANCE)
  assert len(layer.weights) == len(python_api["model"].variables)


# ---------------------------------------------------------------- ops


@pytest.mark.parametrize("kind", KINDS)
def test_every_op_is_in_tf_serving(exports, kind):
  """Core TF 2.12.1 + TF Text 2.12.1 (export/data/serving_ops_allowlist.txt)."""
  assert serving.ops_outside_allowlist(exports[kind]) == []
  if kind in ("preprocessing", "text_embedding"):
    assert "FastWordpieceTokenizeWithOffsets" in serving.saved_model_op_types(exports[kind])


# ---------------------------------------------------------------- CLI


def test_cli_text_embedding_reports_its_stages(exports):
  printed = exports["printed"]
  stages = [line.split("]")[0][1:] for line in printed.splitlines()
            if line.startswith("[")]
  assert stages == ["reading", "building", "tracing", "writing", "warmup",
                    "verifying", "done"]
  assert "largest difference after reload" in printed
  assert sorted(os.listdir(exports["root"] / "embed")) == ["1"]  # no leftovers


@pytest.mark.parametrize("extra, message", [
    ([], "version exists"),
    (["--version", "2", "--seq-length", "65"], "bad --seq-length"),
    (["--version", "2", "--seq-length", "2"], "bad --seq-length"),
    (["--version", "0"], "bad --version"),
])
def test_cli_text_embedding_refuses_before_any_work(exports, capsys, extra, message):
  code = cli.main(["text-embedding", "--checkpoint", exports["prefix"], "--output",
                   str(exports["root"] / "embed"), "--seq-length", str(SEQ_LENGTH),
                   "--lower-case"] + extra)
  assert code == 2
  assert message in capsys.readouterr().err
  assert sorted(os.listdir(exports["root"] / "embed")) == ["1"]


def test_cli_text_embedding_needs_the_checkpoints_vocab(exports, tmp_path, capsys):
  small = fixtures.write_vocab(str(tmp_path), fixtures.TINY_VOCAB[:-3])
  code = cli.main(["text-embedding", "--checkpoint", exports["prefix"], "--vocab", small,
                   "--output", str(tmp_path / "out"), "--seq-length", "8", "--lower-case"])
  assert code == 2
  err = capsys.readouterr().err
  assert "vocabulary does not fit the model" in err and f"{CONFIG.vocab_size}" in err
  assert not (tmp_path / "out" / "1").exists()


def test_cli_serving_config_parses_as_model_server_config(exports, tmp_path, capsys):
  root = exports["root"]
  out = tmp_path / "config"
  assert cli.main(["serving-config", "--model", f"bert={root / 'encoder'}",
                   "--model", f"preprocess={root / 'preprocess'}",
                   "--model", f"embed={root / 'embed'}", "--output", str(out),
                   "--version-policy", "all", "--num-batch-threads", "2"]) == 0
  printed = capsys.readouterr().out
  assert "tensorflow_model_server" in printed and "--model_config_file=" in printed
  config = text_format.Parse((out / "models.config").read_text(),
                             model_server_config_pb2.ModelServerConfig())
  models = {c.name: c for c in config.model_config_list.config}
  assert sorted(models) == ["bert", "embed", "preprocess"]
  assert models["embed"].base_path == str((root / "embed").resolve())
  assert all(c.model_platform == "tensorflow" for c in models.values())
  assert all(c.model_version_policy.WhichOneof("policy_choice") == "all"
             for c in models.values())
  assert (out / "batching_parameters.txt").is_file()


def test_cli_inspect_shows_the_text_embedding_signatures(exports, capsys):
  assert cli.main(["inspect", exports["text_embedding"]]) == 0
  report = capsys.readouterr().out
  assert "pairs  (tensorflow/serving/predict)" in report
  assert "second_sentences: string [None]" in report
  assert f"sequence_output: float32 [None, {SEQ_LENGTH}, {H}]" in report
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): none" in report


# ---------------------------------------------------------------- real weights


@pytest.mark.slow
def test_minilm_text_embedding_served_equals_sentence_transformers(tmp_path):
  """The README's use: served sentences, mean-pooled, are sentence-transformers'."""
  from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  sentences = [a for a, _ in fixtures.PAIRS] + [b for _, b in fixtures.PAIRS]
  path = lib.export_text_embedding(checkpoint=fixtures.minilm_dir(),
                                   output_dir=str(tmp_path / "embed"),
                                   report=lib.quiet_report).path
  assert serving.ops_outside_allowlist(path) == []
  warm = [request for _, request in _warmup_records(path)
          if "second_sentences" not in request]
  served = run_signature_in_serving_session(
      path, warm + [{"sentences": _strings(sentences)}])[-1]
  mask = served["input_mask"][..., None].astype(np.float64)
  mean = (served["sequence_output"] * mask).sum(1) / mask.sum(1)
  mean /= np.linalg.norm(mean, axis=1, keepdims=True)
  reference = SentenceTransformer(fixtures.minilm_dir(), device="cpu").encode(
      sentences, normalize_embeddings=True)
  np.testing.assert_allclose(mean, reference, rtol=0, atol=1e-5)


def test_text_embedding_verification_catches_other_weights(exports, python_api):
  """What the export runs after reload: a model that differs is refused."""
  from bert_hub.encoder import build_encoder  # pylint: disable=g-import-not-at-top
  from export import text_embedding  # pylint: disable=g-import-not-at-top
  assert text_embedding.verify_text_embedding(
      exports["text_embedding"], python_api["model"], python_api["preprocessor"],
      seq_length=SEQ_LENGTH) <= VERIFY_TOLERANCE
  with pytest.raises(bert_hub.errors.ExportVerificationError,
                     match="serving_default pooled_output=.*pairs sequence_output="):
    text_embedding.verify_text_embedding(
        exports["text_embedding"], build_encoder(CONFIG), python_api["preprocessor"],
        seq_length=SEQ_LENGTH)
