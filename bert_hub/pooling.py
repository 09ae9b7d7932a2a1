"""The sentence embedding in the graph: pooling, Dense layers, L2 normalization.

TF ops only (no Python runs per request), so that a SavedModel computes what
sentence-transformers 6.x computes in PyTorch:

  pool(token_embeddings, mask, modes=, prompt_length=)   Pooling._forward_padded
  dense(x, kernel, bias, activation=)                     Dense.forward
  l2_normalize(x)                                         Normalize (F.normalize)

B = batch, S = seq_length (the padded length), H = hidden size. Every op is in
core TensorFlow 2.12 (what TF Serving images load).
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

from typing import Optional, Sequence

import tensorflow as tf

# sentence-transformers clamps the mean's token count at 1e-9 and
# F.normalize the vector norm at 1e-12.
_MIN_COUNT = 1e-9
_MIN_NORM = 1e-12


def prompt_mask(mask, *, prompt_length: int):
  """The mask without the first `prompt_length` positions ([CLS] and the prompt).

  Args:
    mask: int32 [B, S], 1 on tokens, 0 on padding.
    prompt_length: how many leading positions to drop (0: none).

  Returns:
    int32 [B, S].
  """
  if not prompt_length:
    return mask
  positions = tf.range(tf.shape(mask)[1])[tf.newaxis, :]  # [1, S]
  return mask * tf.cast(positions >= prompt_length, mask.dtype)  # [B, S]


def pool(token_embeddings, mask, *, modes: Sequence[str], prompt_length: int = 0):
  """The pooled sentence embedding, as sentence-transformers' Pooling computes it.

  Args:
    token_embeddings: float32 [B, S, H], the encoder's sequence_output.
    mask: int32 [B, S], 1 on tokens, 0 on padding (right-padded, [CLS] first).
    modes: pooling modes from bert_hub.sentence_transformers.POOLING_MODES;
      their outputs are concatenated in this order.
    prompt_length: include_prompt=False: the [CLS] + prompt positions to leave
      out of the pooling (0: keep every token).

  Returns:
    float32 [B, len(modes) * H].
  """
  mask = prompt_mask(mask, prompt_length=prompt_length)  # [B, S]
  seq_length = tf.shape(mask)[1]
  positions = tf.range(seq_length)[tf.newaxis, :]  # [1, S]
  has_token = mask > 0  # [B, S]
  weights = tf.cast(mask, token_embeddings.dtype)[:, :, tf.newaxis]  # [B, S, 1]
  outputs = []
  summed = count = None
  for mode in modes:
    if mode == "cls":
      # The first position whose mask is 1 (argmax of the mask); 0 if none.
      first = tf.reduce_min(tf.where(has_token, positions, seq_length), axis=1)  # [B]
      first = tf.where(first < seq_length, first, tf.zeros_like(first))  # [B]
      outputs.append(tf.gather(token_embeddings, first, batch_dims=1))  # [B, H]
    elif mode == "max":
      masked = tf.where(weights > 0, token_embeddings,
                        tf.constant(float("-inf"), token_embeddings.dtype))  # [B, S, H]
      outputs.append(tf.reduce_max(masked, axis=1))  # [B, H]
    elif mode in ("mean", "mean_sqrt_len_tokens"):
      if summed is None:
        summed = tf.reduce_sum(token_embeddings * weights, axis=1)  # [B, H]
        count = tf.maximum(tf.reduce_sum(weights, axis=1), _MIN_COUNT)  # [B, 1]
      outputs.append(summed / (count if mode == "mean" else tf.sqrt(count)))  # [B, H]
    elif mode == "weightedmean":
      # Position weights 1..S (right padding: no pad tokens before the text).
      ramp = tf.cast(positions + 1, token_embeddings.dtype)[:, :, tf.newaxis]  # [1, S, 1]
      weighted = weights * ramp  # [B, S, 1]
      total = tf.maximum(tf.reduce_sum(weighted, axis=1), _MIN_COUNT)  # [B, 1]
      outputs.append(tf.reduce_sum(token_embeddings * weighted, axis=1) / total)  # [B, H]
    elif mode == "lasttoken":
      # The last position whose mask is 1; 0 if none (then masked to zeros).
      last = tf.reduce_max(tf.where(has_token, positions, -1), axis=1)  # [B]
      last = tf.maximum(last, 0)  # [B]
      outputs.append(tf.gather(token_embeddings * weights, last, batch_dims=1))  # [B, H]
    else:
      raise ValueError(f"unknown pooling mode {mode!r}")
  return outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)  # [B, len(modes) H]


_ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": tf.tanh,
    "relu": tf.nn.relu,
    "sigmoid": tf.sigmoid,
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),  # torch nn.GELU(): erf
}


def dense(x, kernel, bias: Optional[tf.Variable], *, activation: str):
  """activation(x @ kernel + bias), as sentence-transformers' Dense.

  Args:
    x: float32 [B, D_in].
    kernel: float32 [D_in, D_out] (a tf.Variable).
    bias: float32 [D_out], or None.
    activation: identity, tanh, relu, sigmoid or gelu (erf).

  Returns:
    float32 [B, D_out].
  """
  y = tf.matmul(x, kernel)  # [B, D_out]
  if bias is not None:
    y = tf.nn.bias_add(y, bias)  # [B, D_out]
  return _ACTIVATIONS[activation](y)


def l2_normalize(x):
  """x / max(||x||, 1e-12) along the last axis (torch.nn.functional.normalize).

  Args:
    x: float32 [B, D].

  Returns:
    float32 [B, D].
  """
  norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True))  # [B, 1]
  return x / tf.maximum(norm, _MIN_NORM)  # [B, D]
