"""Checkpoint readers: TF1 (google-research), TF2 (TF Model Garden), Hugging Face.

    read_weights(checkpoint, config, *, checkpoint_format=None, with_mlm=False)
        -> Weights (canonical name -> float32 numpy array, see names.py)

The format is detected from the path and the checkpoint's keys; pass
`checkpoint_format` ("tf1", "tf2" or "hf") to insist on one. Loading is strict:
every weight the encoder needs must be present with the configured shape, and
every checkpoint weight that belongs to the encoder must be used; on a mismatch
one `CheckpointMismatchError` lists every missing, unused and mis-shaped name.
Non-finite weights (NaN, Inf) are refused, naming the weights.

To add a format: write `<format>.py` with `read(path, config, *, with_mlm) ->
dict[canonical name, array]` (use `names.py`'s table and `match_named` for
name-based formats), add its detection to `detect_format`, and its name to FORMATS.
"""
import contextlib
import dataclasses
import os
import re
from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError, CheckpointMismatchError
from bert_hub.checkpoints import names

FORMATS = ("tf1", "tf2", "hf")
_PICKLE_FILES = (".bin", ".pt", ".pth", ".ckpt.pt", ".pkl")


@dataclasses.dataclass
class Weights:
  """Weights in canonical names and layouts, with where they came from."""
  arrays: Dict[str, np.ndarray]
  source: str  # the resolved checkpoint path (prefix, file or directory)
  format: str  # one of FORMATS
  files: tuple  # the files read (for checksums)


def resolve(checkpoint: str, checkpoint_format: Optional[str] = None):
  """Returns (format, path, files) for a checkpoint path given by a user."""
  if checkpoint_format is not None and checkpoint_format not in FORMATS:
    raise BertHubError(
        "unknown checkpoint format", expected=" or ".join(FORMATS),
        received=repr(checkpoint_format), fix="pass --checkpoint-format tf1|tf2|hf")
  path = checkpoint
  # A Hugging Face directory or file.
  if os.path.isdir(path):
    st = os.path.join(path, "model.safetensors")
    if os.path.isfile(st):
      return _insist("hf", st, checkpoint_format, checkpoint), st, (st,)
    pickled = [f for f in os.listdir(path) if f.endswith(_PICKLE_FILES)]
    if pickled:
      _refuse_pickle(os.path.join(path, pickled[0]))
    prefix = _tf_prefix_in_dir(path)
    if prefix is None:
      raise BertHubError(
          "no checkpoint in directory",
          expected="model.safetensors or a TF checkpoint (*.index + *.data-*)",
          received=f"{path} containing {sorted(os.listdir(path))[:8]}",
          fix="pass the checkpoint prefix, e.g. DIR/bert_model.ckpt")
    path = prefix
  elif path.endswith(".safetensors"):
    if not os.path.isfile(path):
      raise BertHubError("checkpoint not found", expected="an existing file",
                         received=repr(path), fix="check the --checkpoint path")
    return _insist("hf", path, checkpoint_format, checkpoint), path, (path,)
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
  if fmt == "hf":
    from bert_hub.checkpoints import hf as reader  # pylint: disable=g-import-not-at-top
  elif fmt == "tf1":
    from bert_hub.checkpoints import tf1 as reader  # pylint: disable=g-import-not-at-top
  else:
    from bert_hub.checkpoints import tf2 as reader  # pylint: disable=g-import-not-at-top
  arrays = reader.read(path, config, with_mlm=with_mlm)
  bad = sorted(k for k, v in arrays.items() if not np.all(np.isfinite(v)))
  if bad:
    raise BertHubError(
        f"non-finite weights in {path}", expected="finite float weights",
        received=f"NaN or Inf in {len(bad)}: {', '.join(bad)}",
        fix="the checkpoint is corrupt or diverged; export a healthy one")
  return Weights(arrays=arrays, source=path, format=fmt, files=files)


def match_named(source: Mapping[str, np.ndarray], config: BertConfig, *, fmt: str,
                with_mlm: bool, encoder_keys: Iterable[str], path: str,
                layer_pattern: str) -> Dict[str, np.ndarray]:
  """Maps a name->array checkpoint (TF1, HF) to canonical names, strictly.

  Args:
    source: the checkpoint's arrays by their own names, already stripped of
      names that hold no model weight (optimizer slots, buffers).
    encoder_keys: the names of `source` that belong to the encoder (and the
      MLM head if `with_mlm`): each must be used.
    layer_pattern: regex with one group, the layer index in a source name.
  """
  layers = {int(m.group(1)) for k in source for m in [re.match(layer_pattern, k)] if m}
  col = "tf1" if fmt == "tf1" else "hf"
  emb = getattr(names.EMBEDDINGS[0], col)
  check_config_agrees(config, path, layers=layers,
                       word_embeddings=source[emb].shape if emb in source else None)
  out, missing, mismatched = {}, [], []
  for w in names.expected_weights(config, with_mlm=with_mlm):
    key = getattr(w, col)
    if key not in source:
      missing.append(key)
      continue
    want = names.source_shape(w, config, fmt)
    if tuple(source[key].shape) != want:
      mismatched.append((key, want, tuple(source[key].shape)))
      continue
    out[w.canonical] = names.to_canonical(source[key], w, config, fmt)
  used = {getattr(w, col) for w in names.expected_weights(config, with_mlm=with_mlm)}
  unused = sorted(set(encoder_keys) - used)
  if missing or unused or mismatched:
    raise CheckpointMismatchError(
        path, missing=missing, unused=unused, mismatched=mismatched,
        fix="pass the config that belongs to this checkpoint (and --with-mlm "
        "only if it has an MLM head)")
  return out


def check_config_agrees(config: BertConfig, path: str, *, layers, word_embeddings):
  """A focused error when the config is plainly for another checkpoint."""
  problems = []
  if layers and len(layers) != config.num_layers:
    problems.append(f"{len(layers)} layers (config: num_layers={config.num_layers})")
  if word_embeddings is not None:
    v, h = word_embeddings
    if h != config.hidden_size:
      problems.append(f"hidden size {h} (config: hidden_size={config.hidden_size})")
    if v != config.vocab_size:
      problems.append(f"vocab size {v} (config: vocab_size={config.vocab_size})")
  if problems:
    raise BertHubError(
        f"config {config.source or ''} disagrees with checkpoint {path}".replace("  ", " "),
        expected="the checkpoint's architecture",
        received="the checkpoint has " + ", ".join(problems),
        fix="pass the config file that came with this checkpoint")


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


def read_tf_tensor(reader, key, prefix):
  """reader.get_tensor with a clear error for truncated data files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return reader.get_tensor(key)
  except (tf.errors.OpError, ValueError, IndexError) as e:  # IndexError: short read
    raise BertHubError(
        "unreadable checkpoint", expected="a complete TF checkpoint",
        received=f"{prefix}: reading {key}: {str(e).splitlines()[0][:200]}",
        fix="copy the checkpoint again; the data file is truncated or damaged") from None


@contextlib.contextmanager
def uninitialized_variables():
  """Variables created inside get a shape and dtype but no value until assigned.

  For networks whose every weight is assigned next (or whose variables are only
  inspected, never read): no initializer runs and no memory is allocated.
  tf-models' TruncatedNormal initializers cost about 2 s for BERT-base on 2 CPU
  cores, and the random values as much memory as the weights. Building must be
  symbolic (Keras functional construction). Reading such a variable before it
  is assigned gives an empty tensor, without an error: assign every one
  (`encoder.assign_weights` checks that none is left).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.ops import resource_variable_ops  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top

  def creator(next_creator, **kwargs):
    shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
    if not callable(kwargs.get("initial_value")) or shape is None or dtype is None:
      return next_creator(**kwargs)
    return resource_variable_ops.UninitializedVariable(
        trainable=kwargs.get("trainable"), name=kwargs.get("name"), shape=shape,
        dtype=dtype, constraint=kwargs.get("constraint"),
        synchronization=kwargs.get("synchronization"),
        aggregation=kwargs.get("aggregation"))

  with tf.variable_creator_scope(creator):
    yield


def without_autograph():
  """Keras builds layers without converting their `call` with autograph.

  tf-models' layers have no data-dependent Python control flow; converting them
  costs about a second per process, every time a network is built or traced.
  """
  from tensorflow.python.autograph.core import ag_ctx  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  return ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED)


def open_tf_checkpoint(prefix):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise BertHubError(
        "unreadable checkpoint", expected="a complete TF checkpoint",
        received=f"{prefix}: {str(e).splitlines()[0][:200]}",
        fix="copy the checkpoint again; the files are truncated or damaged") from None
