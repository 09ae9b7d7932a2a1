"""Run a model on a batch by length: each bucket of rows padded only to its own longest.

The text servables pack every request to seq_length S (their documented
shapes), but real requests are short: most of a [B, S] batch is padding, and
BERT's cost grows with the padded length. `run_by_length` orders the rows by
their real length (the input mask's sum), runs `fn` on consecutive chunks of
`chunk_size` rows, each trimmed to its own longest row (rounded up to a
multiple of `length_multiple`, at most S), and returns the results in the
request's order. Consecutive chunks that come out the same length run as one
call (the same padding, larger matrix products: a batch of texts that all
fill S is one call, as without buckets). A batch of at most C rows (batch 1
above all) is one chunk, trimmed to exactly its longest row (not rounded).
Every batch takes the same path, with no tf.cond: a cond's untaken branch
(here the loop with the whole encoder) still costs each call (TF1 sessions
propagate its dead tensors, TF2 calls its branch as a function). Dropping the
cond, together with projections.activation_in_projection, measured 1.07x at batch 1
and 1.04x at batch 32 (benchmarks/README.md, 2026-12-02).
Per-token outputs are padded back to S, with zeros on every padding position
(also on padding inside a chunk, where the encoder computed values for
positions the mask hides).

Why it is exact: BERT's attention masks padding out, so a row's outputs on its
real tokens do not depend on how far it is padded (float rounding aside:
measured < 1e-6). The ops are core TensorFlow ops (TopKV2 for the sort,
While, TensorList*), all in TF Serving's allowlist.

  outputs = run_by_length(fn, inputs, per_token=("sequence_output",))

Shape legend: B = batch, S = seq_length, C = chunk_size, s = a chunk's length.
"""
from typing import Callable, Dict, Sequence

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import tensorflow as tf

# 8 rows per chunk: the matmuls stay reasonably large (8 rows x ~30 tokens of
# short sentences) while each chunk's length follows the sorted lengths
# closely. Measured against 4 and 16 (MiniLM, batches of 32 short sentences,
# two exports in one process, TF1 sessions, calls alternating, both orders;
# 2026-12-02): 16 took 1.12x / 1.04x the time of 8 (float32 / bfloat16), 4
# 0.94-0.99x / 1.02-1.03x: no size better for both.
CHUNK_SIZE = 8
# Chunk lengths rounded up to a multiple of 8 when there are several chunks:
# fewer distinct shapes (oneDNN caches its kernels per shape) for at most 7
# positions of padding per row. Not for a single chunk (B <= C), batch 1 above
# all: rounding it up would only add padding to the request's one call.
LENGTH_MULTIPLE = 8
MASK = "input_mask"


def _trim(inputs: Dict[str, tf.Tensor], length) -> Dict[str, tf.Tensor]:
  return {k: v[:, :length] for k, v in inputs.items()}  # [b, s] each


def _rounded(length, length_multiple, seq_length):
  """int32 length(s) rounded up to a multiple of length_multiple, in [1, S]."""
  rounded = (length + length_multiple - 1) // length_multiple * length_multiple
  return tf.maximum(tf.minimum(rounded, seq_length), 1)


def run_by_length(fn: Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]],
                  inputs: Dict[str, tf.Tensor], *, per_token: Sequence[str] = (),
                  chunk_size: int = CHUNK_SIZE,
                  length_multiple: int = LENGTH_MULTIPLE) -> Dict[str, tf.Tensor]:
  """fn's outputs for `inputs`, computed chunk by chunk on trimmed rows.

  Args:
    fn: dict of int tensors [b, s] (the keys of `inputs`) -> dict of tensors,
      each [b, ...] (one row per input row) or, for the names in `per_token`,
      [b, s, ...]. Traced once (a tf.function, no autograph) and called from
      a tf.while_loop body: it must not create variables. Eagerly, called once
      on the whole batch trimmed to its longest row.
    inputs: dict of int tensors [B, S], right-padded; one of them is
      "input_mask" (1 on tokens, 0 on padding). S static or dynamic.
    per_token: the output names that have a position axis (axis 1).
    chunk_size: C, rows per chunk.
    length_multiple: when there are several chunks (B > C), a chunk's length
      is its longest row rounded up to this; a single chunk (B <= C) uses its
      longest row as is.

  Returns:
    fn's outputs for all B rows, in the order of `inputs`; per-token outputs
    [B, S, ...] with zeros where the mask is 0.
  """
  mask = inputs[MASK]  # [B, S]
  if tf.executing_eagerly():
    # Eagerly (an export's in-memory reference, export/pipeline.py): fn once,
    # op by op, on the batch trimmed to its longest row: no graph to trace,
    # and the values the buckets must equal.
    length = int(tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)))  # B = 0: min int
    return _pad_back(fn(_trim(inputs, max(length, 1))), mask, per_token)
  batch = tf.shape(mask)[0]
  seq_length = tf.shape(mask)[1]
  # fn traced once; the loop's body (or the one static call) calls that graph.
  call = tf.function(fn, autograph=False).get_concrete_function(
      {k: tf.TensorSpec([None, None], v.dtype, name=k) for k, v in inputs.items()})
  spec = {k: (v.dtype, v.shape[1:]) for k, v in call.structured_outputs.items()}
  lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # [B]
  if mask.shape[0] is not None and mask.shape[0] <= chunk_size:  # static B <= C
    length = _rounded(tf.reduce_max(lengths), 1, seq_length)  # the longest row
    return _pad_back(call(_trim(inputs, length)), mask, per_token)

  order = tf.argsort(lengths, stable=True)  # [B], shortest first
  ordered = {k: tf.gather(v, order) for k, v in inputs.items()}  # [B, S] each
  chunks = (batch + chunk_size - 1) // chunk_size
  # One chunk (B <= C): its longest row as is; more: rounded (fewer shapes).
  multiple = tf.where(chunks > 1, length_multiple, 1)
  # Each chunk's length: its last (longest) row's, rounded up, in [1, S].
  ends = tf.minimum((tf.range(chunks) + 1) * chunk_size, batch)  # [chunks]
  longest = tf.gather(tf.gather(lengths, order), ends - 1)  # [chunks], ascending
  chunk_length = _rounded(longest, multiple, seq_length)  # [chunks]
  # Consecutive chunks of the same length run as one call: the same padding,
  # larger matrix products (texts that all fill S: one call, as unbucketed).
  group_length, group_of_chunk = tf.unique(chunk_length)  # [G], [chunks]; in order
  groups = tf.size(group_length)
  group_end = tf.math.unsorted_segment_max(ends, group_of_chunk, groups)  # [G]
  group_start = tf.concat([[0], group_end[:-1]], axis=0)  # [G]

  def body(i, arrays):
    rows = {k: v[group_start[i]:group_end[i]] for k, v in ordered.items()}  # [g, S]
    out = _pad_back(call(_trim(rows, group_length[i])), rows[MASK], per_token)
    return i + 1, {k: arrays[k].write(i, out[k]) for k in arrays}

  static_s = mask.shape[1] if isinstance(mask.shape[1], int) else None
  arrays = {k: tf.TensorArray(dtype, size=groups, infer_shape=False,
                              element_shape=tf.TensorShape([None]).concatenate(
                                  [static_s] + shape[1:] if k in per_token else shape))
            for k, (dtype, shape) in spec.items()}
  _, arrays = tf.while_loop(lambda i, _: i < groups, body, (tf.constant(0), arrays),
                            parallel_iterations=1)
  restore = tf.math.invert_permutation(order)  # [B]: request row j is ordered row restore[j]
  return {k: tf.gather(a.concat(), restore) for k, a in arrays.items()}  # [B, ...]


def _pad_back(out: Dict[str, tf.Tensor], mask, per_token) -> Dict[str, tf.Tensor]:
  """Per-token outputs [b, s, ...] -> [b, S, ...] (S = mask's), zeros off the mask."""
  out = dict(out)
  seq_length = tf.shape(mask)[1]
  for name in per_token:
    x = out[name]  # [b, s, ...]
    pad = tf.concat([[[0, 0], [0, seq_length - tf.shape(x)[1]]],
                     tf.zeros([x.shape.rank - 2, 2], tf.int32)], axis=0)  # [rank, 2]
    x = tf.pad(x, pad)  # [b, S, ...]
    weights = tf.cast(mask, x.dtype)  # [b, S]
    x = x * tf.reshape(weights, tf.concat(
        [tf.shape(weights), tf.ones([x.shape.rank - 2], tf.int32)], 0))  # [b, S, 1...]
    if isinstance(mask.shape[1], int):
      x = tf.ensure_shape(x, [None, mask.shape[1]] + x.shape[2:].as_list())
    out[name] = x
  return out
