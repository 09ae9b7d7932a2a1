"""Hugging Face BERT weights in `model.safetensors` (never a pickle).

`BertModel` names (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.
self.query.weight` with Linear weights [out, in], `pooler.dense.weight`), or the same
under `bert.` in `BertForPreTraining` / `BertForMaskedLM`, whose MLM head is under
`cls.predictions.` (decoder weight tied to the word embeddings). Old checkpoints
name LayerNorm parameters `gamma`/`beta`; they are read as `weight`/`bias`.
Tensors stored as bfloat16 (numpy's through ml_dtypes) or float16 are widened to
float32 (names.to_canonical); `stored_dtype` reads the file header's dtypes.
"""
import json
import re
import struct

import ml_dtypes  # noqa: F401  (registers numpy's "bfloat16", which safetensors asks for)

from bert_hub.checkpoints import names
from bert_hub.checkpoints.common import match_named, unreadable_safetensors
from bert_hub.errors import BertHubError


def read(path, config, *, with_mlm):
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  try:
    with safe_open(path, framework="np") as f:
      raw_keys = list(f.keys())
      prefixed = any(k.startswith("bert.") for k in raw_keys)
      source, encoder_keys = {}, []
      for raw in raw_keys:
        key = raw[len("bert."):] if prefixed and raw.startswith("bert.") else raw
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key in names.HF_IGNORED or key in names.HF_MLM_TIED:
          continue
        in_encoder = (raw.startswith("bert.") if prefixed
                      else key.startswith(names.HF_ENCODER_PREFIXES))
        in_mlm = with_mlm and key.startswith(names.HF_MLM_PREFIX)
        if in_encoder or in_mlm:
          encoder_keys.append(key)
          source[key] = f.get_tensor(raw)
  except BertHubError:
    raise
  except Exception as e:  # safetensors raises its own error types, and OSError
    raise unreadable_safetensors(path, e) from None
  return match_named(source, config, fmt="hf", with_mlm=with_mlm,
                     encoder_keys=encoder_keys, path=path,
                     layer_pattern=r"encoder\.layer\.(\d+)\.")


# safetensors header dtype codes -> numpy names.
_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def stored_dtype(path) -> str:
  """The dtype(s) of the file's float tensors, from its header ("bfloat16", "float16+float32")."""
  try:
    with open(path, "rb") as f:
      (size,) = struct.unpack("<Q", f.read(8))
      header = json.loads(f.read(size))
  except (OSError, ValueError, struct.error):
    return "unknown"  # read() reports the damage; this is for the page only
  codes = {v["dtype"] for k, v in header.items()  # weights only: not position_ids
           if k != "__metadata__" and v["dtype"].startswith(("F", "BF"))}
  return "+".join(sorted(_DTYPES.get(c, c.lower()) for c in codes))
