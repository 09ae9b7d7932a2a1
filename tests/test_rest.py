"""REST bodies (export/serving/rest.py and examples/rest_client.py) against TF Serving.

The oracle is tests/rest_oracle.py, written from TF Serving's REST API
documentation: it turns a body into the gRPC PredictRequest it stands for. The
tests compare that with the PredictRequest examples/grpc_client.py builds for
the same sentences, and run its tensors through the signature: eagerly, and in
a TF1 session as the server does (tests/serving_utils.py; this module's session
runs share one process).
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from bert_hub.errors import BertHubError
from export.serving import rest
from tests import rest_oracle
from tests.serving_models import PLAIN_FEEDS, TEXT_FEEDS, assert_same_outputs, eager
from tests.serving_utils import load_example, run_many_in_serving_sessions

BINARY = b"\xff\x00 binary"  # Not UTF-8: only {"b64": ...} can carry it.
BINARY_B64 = "/wAgYmluYXJ5"


def _feeds(body, export_dir, **kwargs):
  """What the server feeds the signature for `body`, by the oracle."""
  signatures = rest_oracle.serving_signatures(export_dir)
  request = rest_oracle.predict_request(body, signatures, **kwargs)
  return rest_oracle.signature_feeds(request, signatures)


# ---------------------------------------------------------------- rest_predict_body


@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_body_gives_the_same_numbers_as_the_eager_call(serving_models, format_):
  body = rest.rest_predict_body(PLAIN_FEEDS, format=format_)
  assert list(body) == [format_]
  if format_ == "instances":
    assert body["instances"][1] == {"x": [-1.0, 0.0, 0.5], "n": -2}
  feeds = _feeds(json.dumps(body), serving_models["plain"])  # Through JSON text.
  assert feeds["x"].dtype == np.float32 and feeds["n"].dtype == np.int32
  assert_same_outputs(eager(serving_models["plain"], feeds),
                      eager(serving_models["plain"], PLAIN_FEEDS))


FORMATS = ["instances", "inputs"]


def _strings_body(format_):
  return rest.rest_predict_body(TEXT_FEEDS, format=format_,
                                signature_name="serving_default")


@pytest.fixture(scope="module")
def served_strings(serving_models):
  """{format: what the server computes for _strings_body(format)}: the oracle's
  feeds of each body run in a TF1 session, both in ONE fresh process."""
  jobs = [(serving_models["text"], "serving_default",
           [_feeds(json.dumps(_strings_body(format_)), serving_models["text"])])
          for format_ in FORMATS]
  return {format_: outputs for format_, (outputs,) in
          zip(FORMATS, run_many_in_serving_sessions(jobs))}


@pytest.mark.parametrize("format_", FORMATS)
def test_rest_body_with_strings_runs_like_the_server(serving_models, served_strings,
                                                     format_):
  body = _strings_body(format_)
  assert body["signature_name"] == "serving_default"
  feeds = _feeds(json.dumps(body), serving_models["text"])
  np.testing.assert_array_equal(feeds["sentences"], TEXT_FEEDS["sentences"])
  # served_strings ran these same feeds (the same body through the oracle).
  assert_same_outputs(served_strings[format_], eager(serving_models["text"], TEXT_FEEDS))


@pytest.mark.parametrize("format_", ["instances", "inputs"])
def test_rest_body_is_the_grpc_example_request(serving_models, format_):
  """The same sentences by REST and by examples/grpc_client.py: one PredictRequest."""
  grpc_client = load_example("grpc_client")
  sentences = ["hello world", "héllo wörld", ""]
  grpc_request = grpc_client.build_request(sentences, "text")
  body = rest.rest_predict_body({"sentences": sentences}, format=format_)
  rest_request = rest_oracle.predict_request(
      json.dumps(body), rest_oracle.serving_signatures(serving_models["text"]),
      model_name="text")
  assert rest_request == grpc_request


def test_non_utf8_bytes_are_sent_as_b64(serving_models):
  body = rest.rest_predict_body({"sentences": np.array([b"hello", BINARY], object)})
  assert body["instances"][1] == {"sentences": {"b64": BINARY_B64}}
  # An input named *_bytes is binary: always b64, even when it is UTF-8.
  assert rest.rest_predict_body({"image_bytes": [b"abc"]}, format="inputs") == {
      "inputs": {"image_bytes": [{"b64": "YWJj"}]}}
  np.testing.assert_array_equal(_feeds(body, serving_models["text"])["sentences"],
                                [b"hello", BINARY])


def test_rest_row_format_needs_one_batch_size():
  with pytest.raises(BertHubError, match="format='inputs'"):
    rest.rest_predict_body({"a": [1, 2], "b": [1]})
  assert rest.rest_predict_body({"a": [1, 2], "b": [1]}, format="inputs") == {
      "inputs": {"a": [1, 2], "b": [1]}}


@pytest.mark.parametrize("inputs, kwargs, message", [
    ({"a": [1]}, dict(format="rows"), "bad REST format"),
    ({}, {}, "no inputs"),
    ({"a": [object()]}, dict(format="inputs"), "not representable in JSON"),
])
def test_rest_predict_body_refuses(inputs, kwargs, message):
  with pytest.raises(BertHubError, match=message):
    rest.rest_predict_body(inputs, **kwargs)


# ---------------------------------------------------------------- the oracle


def test_bodies_written_by_hand_in_every_documented_form(serving_models):
  expected = np.array([b"hello", BINARY], dtype=object)
  for body in [
      {"instances": ["hello", {"b64": BINARY_B64}]},  # Plain list, one input.
      {"instances": [{"sentences": "hello"}, {"sentences": {"b64": BINARY_B64}}]},
      {"inputs": ["hello", {"b64": BINARY_B64}]},  # One bare value, one input.
      {"inputs": {"sentences": ["hello", {"b64": BINARY_B64}], "ignored": 1}},
  ]:
    feeds = _feeds(body, serving_models["text"])
    np.testing.assert_array_equal(feeds["sentences"], expected)
    assert_same_outputs(eager(serving_models["text"], feeds),
                        eager(serving_models["text"], {"sentences": expected}))


def _documented_signature() -> dict[str, meta_graph_pb2.SignatureDef]:
  """The three named inputs of the page's row/columnar example."""
  signature = meta_graph_pb2.SignatureDef()
  for name, dtype, shape in (("tag", tf.string, [None]), ("signal", tf.int32, [None, 5]),
                             ("sensor", tf.int32, [None, 2, 2])):
    info = signature.inputs[name]
    info.name, info.dtype = f"{name}:0", dtype.as_datatype_enum
    info.tensor_shape.CopyFrom(tf.TensorShape(shape).as_proto())
  return {"serving_default": signature}


def test_oracle_reads_the_documented_examples_alike():
  """The page's row example and its "columnar representation": one request.

  (The page's row example has a stray bracket after [3, 4, 1, 2, 5]; left out.)
  """
  signatures = _documented_signature()
  row = {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5],
                        "sensor": [[1, 2], [3, 4]]},
                       {"tag": "bar", "signal": [3, 4, 1, 2, 5],
                        "sensor": [[4, 5], [6, 8]]}]}
  columnar = {"inputs": {"tag": ["foo", "bar"],
                         "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                         "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}
  request = rest_oracle.predict_request(row, signatures)
  assert request == rest_oracle.predict_request(columnar, signatures)
  feeds = rest_oracle.signature_feeds(request, signatures)
  assert {k: v.shape for k, v in feeds.items()} == {
      "tag": (2,), "signal": (2, 5), "sensor": (2, 2, 2)}
  np.testing.assert_array_equal(feeds["sensor"][1], [[4, 5], [6, 8]])
  # "List of 2 tensors each of [1, 2] shape", one input.
  one = {"serving_default": meta_graph_pb2.SignatureDef(
      inputs={"x": meta_graph_pb2.TensorInfo(
          dtype=tf.float32.as_datatype_enum,
          tensor_shape=tf.TensorShape(None).as_proto())})}
  feeds = rest_oracle.signature_feeds(
      rest_oracle.predict_request({"instances": [[[1, 2]], [[3, 4]]]}, one), one)
  assert feeds["x"].shape == (2, 1, 2) and feeds["x"].dtype == np.float32


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"x": [1, 2, 3], "n": 1.5}]}, "not a JSON value for int32"),
    ({"instances": [{"x": [1, 2, 3], "n": True}]}, "not a JSON value for int32"),
    ({"instances": [{"x": [1, 2, 3], "n": 2**31}]}, "does not fit int32"),
    ({"instances": [{"x": ["1", 2, 3], "n": 1}]}, "not a JSON value for float32"),
    ({"instances": [{"x": [1, 2, 3], "n": 1}, {"x": [1, 2], "n": 1}]},
     "examples of different shapes"),
    ({"instances": [{"x": [1, 2, 3]}]}, "one name/value pair for each named input"),
    ({"instances": [{"x": [1, 2, 3], "n": 1, "m": 2}]}, "one name/value pair"),
    ({"instances": [[1, 2, 3]]}, "holds plain values"),
    ({"instances": [{"x": [1, 2, 3], "n": 1}, 5]}, "mixes objects and plain values"),
    ({"instances": []}, "empty list"),
    ({"instances": {"x": [[1, 2, 3]], "n": [1]}}, "not a list of examples"),
    ({"inputs": {"x": [[1, 2, 3], [4, 5]], "n": [1, 2]}}, "ragged"),
    ({"inputs": {"x": [[1, 2, 3]]}}, "lacks the named inputs"),
    ({"inputs": [[1, 2, 3]]}, "is a single tensor"),
    ({"inputs": {"x": [[1, 2, 3]], "n": [1]}, "instances": []}, "NOT both"),
    ({"signature_name": "serving_default"}, "neither 'instances' nor 'inputs'"),
    ({"signature_name": "classify", "inputs": {"x": [[1, 2, 3]], "n": [1]}},
     "no signature 'classify'"),
    ({"inputs": {"x": [1, 2, 3], "n": [1]}}, "the signature wants"),
])
def test_bodies_the_server_would_reject(serving_models, body, message):
  with pytest.raises(rest_oracle.Rejected, match=message):
    _feeds(body, serving_models["plain"])


def test_oracle_rejects_bad_base64_and_non_objects(serving_models):
  with pytest.raises(rest_oracle.Rejected, match="not valid base64"):
    _feeds({"inputs": [{"b64": "not base64!"}]}, serving_models["text"])
  with pytest.raises(rest_oracle.Rejected, match="not an object"):
    _feeds("[1, 2]", serving_models["text"])


def test_signature_feeds_checks_a_grpc_request(serving_models):
  grpc_client = load_example("grpc_client")
  signatures = rest_oracle.serving_signatures(serving_models["text"])
  request = grpc_client.build_request(["hello"], "text")
  assert list(rest_oracle.signature_feeds(request, signatures)) == ["sentences"]
  request.inputs["extra"].CopyFrom(tf.make_tensor_proto([1]))
  with pytest.raises(rest_oracle.Rejected, match="takes \\['sentences'\\]"):
    rest_oracle.signature_feeds(request, signatures)
  request = grpc_client.build_request(["hello"], "text")
  request.inputs["sentences"].CopyFrom(tf.make_tensor_proto([1.5]))
  with pytest.raises(rest_oracle.Rejected, match="the signature wants string"):
    rest_oracle.signature_feeds(request, signatures)


# ---------------------------------------------------------------- the example clients


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
def test_rest_client_body_is_the_grpc_client_request(serving_models, format_):
  rest_client, grpc_client = load_example("rest_client"), load_example("grpc_client")
  body = rest_client.build_body(["hello world", b"tf"], "serving_default", format=format_)
  signatures = rest_oracle.serving_signatures(serving_models["text"])
  # The example model's input is `sentences`, like a bert-hub text-embedding model.
  request = rest_oracle.predict_request(json.dumps(body), signatures, model_name="text")
  assert request == grpc_client.build_request(["hello world", b"tf"], "text")
  feeds = rest_oracle.signature_feeds(request, signatures)
  np.testing.assert_array_equal(feeds["sentences"], [b"hello world", b"tf"])
  assert_same_outputs(eager(serving_models["text"], feeds),
                      eager(serving_models["text"], {"sentences": [b"hello world",
                                                                   b"tf"]}))
