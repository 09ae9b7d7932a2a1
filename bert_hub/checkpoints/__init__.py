"""Checkpoint readers: TF1 (google-research), TF2 (TF Model Garden), Hugging Face
(model.safetensors: "hf"; transformers 4.x TF weights tf_model.h5: "hf_h5").

    read_weights(checkpoint, config, *, checkpoint_format=None, with_mlm=False)
        -> Weights (canonical name -> float32 numpy array, see names.py)

The format is detected from the path and the checkpoint's keys; pass
`checkpoint_format` (one of FORMATS) to insist on one. Loading is strict:
every weight the encoder needs must be present with the configured shape, and
every checkpoint weight that belongs to the encoder must be used; on a mismatch
one `CheckpointMismatchError` lists every missing, unused and mis-shaped name.
Non-finite weights (NaN, Inf) are refused, naming the weights. Weights stored
as bfloat16 or float16 are read and widened to float32 (exactly);
`Weights.dtype` says how they were stored. A checkpoint without the pooler's
two weights (BertForMaskedLM, add_pooling_layer=False) is read with
`Weights.has_pooler` False; half a pooler is a mismatch like any other.

To add a format: write `<format>.py` with `read(path, config, *, with_mlm) ->
dict[canonical name, array]` (use `names.py`'s table and `common.match_named`
for name-based formats), add its detection to `resolve`, its name to FORMATS
and its module to `read_weights`.
"""
import dataclasses
import os
import re
from typing import Dict, Optional

import numpy as np

from bert_hub.checkpoints import h5, hf, names, tf1, tf2
from bert_hub.checkpoints.common import check_finite
from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError

FORMATS = ("tf1", "tf2", "hf", "hf_h5")
_PICKLE_FILES = (".bin", ".pt", ".pth", ".ckpt.pt", ".pkl")
H5_FILE = "tf_model.h5"  # transformers' TF weights (hf_h5), read with h5py


@dataclasses.dataclass
class Weights:
  """Weights in canonical names and layouts, with where they came from."""
  arrays: Dict[str, np.ndarray]
  source: str  # the resolved checkpoint path (prefix, file or directory)
  format: str  # one of FORMATS
  files: tuple  # the files read (for checksums)
  dtype: str = "float32"  # as stored: "bfloat16", "float16", ... ("+" if mixed)
  has_pooler: bool = True  # False: no pooler weights; pooled_output is undefined


def resolve(checkpoint: str, checkpoint_format: Optional[str] = None):
  """Returns (format, path, files) for a checkpoint path given by a user."""
  if checkpoint_format is not None and checkpoint_format not in FORMATS:
    raise BertHubError(
        "unknown checkpoint format", expected=" or ".join(FORMATS),
        received=repr(checkpoint_format),
        fix=f"pass --checkpoint-format {'|'.join(FORMATS)}")
  path = checkpoint
  # A Hugging Face directory or file.
  if os.path.isdir(path):
    st = os.path.join(path, "model.safetensors")
    if os.path.isfile(st):
      return _insist("hf", st, checkpoint_format, checkpoint), st, (st,)
    h5_file = os.path.join(path, H5_FILE)
    if os.path.isfile(h5_file):  # transformers' TF weights, without safetensors
      return _insist("hf_h5", h5_file, checkpoint_format, checkpoint), h5_file, (h5_file,)
    pickled = [f for f in os.listdir(path) if f.endswith(_PICKLE_FILES)]
    if pickled:
      _refuse_pickle(os.path.join(path, pickled[0]))
    prefix = _tf_prefix_in_dir(path)
    if prefix is None:
      raise BertHubError(
          "no checkpoint in directory",
          expected="model.safetensors, tf_model.h5 or a TF checkpoint (*.index + *.data-*)",
          received=f"{path} containing {sorted(os.listdir(path))[:8]}",
          fix="pass the checkpoint prefix, e.g. DIR/bert_model.ckpt")
    path = prefix
  elif path.endswith(".safetensors"):
    if not os.path.isfile(path):
      raise BertHubError("checkpoint not found", expected="an existing file",
                         received=repr(path), fix="check the --checkpoint path")
    return _insist("hf", path, checkpoint_format, checkpoint), path, (path,)
  elif path.endswith(".h5"):
    if not os.path.isfile(path):
      raise BertHubError("checkpoint not found", expected="an existing file",
                         received=repr(path), fix="check the --checkpoint path")
    return _insist("hf_h5", path, checkpoint_format, checkpoint), path, (path,)
  elif path.endswith(_PICKLE_FILES) and os.path.isfile(path):
    _refuse_pickle(path)
  # A TF checkpoint prefix, also accepted as PREFIX.index or PREFIX.data-*.
  path = re.sub(r"\.(index|data-\d+-of-\d+)$", "", path)
  index = path + ".index"
  data = _data_files(path)
  if not os.path.isfile(index):
    if data:
      raise BertHubError(
          "checkpoint index missing", expected=f"{index} beside the data file",
          received=f"{os.path.basename(data[0])} without its .index",
          fix="copy the .index file too; a TF checkpoint needs both")
    raise BertHubError(
        "checkpoint not found",
        expected="a TF checkpoint prefix (PREFIX.index and PREFIX.data-*), "
        "a Hugging Face model directory or a .safetensors file",
        received=repr(checkpoint), fix="check the --checkpoint path")
  keys = _tf_keys(path)
  fmt = "tf2" if "_CHECKPOINTABLE_OBJECT_GRAPH" in keys else "tf1"
  return _insist(fmt, path, checkpoint_format, checkpoint), path, (index, *data)


def read_weights(checkpoint: str, config: BertConfig, *,
                 checkpoint_format: Optional[str] = None,
                 with_mlm: bool = False) -> Weights:
  """Reads an encoder's weights (and MLM head with `with_mlm`) strictly."""
  fmt, path, files = resolve(checkpoint, checkpoint_format)
  reader = {"hf": hf, "hf_h5": h5, "tf1": tf1, "tf2": tf2}[fmt]
  arrays = reader.read(path, config, with_mlm=with_mlm)
  check_finite(arrays, path)
  stored = getattr(reader, "stored_dtype", lambda _: "float32")(path)
  has_pooler = all(w.canonical in arrays for w in names.POOLER)
  return Weights(arrays=arrays, source=path, format=fmt, files=files, dtype=stored,
                 has_pooler=has_pooler)


def _insist(fmt, path, wanted, given):
  if wanted is not None and wanted != fmt:
    raise BertHubError(
        "wrong checkpoint format", expected=f"a {wanted} checkpoint (--checkpoint-format "
        f"{wanted})", received=f"{given}, which is a {fmt} checkpoint",
        fix=f"pass --checkpoint-format {fmt}, or leave it out to detect it")
  return fmt


def _refuse_pickle(path):
  raise BertHubError(
      "pickled checkpoint refused",
      expected="model.safetensors (loading a pickle runs code from the file)",
      received=os.path.basename(path),
      fix="convert it once where you trust it: python -c \"from transformers import "
      "BertModel as M; M.from_pretrained('DIR').save_pretrained('DIR', "
      "safe_serialization=True)\"")


def _tf_prefix_in_dir(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  latest = tf.train.latest_checkpoint(path)
  if latest:
    return latest
  indexes = sorted(f[:-len(".index")] for f in os.listdir(path) if f.endswith(".index"))
  if len(indexes) > 1:
    raise BertHubError(
        "several checkpoints in directory", expected="one checkpoint",
        received=", ".join(indexes), fix="pass the prefix of the one to export")
  return os.path.join(path, indexes[0]) if indexes else None


def _data_files(prefix):
  d, base = os.path.split(prefix)
  if not os.path.isdir(d or "."):
    return []
  return sorted(os.path.join(d, f) for f in os.listdir(d or ".")
                if re.fullmatch(re.escape(base) + r"\.data-\d+-of-\d+", f))


def _tf_keys(prefix):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return dict(tf.train.list_variables(prefix))
  except (tf.errors.OpError, ValueError) as e:
    raise BertHubError(
        "unreadable checkpoint", expected="a complete TF checkpoint",
        received=f"{prefix}: {str(e).splitlines()[0][:200]}",
        fix="copy the checkpoint again; the files are truncated or damaged") from None


