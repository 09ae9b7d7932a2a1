"""Hugging Face TensorFlow weights in `tf_model.h5`, read as data with h5py.

transformers 4.x's TF classes (TFBertModel, TFBertForPreTraining,
TFBertForMaskedLM, TFBertForSequenceClassification) saved their weights with
Keras 2's `save_weights` (HDF5): the file's `layer_names` attribute lists the
model's top-level layers ("bert", "mlm___cls", "classifier", ...); each has a
group whose `weight_names` attribute lists its weights' full names, e.g.
"tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0", each a
dataset at that path inside the group. As transformers' own loader does, the
first name component (the model's scope) is dropped; the rest is names.py's
`hf_h5_name`. Kernels are [in, out] (TF1's layouts). transformers' sharded
files (top-level datasets named in `layer_names`) are read the same way.

Nothing in the file is executed (no model is built from it): only datasets and
attributes are read. Weights of other parts (a classifier, the NSP head) are
left to their readers; the MLM head ("mlm___cls/") is read with `with_mlm`.
"""
import ml_dtypes  # noqa: F401  (numpy's "bfloat16", should a file hold it)
import numpy as np

from bert_hub.checkpoints import names
from bert_hub.checkpoints.common import match_named
from bert_hub.errors import BertHubError

# Keras 2 splits an attribute over 64 KB into NAME0, NAME1, ...
_CHUNKED = "{name}{i}"


def _attribute(node, name):
  """Keras 2's load_attributes_from_hdf5_group: a list of str, chunks joined."""
  if name in node.attrs:
    values = list(node.attrs[name])
  else:
    values, i = [], 0
    while _CHUNKED.format(name=name, i=i) in node.attrs:
      values += list(node.attrs[_CHUNKED.format(name=name, i=i)])
      i += 1
  return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def datasets(f):
  """{name without the model's scope: h5py dataset} of a Keras 2 weights file."""
  import h5py  # pylint: disable=g-import-not-at-top
  layers = _attribute(f, "layer_names")
  if not layers:
    raise ValueError("no layer_names attribute (not a Keras weights file)")
  out = {}
  for layer in layers:
    node = f[layer]
    if isinstance(node, h5py.Dataset):  # transformers' sharded format
      out[layer] = node
      continue
    for weight_name in _attribute(node, "weight_names"):
      out["/".join(weight_name.split("/")[1:])] = node[weight_name]
  return out


def open_error(path, e):
  return BertHubError(
      "unreadable tf_model.h5", expected="a complete Keras 2 weights file "
      "(transformers TFBertModel.save_pretrained)",
      received=f"{path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
      fix="copy the file again, or convert it: TFBertModel.from_pretrained(DIR)"
      ".save_pretrained(DIR) with transformers 4.x")


def read(path, config, *, with_mlm):
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, "r") as f:
      found = datasets(f)
      source, encoder_keys = {}, []
      for key, node in found.items():
        in_encoder = key.startswith(names.HF_H5_ENCODER_PREFIX)
        in_mlm = with_mlm and key.startswith(names.HF_H5_MLM_PREFIX)
        if in_encoder or in_mlm:
          encoder_keys.append(key)
          source[key] = np.asarray(node)
  except BertHubError:
    raise
  except Exception as e:  # h5py raises OSError, KeyError, ValueError
    raise open_error(path, e) from None
  return match_named(source, config, fmt="hf_h5", with_mlm=with_mlm,
                     encoder_keys=encoder_keys, path=path,
                     layer_pattern=r"bert/encoder/layer_\._(\d+)/")


def stored_dtype(path) -> str:
  """The dtype(s) of the file's float weights ("float32", "float16" ...)."""
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, "r") as f:
      kinds = {str(node.dtype) for node in datasets(f).values()
               if node.dtype.kind == "f" or str(node.dtype) == "bfloat16"}
  except Exception:  # pylint: disable=broad-except  (read() reports the damage)
    return "unknown"
  return "+".join(sorted(kinds))
