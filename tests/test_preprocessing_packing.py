"""bert_hub/preprocessing/packing.py: SpecialTokens, round robin, pack_inputs.

Oracles: literally handing out places one at a time (round robin), and
tf-models' `BertPackInputs` (TF Text's RoundRobinTrimmer) for packing.
The saved `bert_pack_inputs` is tested in test_preprocessing_model.py.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.preprocessing import pack_inputs
from bert_hub.preprocessing import round_robin_lengths
from bert_hub.preprocessing import SpecialTokens
from bert_hub.vocab import read_vocab

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

# [CLS], [SEP], [PAD] as in tests/test_preprocessing_model.py's hand vocab.
SPECIAL = SpecialTokens(vocab_size=29, start_of_sequence_id=2,
                        end_of_segment_id=3, padding_id=0, mask_id=4)


def test_special_tokens_from_vocab(tmp_path):
  path = tmp_path / "vocab.txt"
  # Out of the usual order, so that no id is right by accident.
  path.write_text("hello\n[MASK]\n[SEP]\n##s\n[UNK]\n[PAD]\n[CLS]\nworld\n",
                  encoding="utf-8")
  special = SpecialTokens.from_vocab(read_vocab(str(path)))
  assert special == SpecialTokens(vocab_size=8, start_of_sequence_id=6,
                                  end_of_segment_id=2, padding_id=5, mask_id=1)
  # The keys of TF Hub's get_special_tokens_dict(), in its order.
  assert special.as_dict() == {"vocab_size": 8, "start_of_sequence_id": 6,
                               "end_of_segment_id": 2, "padding_id": 5,
                               "mask_id": 1}
  assert all(type(v) is int for v in special.as_dict().values())
  with pytest.raises(dataclasses.FrozenInstanceError):
    special.padding_id = 0


def test_round_robin_lengths_match_one_at_a_time():
  """The closed form vs literally handing out one place at a time."""
  rng = np.random.default_rng(0)
  for n in (1, 2, 3, 4):
    lengths = rng.integers(0, 12, size=(2000, n))
    budgets = rng.integers(-3, 30, size=2000)
    want = []
    for row, budget in zip(lengths, budgets):
      kept, left = [0] * n, max(budget, 0)
      while left and any(k < l for k, l in zip(kept, row)):
        for j in range(n):
          if left and kept[j] < row[j]:
            kept[j] += 1
            left -= 1
      want.append(kept)
    got = [round_robin_lengths(tf.constant(row[np.newaxis], tf.int64),
                               tf.constant(b, tf.int64)).numpy()[0].tolist()
           for row, b in zip(lengths[:200], budgets[:200])]
    assert got == want[:200]
    # All rows at once, each with its own budget: run per budget value.
    for budget in np.unique(budgets):
      rows = budgets == budget
      got = round_robin_lengths(tf.constant(lengths[rows], tf.int64),
                                tf.constant(budget, tf.int64)).numpy()
      assert got.tolist() == [w for w, r in zip(want, rows) if r]


def random_segments(rng, num_segments, ragged_rank, batch_size):
  """num_segments int32 RaggedTensors [B, (tokens)] or [B, (W), (P)]."""
  segments = []
  for _ in range(num_segments):
    lengths = rng.integers(0, 12, size=batch_size)
    values = rng.integers(5, 1000, size=lengths.sum()).astype(np.int32)
    if ragged_rank == 1:
      segments.append(tf.RaggedTensor.from_row_lengths(values, lengths))
    else:  # Words of 1 to 3 pieces.
      cuts = [np.sort(rng.choice(np.arange(1, n), size=min(n - 1, n // 2),
                                 replace=False)) if n > 1 else []
              for n in lengths]
      word_lengths = [np.diff(np.concatenate([[0], c, [n]])).astype(np.int64)
                      if n else np.zeros([0], np.int64)
                      for c, n in zip(cuts, lengths)]
      words = tf.RaggedTensor.from_row_lengths(
          values, np.concatenate(word_lengths).astype(np.int64))
      segments.append(tf.RaggedTensor.from_row_lengths(
          words, [len(w) for w in word_lengths]))
  return segments


@pytest.mark.parametrize("num_segments", [1, 2, 3, 4])
@pytest.mark.parametrize("ragged_rank", [1, 2])
def test_pack_inputs_matches_tf_models(num_segments, ragged_rank):
  from official.nlp.modeling import layers
  rng = np.random.default_rng(100 + 10 * num_segments + ragged_rank)
  for _ in range(10):
    segments = random_segments(rng, num_segments, ragged_rank,
                               batch_size=int(rng.integers(1, 9)))
    seq_length = int(rng.integers(1, 24))
    want = layers.BertPackInputs(
        seq_length, start_of_sequence_id=2, end_of_segment_id=3,
        padding_id=0)(segments)
    for length in (seq_length, tf.constant(seq_length)):
      got = pack_inputs(segments, length, SPECIAL)
      assert set(got) == set(want)
      for key in want:
        assert got[key].dtype == want[key].dtype == tf.int32, key
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(),
                                      err_msg=f"{key} seq_length={length}")


def test_pack_inputs_by_hand():
  first = tf.ragged.constant([[10, 11, 12, 13], [14]], tf.int32)
  second = tf.ragged.constant([[[20], [21, 22]], [[23]]], tf.int32)
  out = pack_inputs([first, second], 7, SPECIAL)
  # Row 0 has 4 + 3 tokens for 7 - 3 places: round robin keeps 2 + 2.
  assert out["input_word_ids"].numpy().tolist() == [[2, 10, 11, 3, 20, 21, 3],
                                                    [2, 14, 3, 23, 3, 0, 0]]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1],
                                                    [0, 0, 0, 1, 1, 0, 0]]
  assert out["input_mask"].numpy().tolist() == [[1] * 7, [1] * 5 + [0] * 2]


def test_pack_inputs_static_shape_for_a_python_int():
  @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
  def pack(tokens):
    return pack_inputs([tokens], 9, SPECIAL)
  outputs = pack.get_concrete_function().structured_outputs
  assert {k: v.shape.as_list() for k, v in outputs.items()} == {
      k: [None, 9] for k in ("input_word_ids", "input_mask", "input_type_ids")}
