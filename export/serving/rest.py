"""How to call a SavedModel over REST: the body of TF Serving's predict request.

  rest_predict_body(inputs, *, format="instances", signature_name=None) -> dict

What a client sends to `POST /v1/models/NAME:predict`, as TF Serving's REST API
documents it (https://www.tensorflow.org/tfx/serving/api_rest): row format
("instances") or columnar format ("inputs"), strings as JSON strings or
{"b64": ...}. The tests check these bodies with an oracle written from that
documentation (tests/rest_oracle.py), not with code of this module.
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import base64
from typing import Any, Mapping

import numpy as np

from bert_hub.errors import BertHubError


def _json_value(value, *, binary: bool):
  """A numpy/python value as TF Serving's REST JSON expects it."""
  if isinstance(value, np.ndarray):
    value = value.tolist()
  elif isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, (list, tuple)):
    return [_json_value(v, binary=binary) for v in value]
  if isinstance(value, bytes):
    if not binary:
      try:
        return value.decode("utf-8")
      except UnicodeDecodeError:
        pass
    return {"b64": base64.b64encode(value).decode("ascii")}
  if isinstance(value, (str, bool, int, float)):
    return value
  raise BertHubError("value not representable in JSON",
                     expected="numbers, bools, str or bytes (nested in lists)",
                     received=repr(type(value)), fix="convert it with np.asarray first")


def rest_predict_body(inputs: Mapping[str, Any], *, format: str = "instances",  # noqa: A002
                      signature_name: str | None = None) -> dict:
  """The JSON body of `POST /v1/models/NAME:predict` (TF Serving REST API).

  Args:
    inputs: input name -> batched values (list or numpy array; the 0-th
      dimension is the batch), e.g. {"sentences": ["hello world", "hi"]}.
      Strings may be str or bytes; bytes that are not UTF-8, and every value of
      an input whose name ends in `_bytes`, are sent base64 as {"b64": ...}.
    format: "instances" (row format: one object per example; all inputs need
      the same batch size) or "inputs" (columnar: one batched value per input).
    signature_name: included if given; the server defaults to "serving_default".

  Returns:
    A dict to send with json.dumps, e.g. {"instances": [{"sentences": "hello
    world"}, {"sentences": "hi"}]} or {"inputs": {"sentences": ["hello world",
    "hi"]}}. Inputs are always named, which the server accepts for any number
    of inputs.
  """
  if format not in ("instances", "inputs"):
    raise BertHubError("bad REST format", expected="'instances' or 'inputs'",
                       received=repr(format), fix="pass format='instances'")
  if not inputs:
    raise BertHubError("no inputs", expected="a dict of input name -> values",
                       received="an empty dict", fix="pass the signature's inputs")
  columns = {name: _json_value(value, binary=name.endswith("_bytes"))
             for name, value in inputs.items()}
  body = {} if signature_name is None else {"signature_name": signature_name}
  if format == "inputs":
    body["inputs"] = columns
    return body
  sizes = {name: len(v) if isinstance(v, list) else None for name, v in columns.items()}
  if None in sizes.values() or len(set(sizes.values())) != 1 or 0 in sizes.values():
    raise BertHubError(
        "inputs cannot be sent in row format",
        expected="every input batched with the same, non-zero 0-th dimension",
        received=f"batch sizes {sizes} (None: not a list)",
        fix="use format='inputs' (columnar), which has no such restriction")
  batch = next(iter(sizes.values()))
  body["instances"] = [{name: column[i] for name, column in columns.items()}
                       for i in range(batch)]
  return body
