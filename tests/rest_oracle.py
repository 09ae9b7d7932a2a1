"""A test oracle: the gRPC PredictRequest a TF Serving REST predict body stands for.

Written from TF Serving's REST API documentation alone, not from bert-hub's code
(bert-hub only writes bodies, export/serving/rest.py):
  https://www.tensorflow.org/tfx/serving/api_rest, sections "Predict API",
  "JSON mapping" and "Encoding binary values" (the same text as
  tensorflow_serving/g3doc/api_rest.md in github.com/tensorflow/serving).

What the page says, and where this module does it:
  * The body is a JSON object: an optional "signature_name" ("If unspecifed
    default serving signature is used": serving_default) and the input tensors
    in row ("instances") or columnar ("inputs") format, "either of them but NOT
    both". -> predict_request
  * Row format: "instances" is a list of examples, batched along a new 0-th
    dimension. "When there is only one named input", an example is that input's
    value; "for multiple named inputs, each item is expected to be an object
    containing input name/tensor value pair, one for each named input", so all
    named inputs have "the same 0-th dimension". -> _row_format
  * Columnar format: "inputs" is "either a single input tensor or a map of input
    name to tensors (listed in their natural nested form)", which "need not
    share the same 0-th dimension". -> _columnar_format
  * JSON mapping: DT_BOOL true/false; DT_STRING a string, or {"b64": ...} for
    binary values; DT_INT8, DT_UINT8, DT_INT16, DT_INT32, DT_UINT32, DT_INT64,
    DT_UINT64 a decimal number; DT_FLOAT, DT_DOUBLE a number or NaN, Infinity,
    -Infinity. "Types not listed below are implied to be unsupported."
    -> _leaf
Where the page is silent, this module decides as follows (and says so there):
an example may be an object naming the single input too (the page does not
forbid it; bert-hub's bodies and examples/rest_client.py send that); a nested
list must be dense (it is "a tensor"); an empty "instances" list is refused (no
example, no shape); names in an "inputs" object that the signature does not
have are left out of the request (as TF Serving's REST handler does: it reads
the signature's names from the object, tensorflow_serving/util/json_tensor.cc).

The result is `tensorflow_serving.apis.predict_pb2.PredictRequest` with tensors
from tf.make_tensor_proto in the signature's dtypes, so a test can compare it
with what a gRPC client sends; signature_feeds() then checks a PredictRequest
(from REST or gRPC) against the signature as the server must before it runs
the graph (exactly the signature's inputs, its dtypes, compatible shapes).
"""
import bert_hub  # noqa: F401  (legacy Keras before tensorflow)

import base64
import binascii
import json
import pathlib
from typing import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2

DEFAULT_SIGNATURE = "serving_default"

# The "JSON mapping" table of the page: every dtype it lists, nothing else.
_JSON_DTYPES = {tf.bool, tf.string, tf.int8, tf.uint8, tf.int16, tf.int32, tf.uint32,
                tf.int64, tf.uint64, tf.float32, tf.float64}


class Rejected(ValueError):
  """TF Serving would answer this request with an error (HTTP 400)."""


def serving_signatures(export_dir) -> Mapping[str, meta_graph_pb2.SignatureDef]:
  """The SignatureDefs of the MetaGraph tagged "serve" in export_dir/saved_model.pb."""
  saved_model = saved_model_pb2.SavedModel.FromString(
      (pathlib.Path(export_dir) / "saved_model.pb").read_bytes())
  (meta_graph,) = [m for m in saved_model.meta_graphs
                   if list(m.meta_info_def.tags) == ["serve"]]
  return meta_graph.signature_def


def _is_binary(value) -> bool:
  """{"b64": <base64 encoded string>}: one binary value, not an object of inputs."""
  return isinstance(value, dict) and list(value) == ["b64"]


def _leaf(value, dtype: tf.DType, where: str):
  """One JSON value as a Python value of `dtype`, by the page's JSON mapping."""
  if dtype == tf.string:
    if isinstance(value, str):
      return value.encode("utf-8")  # "JSON uses UTF-8 encoding."
    if _is_binary(value) and isinstance(value["b64"], str):
      try:
        return base64.b64decode(value["b64"], validate=True)
      except binascii.Error as e:
        raise Rejected(f"{where}: {value!r} is not valid base64") from e
  elif dtype == tf.bool:
    if isinstance(value, bool):
      return value
  elif dtype.is_integer:
    # "a decimal number" such as 1, -10, 0: JSON true/false and numbers with a
    # fraction or exponent (Python floats) are not integers.
    if isinstance(value, int) and not isinstance(value, bool):
      if not dtype.min <= value <= dtype.max:
        raise Rejected(f"{where}: {value} does not fit {dtype.name}")
      return value
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    return value  # DT_FLOAT, DT_DOUBLE: any number, NaN, Infinity, -Infinity.
  raise Rejected(f"{where}: {value!r} is not a JSON value for {dtype.name}")


def _dense_shape(value, where: str) -> list[int]:
  """The shape of a tensor in "natural nested" notation; refuses ragged lists."""
  if not isinstance(value, list):
    return []
  shapes = [_dense_shape(item, where) for item in value]
  if any(shape != shapes[0] for shape in shapes):
    raise Rejected(f"{where}: a ragged list (items of shapes {shapes}) is not a tensor")
  return [len(value)] + (shapes[0] if shapes else [])


def _flat(value):
  if isinstance(value, list):
    for item in value:
      yield from _flat(item)
  else:
    yield value


def _array(value, dtype: tf.DType, where: str) -> np.ndarray:
  """A JSON value or nested list as a dense numpy array of `dtype`."""
  shape = _dense_shape(value, where)
  leaves = [_leaf(v, dtype, where) for v in _flat(value)]
  np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
  array = np.empty(len(leaves), dtype=np_dtype)
  array[:] = leaves
  return array.reshape(shape)


def _row_format(instances, inputs: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
  if not isinstance(instances, list):
    raise Rejected("'instances' is not a list of examples")
  if not instances:  # Silent in the page; nothing gives the tensors a shape.
    raise Rejected("'instances' is an empty list: no example to batch")
  # An object of named inputs, also for a single input (the page is silent).
  named = [isinstance(item, dict) and not _is_binary(item) for item in instances]
  if any(named) and not all(named):
    raise Rejected("'instances' mixes objects and plain values")
  if not named[0]:
    if len(inputs) != 1:
      raise Rejected(f"'instances' holds plain values, but the signature has the "
                     f"named inputs {sorted(inputs)}: send one object per example")
    (name,) = inputs
    instances = [{name: item} for item in instances]
  columns = {name: [] for name in inputs}
  for i, item in enumerate(instances):
    if sorted(item) != sorted(inputs):
      raise Rejected(f"instance {i} names {sorted(item)}, but the page wants one "
                     f"name/value pair for each named input {sorted(inputs)}")
    for name, dtype in inputs.items():
      columns[name].append(_array(item[name], dtype, f"instance {i}, input {name!r}"))
  batched = {}
  for name, examples in columns.items():
    shapes = sorted({example.shape for example in examples})
    if len(shapes) != 1:
      raise Rejected(f"input {name!r}: examples of different shapes {shapes} "
                     "cannot be batched along a new 0-th dimension")
    batched[name] = np.stack(examples)
  return batched


def _columnar_format(value, inputs: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
  if not isinstance(value, dict) or _is_binary(value):  # "a single input tensor"
    if len(inputs) != 1:
      raise Rejected(f"'inputs' is a single tensor, but the signature has the named "
                     f"inputs {sorted(inputs)}: send an object of them")
    (name,) = inputs
    value = {name: value}
  missing = sorted(set(inputs) - set(value))
  if missing:
    raise Rejected(f"'inputs' lacks the named inputs {missing}")
  # Names the signature does not have: left out (the page is silent; see above).
  return {name: _array(value[name], dtype, f"input {name!r}")
          for name, dtype in inputs.items()}


def predict_request(body, signatures: Mapping[str, meta_graph_pb2.SignatureDef], *,
                    model_name: str = "model") -> predict_pb2.PredictRequest:
  """The PredictRequest that TF Serving's REST API documents for a predict body.

  Args:
    body: the body of POST /v1/models/NAME:predict, as JSON text (str or bytes)
      or as the dict that json.loads gives (it must survive json.dumps).
    signatures: the model's SignatureDefs by name (serving_signatures(path)).
    model_name: NAME from the URL.

  Returns:
    A PredictRequest: model_spec (model_name and the signature used, named
    explicitly even when the body leaves it to the default) and one
    TensorProto per input of that signature, in the signature's dtype.

  Raises:
    Rejected: for a body the documentation does not allow.
  """
  body = json.loads(body if isinstance(body, (str, bytes)) else json.dumps(body))
  if not isinstance(body, dict):
    raise Rejected(f"the body is a JSON {type(body).__name__}, not an object")
  name = body.get("signature_name", DEFAULT_SIGNATURE)
  if not isinstance(name, str) or name not in signatures:
    raise Rejected(f"no signature {name!r}; the model has {sorted(signatures)}")
  inputs = {key: tf.dtypes.as_dtype(info.dtype)
            for key, info in signatures[name].inputs.items()}
  unsupported = sorted(k for k, dtype in inputs.items() if dtype not in _JSON_DTYPES)
  if unsupported:
    raise Rejected(f"inputs {unsupported} have dtypes without a JSON mapping")
  if "instances" in body and "inputs" in body:
    raise Rejected("the body has 'instances' and 'inputs': either of them but NOT both")
  if "instances" not in body and "inputs" not in body:
    raise Rejected("the body has neither 'instances' nor 'inputs'")
  arrays = (_row_format(body["instances"], inputs) if "instances" in body
            else _columnar_format(body["inputs"], inputs))
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = name
  for key, array in arrays.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=inputs[key]))
  return request


def signature_feeds(request: predict_pb2.PredictRequest,
                    signatures: Mapping[str, meta_graph_pb2.SignatureDef]
                    ) -> dict[str, np.ndarray]:
  """The tensors a PredictRequest feeds its signature, checked as the server must.

  Every input of the signature exactly once, nothing else; each in the
  signature's dtype, in a shape compatible with the signature's. Works for a
  request from predict_request() and for one a gRPC client built.

  Returns:
    Input name -> np.ndarray (strings as bytes objects), for the eager call or
    tests/serving_utils.run_signature_in_serving_session.

  Raises:
    Rejected: for a request the signature cannot run.
  """
  name = request.model_spec.signature_name or DEFAULT_SIGNATURE
  if name not in signatures:
    raise Rejected(f"no signature {name!r}; the model has {sorted(signatures)}")
  signature = signatures[name]
  if sorted(request.inputs) != sorted(signature.inputs):
    raise Rejected(f"the request feeds {sorted(request.inputs)}, the signature "
                   f"{name!r} takes {sorted(signature.inputs)}")
  feeds = {}
  for key, info in signature.inputs.items():
    tensor = request.inputs[key]
    if tensor.dtype != info.dtype:
      raise Rejected(f"input {key!r} is {tf.dtypes.as_dtype(tensor.dtype).name}, the "
                     f"signature wants {tf.dtypes.as_dtype(info.dtype).name}")
    array = tf.make_ndarray(tensor)
    wanted = tf.TensorShape(info.tensor_shape)
    if not wanted.is_compatible_with(array.shape):
      raise Rejected(f"input {key!r} has shape {list(array.shape)}, the signature "
                     f"wants {wanted}")
    feeds[key] = array
  return feeds
