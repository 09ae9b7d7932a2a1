"""Tests of export/serving.py, export/serving_cli.py and the example clients.

Every SavedModel here is built by the test itself, small and random-free:
  plain:  a tf.Module with variables, an asset and a two-input signature.
  text:   a FastWordpieceTokenizer (a TF Text op that TF Serving has).
  trim:   text.RoundRobinTrimmer, whose `TFText>RoundRobinTrim` TF Serving lacks.
The server itself is replaced by tests/serving_utils.py: a fresh process that
runs the signature in a TF1 session as TF Serving does.
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as text
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from bert_hub.errors import BertHubError
from export import serving
from export import serving_cli
from tests.serving_utils import load_example, run_signature_in_serving_session

ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = ["[UNK]", "hello", "world", "serv", "##ing", "##s", "tf"]

# The TF1 session and the eager call run the same kernels, but the session's
# graph optimizer (grappler) may fuse MatMul+Add, which can round float32
# differently in the last bit. Integers and strings must match exactly.
FLOAT_RTOL = 1e-6


class _Plain(tf.Module):
  """x [batch, 3] float32, n [batch] int32 -> y = x @ w + b, n_doubled = 2 n."""

  def __init__(self, vocab_path):
    super().__init__()
    self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10)
    self.b = tf.Variable([0.5, -0.5], dtype=tf.float32)
    self.vocab_file = tf.saved_model.Asset(vocab_path)
    self.do_lower_case = tf.Variable(True, trainable=False)

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def __call__(self, x, n):
    return {"y": tf.matmul(x, self.w) + self.b, "n_doubled": n * 2}


class _Text(tf.Module):
  """sentences [batch] string -> token_ids [batch, tokens] int64, num_tokens [batch]."""

  def __init__(self):
    super().__init__()
    self.tokenizer = text.FastWordpieceTokenizer(VOCAB, token_out_type=tf.int64)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(self, sentences):
    return self.tokenizer.tokenize(tf.strings.split(sentences)).merge_dims(-2, -1)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, sentences):
    ids = self.tokenize(sentences)
    return {"token_ids": ids.to_tensor(), "num_tokens": ids.row_lengths()}


class _Trim(tf.Module):
  """The op TF Serving's TF Text 2.12.1 lacks (tensorflow/serving#2267)."""

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
  def __call__(self, ids):
    ragged = tf.RaggedTensor.from_tensor(ids)
    first, _ = text.RoundRobinTrimmer(max_seq_length=4).trim([ragged, ragged])
    return {"trimmed": first.to_tensor()}


def _save(module, base: pathlib.Path, version=1) -> pathlib.Path:
  export_dir = base / str(version)
  tf.saved_model.save(module, str(export_dir),
                      signatures={"serving_default": module.__call__})
  return export_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("serving_models")
  vocab = root / "vocab.txt"
  vocab.write_text("\n".join(VOCAB) + "\n")
  return {"plain": _save(_Plain(str(vocab)), root / "plain"),
          "text": _save(_Text(), root / "text"),
          "trim": _save(_Trim(), root / "trim")}


def _eager(export_dir, feeds, signature_name="serving_default"):
  function = tf.saved_model.load(str(export_dir)).signatures[signature_name]
  return {k: v.numpy() for k, v in function(**{k: tf.constant(v)
                                               for k, v in feeds.items()}).items()}


def _assert_same_outputs(actual, expected):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    if np.asarray(expected[name]).dtype.kind == "f":
      np.testing.assert_allclose(actual[name], expected[name], rtol=FLOAT_RTOL)
    else:
      np.testing.assert_array_equal(actual[name], expected[name])


PLAIN_FEEDS = {"x": np.array([[1, 2, 3], [-1, 0, 0.5]], np.float32),
               "n": np.array([7, -2], np.int32)}
TEXT_FEEDS = {"sentences": np.array([b"hello world", b"tf servings", b"hello"],
                                    dtype=object)}


# ---------------------------------------------------------------- allowlist


def test_committed_allowlist_has_tf_text_2_12_ops_but_not_round_robin_trim():
  lines = serving.ALLOWLIST_PATH.read_text().splitlines()
  assert lines[0].startswith("#")
  header = "\n".join(line for line in lines if line.startswith("#"))
  assert "tensorflow==2.12.1 tensorflow-text==2.12.1" in header
  assert "tools/gen_serving_op_allowlist.py" in header
  ops = serving.serving_op_allowlist()
  assert len(ops) > 1800
  assert {"FastWordpieceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
          "CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets",
          "TFText>FastWordpieceDetokenize", "MatMul", "ReadVariableOp"} <= ops
  # Added to TF Text after 2.12: these must not be served.
  assert not {"TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks",
              "TFText>Utf8Binarize"} & ops
  # Each section is sorted, so a regenerated file diffs cleanly.
  sections = "\n".join(lines).split("\n\n")[1:]
  for section in sections:
    names = [line for line in section.splitlines() if not line.startswith("#")]
    assert names == sorted(names)


# ---------------------------------------------------------------- ops


def test_saved_model_op_types_lists_graph_and_function_ops(models):
  ops = serving.saved_model_op_types(models["plain"])
  assert {"MatMul", "AddV2", "Mul", "ReadVariableOp", "Placeholder",
          "StatefulPartitionedCall"} <= ops
  assert not [op for op in ops if op.startswith("__inference")]
  assert "FastWordpieceTokenizeWithOffsets" in serving.saved_model_op_types(models["text"])


def test_ops_outside_allowlist_catches_round_robin_trim_only(models):
  assert serving.ops_outside_allowlist(models["plain"]) == []
  assert serving.ops_outside_allowlist(models["text"]) == []
  assert serving.ops_outside_allowlist(models["trim"]) == ["TFText>RoundRobinTrim"]


def test_ops_outside_allowlist_takes_another_list(models, tmp_path):
  allowlist = tmp_path / "ops.txt"
  allowlist.write_text("# only a few\nMatMul\n\nAddV2\n")
  outside = serving.ops_outside_allowlist(models["plain"], allowlist_path=allowlist)
  assert "ReadVariableOp" in outside and "MatMul" not in outside


def test_ops_outside_core_tensorflow(models):
  assert serving.ops_outside_core_tensorflow(models["plain"]) == []
  assert serving.ops_outside_core_tensorflow(models["text"]) == [
      "FastWordpieceTokenizeWithOffsets"]
  assert serving.ops_outside_core_tensorflow(models["trim"]) == ["TFText>RoundRobinTrim"]


def test_model_base_directory_is_not_a_saved_model(models):
  with pytest.raises(BertHubError) as error:
    serving.saved_model_op_types(models["plain"].parent)
  assert "versions ['1']" in str(error.value)
  assert str(models["plain"]) in error.value.fix


# ---------------------------------------------------------------- inspect


def test_inspect_reports_signatures_objects_variables_and_ops(models):
  report = serving.inspect_saved_model(models["plain"])
  assert "saved_model.pb: " in report
  assert "serving_default  (tensorflow/serving/predict)" in report
  assert "x: float32 [None, 3]" in report
  assert "n: int32 [None]" in report
  assert "y: float32 [None, 2]" in report
  assert "n_doubled: int32 [None]" in report
  assert "__saved_model_init_op" not in report
  assert "vocab_file: asset vocab.txt" in report
  assert "do_lower_case: variable bool []" in report
  assert "w: variable float32 [3, 2], trainable" in report
  # w: 6 float32 + b: 2 float32 trainable; do_lower_case: 1 bool, not trainable.
  assert "variables: 3 (2 trainable: 8 parameters), 33 bytes as tensors" in report
  assert "(need tensorflow_text): none" in report
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): none" in report

  report = serving.inspect_saved_model(models["text"])
  assert "sentences: string [None]" in report
  assert "token_ids: int64 [None, None]" in report
  assert "tokenize: tf.function" in report
  assert "(need tensorflow_text): FastWordpieceTokenizeWithOffsets" in report

  report = serving.inspect_saved_model(models["trim"])
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): " \
         "TFText>RoundRobinTrim" in report


# ---------------------------------------------------------------- serving config


def _parse_models_config(path) -> model_server_config_pb2.ModelServerConfig:
  return text_format.Parse(pathlib.Path(path).read_text(),
                           model_server_config_pb2.ModelServerConfig())


def test_serving_config_parses_back(models, tmp_path):
  written = serving.write_serving_config(
      models=[("plain", models["plain"].parent), ("text", str(models["text"].parent))],
      path=tmp_path / "config", num_batch_threads=4)
  configs = _parse_models_config(written.models_config).model_config_list.config
  assert [c.name for c in configs] == ["plain", "text"]
  assert [c.base_path for c in configs] == [str(models["plain"].parent.resolve()),
                                            str(models["text"].parent.resolve())]
  assert all(pathlib.Path(c.base_path).is_absolute() for c in configs)
  assert {c.model_platform for c in configs} == {"tensorflow"}
  assert all(c.model_version_policy.WhichOneof("policy_choice") == "latest"
             for c in configs)

  batching = text_format.Parse(pathlib.Path(written.batching_parameters).read_text(),
                               serving.BatchingParameters())
  assert batching.max_batch_size.value == 32
  assert batching.batch_timeout_micros.value == 1000
  assert batching.max_enqueued_batches.value == 100
  assert batching.num_batch_threads.value == 4
  assert not batching.allowed_batch_sizes and not batching.pad_variable_length_inputs
  assert f"--model_config_file={written.models_config}" in written.command
  assert "--enable_batching" in written.command


def test_batching_parameters_mirror_has_tf_serving_field_numbers():
  fields = {f.name: f.number for f in serving.BatchingParameters.DESCRIPTOR.fields}
  assert fields == {"max_batch_size": 1, "batch_timeout_micros": 2,
                    "max_enqueued_batches": 3, "num_batch_threads": 4,
                    "thread_pool_name": 5, "allowed_batch_sizes": 6,
                    "pad_variable_length_inputs": 7}
  assert serving.BatchingParameters.DESCRIPTOR.full_name == \
      "tensorflow.serving.BatchingParameters"


def test_serving_config_version_policies(models, tmp_path):
  base = tmp_path / "plain"
  for version in (1, 3):
    shutil.copytree(models["plain"], base / str(version))
  written = serving.write_serving_config(models=[("plain", base)], path=tmp_path,
                                         version_policy=[3, 1], batching=False)
  policy = _parse_models_config(written.models_config).model_config_list.config[0]
  assert list(policy.model_version_policy.specific.versions) == [1, 3]
  assert written.batching_parameters is None
  assert not (tmp_path / serving.BATCHING_PARAMETERS_NAME).exists()
  assert "--enable_batching" not in written.command

  written = serving.write_serving_config(models=[("plain", base)], path=tmp_path,
                                         version_policy="all")
  policy = _parse_models_config(written.models_config).model_config_list.config[0]
  assert policy.model_version_policy.WhichOneof("policy_choice") == "all"


@pytest.mark.parametrize("case, message", [
    ("duplicate", "given twice"),
    ("missing", "no directory"),
    ("no_versions", "no version directories"),
    ("saved_model_itself", "is a SavedModel, not a model base directory"),
    ("missing_specific", "versions [7] not found"),
    ("half_written", "without saved_model.pb"),
    ("bad_policy", "bad version_policy"),
    ("bad_name", "bad model name"),
    ("empty", "no models to serve"),
    ("bad_threads", "bad num_batch_threads"),
])
def test_serving_config_validation(models, tmp_path, case, message):
  base = models["plain"].parent
  empty = tmp_path / "empty_model"
  empty.mkdir()
  (empty / "notes").mkdir()
  half = tmp_path / "half_written"
  (half / "1").mkdir(parents=True)
  kwargs = {
      "duplicate": dict(models=[("m", base), ("m", models["text"].parent)]),
      "missing": dict(models=[("m", tmp_path / "nope")]),
      "no_versions": dict(models=[("m", empty)]),
      "saved_model_itself": dict(models=[("m", models["plain"])]),
      "missing_specific": dict(models=[("m", base)], version_policy=[1, 7]),
      "half_written": dict(models=[("m", half)]),
      "bad_policy": dict(models=[("m", base)], version_policy="newest"),
      "bad_name": dict(models=[("my model/v1", base)]),
      "empty": dict(models=[]),
      "bad_threads": dict(models=[("m", base)], num_batch_threads=0),
  }[case]
  with pytest.raises(BertHubError, match=message.replace("[", r"\[").replace("]", r"\]")):
    serving.write_serving_config(path=tmp_path / "out", **kwargs)
  assert not (tmp_path / "out" / serving.MODELS_CONFIG_NAME).exists()


# ---------------------------------------------------------------- CLI


def test_cli_serving_config_and_inspect(models, tmp_path, capsys):
  out = tmp_path / "cli"
  assert serving_cli.main([
      "serving-config", "--model", f"plain={models['plain'].parent}",
      "--model", f"text={models['text'].parent}", "--output", str(out),
      "--version-policy", "specific:1", "--num-batch-threads", "2"]) == 0
  configs = _parse_models_config(out / "models.config").model_config_list.config
  assert [list(c.model_version_policy.specific.versions) for c in configs] == [[1], [1]]
  assert "tensorflow_model_server" in capsys.readouterr().out

  assert serving_cli.main(["serving-config", "--model", "a=/nonexistent",
                           "--output", str(out)]) == 2
  assert "error: model 'a': no directory" in capsys.readouterr().err

  assert serving_cli.main(["inspect", str(models["text"])]) == 0
  assert "(need tensorflow_text): FastWordpieceTokenizeWithOffsets" in \
      capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["serving-config", "--model", "no_equals_sign", "--output", "x"],
    ["serving-config", "--model", "a=b", "--output", "x", "--version-policy", "specific:"],
    ["serving-config", "--model", "a=b", "--output", "x", "--version-policy", "1,2"],
    ["serving-config", "--output", "x"],
])
def test_cli_rejects_bad_arguments(argv):
  with pytest.raises(SystemExit) as exit_:
    serving_cli.main(argv)
  assert exit_.value.code == 2


# ---------------------------------------------------------------- warmup


def test_warmup_requests_round_trip_and_run_like_the_server(models):
  requests = [PLAIN_FEEDS,
              {"x": np.array([[0.25, 0.5, 1]], np.float32), "n": np.array([3], np.int32)}]
  path = serving.write_warmup_requests(export_dir=models["plain"], requests=requests,
                                       model_name="plain")
  assert path == str(models["plain"] / "assets.extra" / "tf_serving_warmup_requests")

  # Each record is a PredictionLog with a PredictRequest, as TF Serving reads it.
  records = [prediction_log_pb2.PredictionLog.FromString(r)
             for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
  assert len(records) == 2
  for record in records:
    assert record.WhichOneof("log_type") == "predict_log"
    spec = record.predict_log.request.model_spec
    assert (spec.name, spec.signature_name) == ("plain", "serving_default")

  read = serving.read_warmup_requests(models["plain"])
  assert len(read) == 2
  for original, parsed in zip(requests, read):
    assert sorted(parsed) == ["n", "x"]
    for key in original:
      assert parsed[key].dtype == original[key].dtype
      np.testing.assert_array_equal(parsed[key], original[key])

  report = {}
  served = run_signature_in_serving_session(models["plain"], read, report=report)
  assert report == {"imported_tensorflow_text": False, "ops_not_in_core": []}
  for request, outputs in zip(requests, served):
    _assert_same_outputs(outputs, _eager(models["plain"], request))


def test_warmup_of_a_tf_text_model_runs_with_tf_text_registered(models):
  serving.write_warmup_requests(export_dir=models["text"],
                                requests=[{"sentences": ["hello world", "tf"]}])
  (request,) = serving.read_warmup_requests(models["text"])
  np.testing.assert_array_equal(request["sentences"], [b"hello world", b"tf"])
  report = {}
  outputs = run_signature_in_serving_session(models["text"], request, report=report)
  assert report == {"imported_tensorflow_text": True,
                    "ops_not_in_core": ["FastWordpieceTokenizeWithOffsets"]}
  _assert_same_outputs(outputs, _eager(models["text"], request))
  # hello world -> [1, 2]; tf -> [6] padded with 0.
  np.testing.assert_array_equal(outputs["token_ids"], [[1, 2], [6, 0]])


@pytest.mark.parametrize("requests, signature_name, message", [
    ([{"x": PLAIN_FEEDS["x"]}], "serving_default", "does not match signature"),
    ([{**PLAIN_FEEDS, "extra": np.zeros(2)}], "serving_default", "does not match"),
    ([{"x": np.array([["a", "b", "c"]]), "n": np.array([1], np.int32)}],
     "serving_default", "wrong dtype"),
    ([{"x": np.zeros((2, 4), np.float32), "n": np.array([1, 2], np.int32)}],
     "serving_default", "wrong shape"),
    ([{"x": np.zeros((1, 3)), "n": np.array([2**40])}], "serving_default",
     "out of range"),
    ([], "serving_default", "bad number of warmup requests"),
    ([PLAIN_FEEDS], "classify", "has no signature 'classify'"),
])
def test_warmup_rejects_requests_the_signature_cannot_take(
    models, requests, signature_name, message):
  with pytest.raises(BertHubError, match=message):
    serving.write_warmup_requests(export_dir=models["plain"], requests=requests,
                                  signature_name=signature_name)


# ---------------------------------------------------------------- REST


@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_body_gives_the_same_numbers_as_the_eager_call(models, format_):
  signature = tf.saved_model.load(str(models["plain"])).signatures["serving_default"]
  body = serving.rest_predict_body(PLAIN_FEEDS, format=format_)
  assert list(body) == [format_]
  if format_ == "instances":
    assert body["instances"][1] == {"x": [-1.0, 0.0, 0.5], "n": -2}
  feeds = serving.rest_body_to_feeds(json.dumps(body), signature)  # Through JSON text.
  assert feeds["x"].dtype == np.float32 and feeds["n"].dtype == np.int32
  _assert_same_outputs(_eager(models["plain"], feeds), _eager(models["plain"], PLAIN_FEEDS))


@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_body_with_strings_runs_like_the_server(models, format_):
  body = serving.rest_predict_body(TEXT_FEEDS, format=format_,
                                   signature_name="serving_default")
  assert body["signature_name"] == "serving_default"
  signature = tf.saved_model.load(str(models["text"])).signatures["serving_default"]
  feeds = serving.rest_body_to_feeds(json.loads(json.dumps(body)), signature)
  np.testing.assert_array_equal(feeds["sentences"], TEXT_FEEDS["sentences"])
  _assert_same_outputs(run_signature_in_serving_session(models["text"], feeds),
                       _eager(models["text"], TEXT_FEEDS))


def test_rest_bodies_written_by_hand_in_every_documented_form(models):
  signature = tf.saved_model.load(str(models["text"])).signatures["serving_default"]
  expected = np.array([b"hello", b"\xff\x00 binary"], dtype=object)
  for body in [
      {"instances": ["hello", {"b64": "/wAgYmluYXJ5"}]},  # Plain list, one input.
      {"instances": [{"sentences": "hello"}, {"sentences": {"b64": "/wAgYmluYXJ5"}}]},
      {"inputs": ["hello", {"b64": "/wAgYmluYXJ5"}]},
      {"inputs": {"sentences": ["hello", {"b64": "/wAgYmluYXJ5"}], "ignored": 1}},
  ]:
    np.testing.assert_array_equal(
        serving.rest_body_to_feeds(body, signature)["sentences"], expected)
  # And rest_predict_body sends non-UTF-8 bytes as b64 itself.
  assert serving.rest_predict_body({"sentences": expected})["instances"][1] == {
      "sentences": {"b64": "/wAgYmluYXJ5"}}


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"x": [1, 2, 3], "n": 1.5}]}, "not of expected type int32"),
    ({"instances": [{"x": [1, 2, 3], "n": True}]}, "not of expected type int32"),
    ({"instances": [{"x": [1, 2, 3], "n": 2**31}]}, "out of range"),
    ({"instances": [{"x": [1, 2, 3], "n": 1}, {"x": [1, 2], "n": 1}]}, "shapes"),
    ({"instances": [{"x": [1, 2, 3]}]}, "must be equal to"),
    ({"instances": [[1, 2, 3]]}, "plain list"),
    ({"instances": []}, "non-empty"),
    ({"inputs": {"x": [[1, 2, 3], [4, 5]], "n": [1, 2]}}, "ragged"),
    ({"inputs": {"x": [[1, 2, 3]]}}, "missing named inputs"),
    ({"inputs": {"x": [[1, 2, 3]], "n": [1]}, "instances": []}, "exactly one"),
    ({"inputs": {"x": [1, 2, 3], "n": [1]}}, "the signature wants"),
])
def test_rest_bodies_the_server_would_reject(models, body, message):
  signature = tf.saved_model.load(str(models["plain"])).signatures["serving_default"]
  with pytest.raises(BertHubError, match=message):
    serving.rest_body_to_feeds(body, signature)


def test_rest_row_format_needs_one_batch_size():
  with pytest.raises(BertHubError, match="format='inputs'"):
    serving.rest_predict_body({"a": [1, 2], "b": [1]})
  assert serving.rest_predict_body({"a": [1, 2], "b": [1]}, format="inputs") == {
      "inputs": {"a": [1, 2], "b": [1]}}


# ---------------------------------------------------------------- examples


def test_grpc_client_request_carries_the_sentences():
  grpc_client = load_example("grpc_client")
  sentences = ["hello world", "héllo wörld", ""]
  request = grpc_client.build_request(sentences, "bert", output_filter=["pooled_output"])
  assert request.model_spec.name == "bert"
  assert request.model_spec.signature_name == "serving_default"
  assert list(request.output_filter) == ["pooled_output"]
  assert list(request.inputs) == ["sentences"]
  tensor = request.inputs["sentences"]
  assert tf.dtypes.as_dtype(tensor.dtype) == tf.string
  np.testing.assert_array_equal(tf.make_ndarray(tensor),
                                [s.encode("utf-8") for s in sentences])


@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_client_body_feeds_the_sentences(models, format_):
  rest_client = load_example("rest_client")
  body = rest_client.build_body(["hello world", b"tf"], "serving_default", format=format_)
  signature = tf.saved_model.load(str(models["text"])).signatures["serving_default"]
  # The example model's input is `sentences`, like a bert-hub text-embedding model.
  feeds = serving.rest_body_to_feeds(json.dumps(body), signature)
  np.testing.assert_array_equal(feeds["sentences"], [b"hello world", b"tf"])
