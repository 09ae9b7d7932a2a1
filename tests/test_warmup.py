"""Tests of the warmup file I/O of export/warmup.py, on tests/serving_models.py's models.

Each test (or the module's `replayed` fixture) writes into its own copy of a
model (the session's models stay as built). The requests are run as TF Serving
replays them: in a fresh process, in a TF1 session (both models in one process:
tests/serving_utils.py, run_many_in_serving_sessions).
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from bert_hub.errors import BertHubError
from export import warmup
from tests import serving_utils
from tests.serving_models import PLAIN_FEEDS, assert_same_outputs, eager


@pytest.fixture
def copies(serving_models, tmp_path):
  """{"plain" | "text": a copy of that model's DIR/1 in tmp_path}."""
  return {name: shutil.copytree(serving_models[name], tmp_path / name / "1")
          for name in ("plain", "text")}


PLAIN_REQUESTS = [PLAIN_FEEDS,
                  {"x": np.array([[0.25, 0.5, 1]], np.float32), "n": np.array([3], np.int32)}]
TEXT_REQUESTS = [{"sentences": ["hello world", "tf"]}]


@pytest.fixture(scope="module")
def replayed(serving_models, tmp_path_factory):
  """Warmup files written into copies of the plain and the text model, read back,
  and replayed as TF Serving replays them, both models in ONE fresh process
  (serving_utils.run_many_in_serving_sessions: the plain model is loaded
  before tensorflow_text is imported, and only the text model needs it).

  {"plain" | "text": dict(export_dir, path (write's), read, served, report)}
  """
  root = tmp_path_factory.mktemp("replayed")
  out = {}
  for name, requests, kwargs in (("plain", PLAIN_REQUESTS, dict(model_name="plain")),
                                 ("text", TEXT_REQUESTS, {})):
    export_dir = shutil.copytree(serving_models[name], root / name / "1")
    path = warmup.write_warmup_requests(export_dir=export_dir, requests=requests, **kwargs)
    out[name] = dict(export_dir=export_dir, path=path,
                     read=warmup.read_warmup_requests(export_dir))
  served, reports = serving_utils.run_many_in_serving_sessions(
      [(out[name]["export_dir"], "serving_default", out[name]["read"]) for name in out],
      reports=True)
  for name, outputs, report in zip(out, served, reports):
    out[name].update(served=outputs, report=report)
  return out


def test_warmup_requests_round_trip_and_run_like_the_server(replayed):
  export_dir, path = replayed["plain"]["export_dir"], replayed["plain"]["path"]
  requests = PLAIN_REQUESTS
  assert path == str(export_dir / "assets.extra" / "tf_serving_warmup_requests")
  assert path == str(export_dir / warmup.WARMUP_RELATIVE_PATH)

  # Each record is a PredictionLog with a PredictRequest, as TF Serving reads it.
  records = [prediction_log_pb2.PredictionLog.FromString(r)
             for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
  assert len(records) == 2
  for record in records:
    assert record.WhichOneof("log_type") == "predict_log"
    spec = record.predict_log.request.model_spec
    assert (spec.name, spec.signature_name) == ("plain", "serving_default")

  read = replayed["plain"]["read"]
  assert len(read) == 2
  for original, parsed in zip(requests, read):
    assert sorted(parsed) == ["n", "x"]
    for key in original:
      assert parsed[key].dtype == original[key].dtype
      np.testing.assert_array_equal(parsed[key], original[key])

  # `read` replayed in a fresh TF1 session (the `replayed` fixture).
  served = replayed["plain"]["served"]
  assert len(served) == len(read)
  assert replayed["plain"]["report"] == {"imported_tensorflow_text": False,
                                         "ops_not_in_core": []}
  for request, outputs in zip(requests, served):
    assert_same_outputs(outputs, eager(export_dir, request))


def test_warmup_of_a_tf_text_model_runs_with_tf_text_registered(replayed):
  export_dir = replayed["text"]["export_dir"]
  (request,) = replayed["text"]["read"]
  np.testing.assert_array_equal(request["sentences"], [b"hello world", b"tf"])
  (outputs,) = replayed["text"]["served"]  # `request` replayed in a TF1 session
  assert replayed["text"]["report"] == {"imported_tensorflow_text": True,
                                        "ops_not_in_core": ["FastWordpieceTokenizeWithOffsets"]}
  assert_same_outputs(outputs, eager(export_dir, request))
  # hello world -> [1, 2]; tf -> [6] padded with 0.
  np.testing.assert_array_equal(outputs["token_ids"], [[1, 2], [6, 0]])


def test_write_reports_the_count_and_names_the_model(copies, tmp_path):
  reported = []
  path = warmup.write(str(copies["text"]), warmup.preprocessing_requests(),
                      output_dir=str(tmp_path / "my_model"),
                      report=lambda stage, message: reported.append((stage, message)))
  assert reported == [("warmup", f"2 requests -> {warmup.WARMUP_RELATIVE_PATH}")]
  records = [prediction_log_pb2.PredictionLog.FromString(r)
             for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
  assert [r.predict_log.request.model_spec.name for r in records] == ["my_model"] * 2
  read = warmup.read_warmup_requests(path)
  np.testing.assert_array_equal(read[1]["sentences"],
                                [s.encode("utf-8") for s in warmup.SENTENCES])


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
    ([PLAIN_FEEDS] * (warmup.MAX_WARMUP_RECORDS + 1), "serving_default",
     "bad number of warmup requests"),
    ([PLAIN_FEEDS], "classify", "has no signature 'classify'"),
])
def test_warmup_rejects_requests_the_signature_cannot_take(
    copies, requests, signature_name, message):
  with pytest.raises(BertHubError, match=message):
    warmup.write_warmup_requests(export_dir=copies["plain"], requests=requests,
                                 signature_name=signature_name)
  assert not (copies["plain"] / warmup.WARMUP_RELATIVE_PATH).exists()


def test_read_warmup_requests_without_a_file(serving_models):
  with pytest.raises(BertHubError, match="no warmup file"):
    warmup.read_warmup_requests(serving_models["plain"])
