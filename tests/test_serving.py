"""Every export is a TF Serving servable: tested as the server loads it.

One tiny TF1 checkpoint (tests/fixtures.tiny_config) is exported as the encoder
(versions 1, 2, 3) and the preprocessing model (the text-embedding servable has
its own tests/test_text_embedding.py), once per test run (tests/fixtures.py:
tiny_encoders, tiny_preprocessing). Each is then
  * read as files: one MetaGraph tagged `serve`, `serving_default` with
    meaningful names, batch dimension first;
  * run in a fresh process, in a tf.compat.v1 session, fed by tensor names,
    as tensorflow_model_server does, with its warmup requests and with the
    requests the example clients build (all of this module's runs in ONE
    process: tests/serving_utils.py, run_many_in_serving_sessions);
  * compared with the eager call of the reloaded signature (the same kernels)
    and with the Python API (bert_hub.load_encoder + create_preprocessing).
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import functools
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (tf.saved_model.load needs the TF Text ops)
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from bert_hub import preprocessing
from bert_hub.encoder import INPUT_NAMES, sample_inputs
from export import cli, versions
from export.verify import VERIFY_TOLERANCE
from export.serving import ops
from tests import fixtures
from tests import serving_utils

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


@pytest.fixture(scope="module")
def exports(run_shared):
  """The tiny encoder as versions 1, 2, 3 and the preprocessing model, each made
  once per run (tests/fixtures.py: tiny_encoders, tiny_preprocessing)."""
  encoders = fixtures.tiny_encoders(run_shared)
  preprocessing = fixtures.tiny_preprocessing(run_shared)
  return dict(encoder=encoders["base"], preprocess=preprocessing["base"],
              prefix=encoders["prefix"], vocab=encoders["vocab"],
              preprocessing_vocab=preprocessing["vocab"],
              preprocessing=preprocessing["path"],
              **{f"encoder_v{v}": encoders[v] for v in (1, 2, 3)})


@pytest.fixture(scope="module")
def python_api(exports):
  """The in-memory models of the Python API, as a user composes them."""
  model = bert_hub.load_encoder(exports["prefix"])
  preprocessor = preprocessing.create_preprocessing(
      vocab_file=exports["preprocessing_vocab"], lower_case=True,
      default_seq_length=SEQ_LENGTH)

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


@functools.lru_cache(maxsize=None)
def _loaded(path):
  """The reloaded SavedModel, loaded once per module (the tests only call it)."""
  return tf.saved_model.load(path)


def _eager(path, feeds, signature_name="serving_default"):
  function = _loaded(path).signatures[signature_name]
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
  assert kind == "preprocessing"
  return {"serving_default": (
      {"sentences": sentences},
      dict.fromkeys(INPUT_NAMES, ("int32", [-1, SEQ_LENGTH])))}


KINDS = ["encoder_v1", "encoder_v2", "encoder_v3", "preprocessing"]


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
  if kind == "preprocessing":
    assert b"Hello, world!" in records[0][1]["sentences"]
  if kind.startswith("encoder"):
    ids = records[-1][1]["input_word_ids"]
    assert ids.min() >= 0 and ids.max() < CONFIG.vocab_size and ids.shape[1] == 64


# ---------------------------------------------------------------- serve-tag sessions


@pytest.fixture(scope="module")
def served(exports):
  """Every serving-session run of this module, in ONE fresh process.

  The three encoders are loaded first, before tensorflow_text is imported (the
  preprocessing model needs it), each in its own TF1 session: the report says,
  per model, whether TF Text had been imported and which ops core TensorFlow
  lacks, as run_signature_in_serving_session(report=) says for one model.
  """
  def warmup_requests(kind):
    return [request for _, request in _warmup_records(exports[kind])]
  feeds = {f"encoder_v{v}": warmup_requests(f"encoder_v{v}") + [_direct_encoder_feeds(v)[1]]
           for v in (1, 2, 3)}
  feeds["preprocessing"] = (warmup_requests("preprocessing")
                            + [{"sentences": _strings(SENTENCES)}])
  kinds = list(feeds)
  results, reports = serving_utils.run_many_in_serving_sessions(
      [(exports[kind], "serving_default", feeds[kind]) for kind in kinds], reports=True)
  return {kind: (feeds[kind], outputs, report)
          for kind, outputs, report in zip(kinds, results, reports)}


def _direct_encoder_feeds(version):
  """Sample ids (canonical names) and the same under the version's input names."""
  names = versions.get(version).input_names
  inputs = sample_inputs(CONFIG, batch=3, seq_length=SEQ_LENGTH, seed=7)
  return inputs, {name: inputs[canonical] for name, canonical in zip(names, INPUT_NAMES)}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_encoder_runs_in_a_serving_session(exports, python_api, served, version):
  path = exports[f"encoder_v{version}"]
  inputs, direct = _direct_encoder_feeds(version)
  feeds, served_outputs, report = served[f"encoder_v{version}"]
  assert len(feeds) == len(served_outputs) and len(feeds) >= 3
  for key, value in direct.items():  # the last request is the direct one
    np.testing.assert_array_equal(feeds[-1][key], value)
  assert report == {"imported_tensorflow_text": False, "ops_not_in_core": []}
  for request, outputs in zip(feeds, served_outputs):  # the warmup requests run, too
    _assert_same(outputs, _eager(path, request), **SESSION_TOLERANCE)
  want = python_api["model"](inputs, training=False)
  reference = {"pooled_output": want["pooled_output"],
               "sequence_output": want["sequence_output"]}
  if version == 3:
    reference["default"] = want["pooled_output"]
    reference.update({f"encoder_outputs_{i}": t
                      for i, t in enumerate(want["encoder_outputs"])})
  _assert_same(served_outputs[-1], {k: np.asarray(v) for k, v in reference.items()},
               atol=VERIFY_TOLERANCE)


def test_a_failing_serving_child_reports_its_stderr_and_the_next_one_runs(exports):
  """tests/serving_utils.py forks each child from one server: a child that fails
  (no SavedModel there) raises with the child's own stderr, and the server
  serves the next request."""
  with pytest.raises(RuntimeError, match=r"(?s)TF1 session failed \(exit 1\).*"
                                         r"(SavedModel|saved_model)"):
    serving_utils.run_signature_in_serving_session(
        str(pathlib.Path(exports["encoder_v3"]).parent / "missing"),
        {"input_word_ids": np.zeros([1, 4], np.int32)})
  path = exports["encoder_v3"]
  feeds = {name: np.ones([1, 4], np.int32) for name in INPUT_NAMES}
  outputs = serving_utils.run_signature_in_serving_session(path, feeds)
  _assert_same(outputs, _eager(path, feeds), **SESSION_TOLERANCE)


def test_preprocessing_runs_in_a_serving_session(exports, python_api, served):
  path = exports["preprocessing"]
  feeds, served_outputs, report = served["preprocessing"]
  assert len(feeds) == len(served_outputs) and len(feeds) >= 3
  np.testing.assert_array_equal(feeds[-1]["sentences"], _strings(SENTENCES))
  assert report["imported_tensorflow_text"]  # FastWordpiece, as TF Serving embeds it
  for request, outputs in zip(feeds, served_outputs):
    _assert_same(outputs, _eager(path, request), atol=0)
  want = python_api["preprocessor"](tf.constant(SENTENCES))
  _assert_same(served_outputs[-1], {k: v.numpy() for k, v in want.items()}, atol=0)
  assert served_outputs[-1]["input_mask"][-1].sum() == SEQ_LENGTH  # the long one, truncated


# ---------------------------------------------------------------- ops


@pytest.mark.parametrize("kind", KINDS)
def test_every_op_is_in_tf_serving(exports, kind):
  """Core TF 2.12.1 + TF Text 2.12.1 (export/data/serving_ops_allowlist.txt)."""
  assert ops.ops_outside_allowlist(exports[kind]) == []
  if kind == "preprocessing":
    assert "FastWordpieceTokenizeWithOffsets" in ops.saved_model_op_types(exports[kind])


# ---------------------------------------------------------------- CLI


def test_cli_serving_config_parses_as_model_server_config(exports, tmp_path, capsys):
  encoder, preprocess = pathlib.Path(exports["encoder"]), pathlib.Path(exports["preprocess"])
  out = tmp_path / "config"
  assert cli.main(["serving-config", "--model", f"bert={encoder}",
                   "--model", f"preprocess={preprocess}", "--output", str(out),
                   "--version-policy", "all", "--num-batch-threads", "2"]) == 0
  printed = capsys.readouterr().out
  assert "tensorflow_model_server" in printed and "--model_config_file=" in printed
  config = text_format.Parse((out / "models.config").read_text(),
                             model_server_config_pb2.ModelServerConfig())
  models = {c.name: c for c in config.model_config_list.config}
  assert sorted(models) == ["bert", "preprocess"]
  assert models["preprocess"].base_path == str(preprocess.resolve())
  assert all(c.model_platform == "tensorflow" for c in models.values())
  assert all(c.model_version_policy.WhichOneof("policy_choice") == "all"
             for c in models.values())
  assert (out / "batching_parameters.txt").is_file()
