"""What the checkpoint readers share: strict name matching and clear read errors.

  match_named(source, config, ...)  a name->array checkpoint (TF1, Hugging Face)
                                    mapped to canonical names through names.py,
                                    every missing, unused and mis-shaped name
                                    listed in one CheckpointMismatchError
  check_config_agrees(config, ...)  a focused error when the config is plainly
                                    for another checkpoint
  open_tf_checkpoint(prefix), read_tf_tensor(reader, key, prefix)
                                    TF checkpoint reading, truncated files as
                                    one BertHubError
"""
import re
from typing import Dict, Iterable, Mapping

import numpy as np

from bert_hub.checkpoints import names
from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError, CheckpointMismatchError


def match_named(source: Mapping[str, np.ndarray], config: BertConfig, *, fmt: str,
                with_mlm: bool, encoder_keys: Iterable[str], path: str,
                layer_pattern: str) -> Dict[str, np.ndarray]:
  """Maps a name->array checkpoint (TF1, HF, HF h5) to canonical names, strictly.

  A checkpoint without either pooler weight maps without them (the pooler's
  canonical names are then absent from the result).

  Args:
    source: the checkpoint's arrays by their own names, already stripped of
      names that hold no model weight (optimizer slots, buffers).
    encoder_keys: the names of `source` that belong to the encoder (and the
      MLM head if `with_mlm`): each must be used.
    layer_pattern: regex with one group, the layer index in a source name.
  """
  layers = {int(m.group(1)) for k in source for m in [re.match(layer_pattern, k)] if m}
  emb = names.source_name(names.EMBEDDINGS[0], fmt)
  check_config_agrees(config, path, layers=layers,
                       word_embeddings=source[emb].shape if emb in source else None)
  # No pooler at all (BertForMaskedLM, add_pooling_layer=False) is allowed: the
  # caller sees it as Weights.has_pooler False. Half a pooler is a mismatch.
  no_pooler = not any(names.source_name(w, fmt) in source for w in names.POOLER)
  out, missing, mismatched = {}, [], []
  for w in names.expected_weights(config, with_mlm=with_mlm):
    key = names.source_name(w, fmt)
    if no_pooler and w in names.POOLER:
      continue
    if key not in source:
      missing.append(key)
      continue
    want = names.source_shape(w, config, fmt)
    if tuple(source[key].shape) != want:
      mismatched.append((key, want, tuple(source[key].shape)))
      continue
    out[w.canonical] = names.to_canonical(source[key], w, config, fmt)
  used = {names.source_name(w, fmt)
          for w in names.expected_weights(config, with_mlm=with_mlm)}
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


def open_tf_checkpoint(prefix):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise BertHubError(
        "unreadable checkpoint", expected="a complete TF checkpoint",
        received=f"{prefix}: {str(e).splitlines()[0][:200]}",
        fix="copy the checkpoint again; the files are truncated or damaged") from None


def unreadable_safetensors(path: str, error: Exception) -> BertHubError:
  """The one error for a safetensors file that cannot be read (truncated, damaged)."""
  return BertHubError(
      "unreadable safetensors file", expected="a complete model.safetensors",
      received=f"{path}: {type(error).__name__}: {str(error).splitlines()[0][:200]}",
      fix="copy the file again, or save it anew with save_pretrained")


def check_finite(arrays: Mapping[str, np.ndarray], path: str) -> None:
  """Refuses NaN or Inf in any of `arrays` (canonical name -> array), naming them all."""
  bad = sorted(k for k, v in arrays.items() if not np.all(np.isfinite(v)))
  if bad:
    raise BertHubError(
        f"non-finite weights in {path}", expected="finite float weights",
        received=f"NaN or Inf in {len(bad)}: {', '.join(bad)}",
        fix="the checkpoint is corrupt or diverged; export a healthy one")
