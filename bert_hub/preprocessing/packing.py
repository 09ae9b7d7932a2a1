"""The special-token ids and packing: token ids in, BERT encoder inputs out.

The one home of the special-token ids (`SpecialTokens`) and of the packing
that `bert_pack_inputs`, the root call and the text-embedding servables share.

  special = SpecialTokens.from_vocab(read_vocab("vocab.txt"))
  special.as_dict()   # the keys of .tokenize.get_special_tokens_dict()
  inputs = pack_inputs([tokens_a, tokens_b], 128, special)

Shape legend: B = batch size, W = words, P = word pieces, T = seq_length,
n = number of segments.
"""
import dataclasses

from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.vocab import Vocab

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
  """The ids a packed BERT input needs, and the vocab size.

  Attributes (Python ints):
    vocab_size: one past the largest id.
    start_of_sequence_id: [CLS].
    end_of_segment_id: [SEP].
    padding_id: [PAD].
    mask_id: [MASK].
  """
  vocab_size: int
  start_of_sequence_id: int
  end_of_segment_id: int
  padding_id: int
  mask_id: int

  @classmethod
  def from_vocab(cls, vocab: Vocab) -> "SpecialTokens":
    """The ids of [CLS], [SEP], [PAD], [MASK] in a validated vocabulary."""
    return cls(vocab_size=vocab.size, start_of_sequence_id=vocab.cls_id,
               end_of_segment_id=vocab.sep_id, padding_id=vocab.pad_id,
               mask_id=vocab.mask_id)

  def as_dict(self) -> dict:
    """{name: int}, the keys and values of get_special_tokens_dict()."""
    return dataclasses.asdict(self)


def round_robin_lengths(lengths, budget):
  """How many tokens of each segment round-robin trimming keeps.

  Round robin hands out `budget` places one at a time to segment 0, 1, ...,
  n-1, 0, 1, ..., skipping segments that are used up (text.RoundRobinTrimmer).
  Closed form: every segment gets min(len, level) for the largest level with
  sum(min(len_i, level)) <= budget, and the first `left over` segments (in
  order) that are longer than the level get one more.

  Args:
    lengths: int64 [B, n] segment lengths.
    budget: int64 scalar; negative is taken as 0.

  Returns:
    int64 [B, n] kept lengths.
  """
  n = lengths.shape[1]
  budget = tf.maximum(budget, 0)
  # Water-filling over the sorted lengths: the level lies in the first sorted
  # segment that does not fit whole, after the smaller ones fit whole.
  ascending = tf.sort(lengths, axis=1)  # [B, n]
  smaller = tf.cumsum(ascending, axis=1, exclusive=True)  # [B, n]
  sharing = tf.constant(np.arange(n, 0, -1), tf.int64)  # n, n-1, ..., 1
  fits = smaller + sharing * ascending <= budget  # [B, n] True..True False..
  first_short = tf.reduce_sum(tf.cast(fits, tf.int32), axis=1)  # [B]
  i = tf.minimum(first_short, n - 1)[:, tf.newaxis]  # [B, 1]
  level = tf.where(
      first_short[:, tf.newaxis] < n,
      (budget - tf.gather(smaller, i, batch_dims=1)) //
      tf.gather(sharing, i),
      tf.reduce_max(lengths, axis=1, keepdims=True))  # [B, 1]
  base = tf.minimum(lengths, level)  # [B, n]
  left_over = budget - tf.reduce_sum(base, axis=1, keepdims=True)  # [B, 1]
  longer = lengths > level
  extra = longer & (tf.cumsum(tf.cast(longer, tf.int64), axis=1,
                              exclusive=True) < left_over)
  return base + tf.cast(extra, tf.int64)


def _flat(segment):
  """values [N] and row_splits int64 [B + 1] of a RaggedTensor [B, (...)]:
  [B, (W), (P)] as [B, (tokens)], by composing the row splits (no checks)."""
  splits = segment.row_splits
  for inner in segment.nested_row_splits[1:]:
    splits = tf.gather(inner, splits)  # [B + 1]: word bounds -> piece bounds
  return segment.flat_values, tf.cast(splits, tf.int64)


def pack_inputs(segments, seq_length, special: SpecialTokens) -> dict:
  """[CLS] seg_0 [SEP] seg_1 [SEP] ..., trimmed round-robin, padded to T.

  Equal to tf-models' `BertPackInputs.bert_pack_inputs(..., "round_robin")`
  but without TF Text's RoundRobinTrim op (not in TF Text 2.12), and built
  directly as dense [B, T] tensors: each position t of a row is [CLS], a
  token of segment j, its [SEP] or padding, by comparing t with where the
  segments begin. No ragged concat or to_tensor, so no runtime checks (If
  and Assert ops) in the graph: fewer ops per request, faster tracing.

  Args:
    segments: a list of n >= 1 int RaggedTensors [B, (tokens)] or
      [B, (W), (P)], all of the same dtype and B.
    seq_length: int or int32 scalar tensor T.
    special: the ids of [CLS], [SEP] and [PAD] (start_of_sequence_id,
      end_of_segment_id, padding_id).

  Returns:
    dict of input_word_ids, input_mask, input_type_ids, each [B, T] of the
    dtype of the segments (int32 for .tokenize outputs). If T is smaller than
    len(segments) + 1, the [SEP]s that do not fit are cut off.
  """
  flat = [_flat(s) for s in segments]
  dtype = flat[0][0].dtype
  lengths = tf.stack([splits[1:] - splits[:-1] for _, splits in flat],
                     axis=1)  # [B, n]
  kept = round_robin_lengths(  # [B, n]
      lengths, tf.cast(seq_length, tf.int64) - (len(segments) + 1))

  # A Python int T gives the outputs a static shape [None, T].
  t = tf.range(seq_length, dtype=tf.int64)[tf.newaxis, :]  # [1, T]

  def constant(value):
    return tf.constant(value, dtype)

  word_ids = tf.where(t == 0, constant(special.start_of_sequence_id),
                      constant(special.padding_id))  # [1, T]
  type_ids = tf.zeros_like(word_ids)  # [1, T]
  begin = tf.ones_like(kept[:, :1])  # [B, 1]: segment 0 begins after [CLS]
  for j, (values, splits) in enumerate(flat):
    k = kept[:, j:j + 1]  # [B, 1]
    inside = (t >= begin) & (t < begin + k)  # [B, T]: token i of seg_j at t
    # Its index in `values` (rows start at splits[:-1]); one past the end
    # (a [PAD] appended) elsewhere, so that every index is valid.
    index = tf.where(inside, splits[:-1, tf.newaxis] + (t - begin),
                     tf.size(values, out_type=tf.int64))  # [B, T]
    tokens = tf.gather(tf.concat([values, [constant(special.padding_id)]], 0),
                       index)  # [B, T]
    separator = tf.equal(t, begin + k)  # [B, T]
    word_ids = tf.where(inside, tokens, tf.where(
        separator, constant(special.end_of_segment_id), word_ids))
    if j:  # seg_j and its [SEP] have type j
      type_ids = tf.where(inside | separator, constant(j), type_ids)
    begin += k + 1  # [B, 1]: seg_j+1 begins after seg_j's [SEP]
  input_mask = tf.cast(t < begin, dtype)  # [B, T]: begin is the row's length
  return dict(input_word_ids=word_ids, input_mask=input_mask,
              input_type_ids=tf.broadcast_to(type_ids, tf.shape(word_ids)))
