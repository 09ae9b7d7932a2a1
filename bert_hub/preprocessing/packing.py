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


def pack_inputs(segments, seq_length, special: SpecialTokens) -> dict:
  """[CLS] seg_0 [SEP] seg_1 [SEP] ..., trimmed round-robin, padded to T.

  Equal to tf-models' `BertPackInputs.bert_pack_inputs(..., "round_robin")`
  but without TF Text's RoundRobinTrim op (not in TF Text 2.12).

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
  segments = [s.merge_dims(1, -1) if s.ragged_rank > 1 else s
              for s in segments]  # [B, (W), (P)] -> [B, (tokens)]
  dtype = segments[0].dtype
  lengths = tf.stack([s.row_lengths() for s in segments], axis=1)  # [B, n]
  kept = round_robin_lengths(  # [B, n]
      lengths, tf.cast(seq_length, tf.int64) - (len(segments) + 1))

  batch_size = segments[0].nrows()
  ones = tf.ones([batch_size], tf.int64)

  def column(value):  # [B, (1)] of `value`
    return tf.RaggedTensor.from_row_lengths(
        tf.fill([batch_size], tf.constant(value, dtype)), ones, validate=False)

  word_ids, type_ids = [column(special.start_of_sequence_id)], [column(0)]
  for j, (segment, k) in enumerate(zip(segments, tf.unstack(kept, axis=1))):
    # The first k[i] tokens of each row i: [B, (k)].
    positions = tf.ragged.range(segment.row_starts(), segment.row_starts() + k)
    word_ids += [positions.with_values(tf.gather(segment.values,
                                                 positions.values)),
                 column(special.end_of_segment_id)]
    type_ids += [tf.RaggedTensor.from_row_lengths(  # j on seg_j and its [SEP].
        tf.fill([tf.reduce_sum(k) + batch_size], tf.constant(j, dtype)), k + 1,
        validate=False)]
  word_ids = tf.concat(word_ids, axis=1)  # [B, (tokens)]
  type_ids = tf.concat(type_ids, axis=1)  # [B, (tokens)]

  # Pad to [B, T]; rows longer than T (only if T < len(segments) + 1) are cut.
  # A Python int T gives the outputs a static shape [None, T].
  shape = [None, seq_length] if isinstance(seq_length, int) else tf.stack(
      [batch_size, tf.cast(seq_length, tf.int64)])
  padding = tf.constant(special.padding_id, dtype)
  input_word_ids = word_ids.to_tensor(padding, shape=shape)
  input_type_ids = type_ids.to_tensor(tf.constant(0, dtype), shape=shape)
  input_mask = tf.sequence_mask(word_ids.row_lengths(), seq_length,
                                dtype=dtype)
  return dict(input_word_ids=input_word_ids, input_mask=input_mask,
              input_type_ids=input_type_ids)


