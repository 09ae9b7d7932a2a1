"""bert_hub/length_buckets.py: run_by_length equals the fixed-length computation.

The independent reference is the same function called once on the whole
batch padded to S (numpy comparison); fn here is a small masked model whose
outputs on real tokens do not depend on the padding, as BERT's.
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import numpy as np
import pytest
import tensorflow as tf

from bert_hub import length_buckets

S, H = 20, 4
WEIGHTS = tf.constant(np.random.RandomState(0).randn(50, H).astype(np.float32))


def fn(inputs):
  """[b, s] ids and mask -> per-token cumulative sums [b, s, H], a pooled sum
  [b, H], and the length and number of rows it was called with [b]."""
  x = tf.gather(WEIGHTS, inputs["input_word_ids"])  # [b, s, H]
  x *= tf.cast(inputs["input_mask"], tf.float32)[..., tf.newaxis]  # [b, s, H]
  return {"tokens": tf.cumsum(x, axis=1), "pooled": tf.reduce_sum(x, axis=1),
          "called_length": tf.fill(tf.shape(x)[:1], tf.shape(x)[1]),
          "called_rows": tf.fill(tf.shape(x)[:1], tf.shape(x)[0])}


@tf.function(input_signature=[{k: tf.TensorSpec([None, S], tf.int32)
                               for k in ("input_word_ids", "input_mask")}])
def by_length(inputs):
  return length_buckets.run_by_length(fn, inputs, per_token=("tokens",), chunk_size=3)


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 10, 31])
def test_equals_the_fixed_length_computation_in_request_order(batch):
  rng = np.random.RandomState(batch)
  lengths = rng.randint(0, S + 1, size=batch)
  lengths[0] = 0  # an empty row
  mask = (np.arange(S)[np.newaxis] < lengths[:, np.newaxis]).astype(np.int32)  # [B, S]
  ids = rng.randint(1, 50, size=(batch, S)).astype(np.int32) * mask  # [B, S]
  feeds = {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask)}
  got = by_length(feeds)
  want = fn(feeds)
  assert got["tokens"].shape == (batch, S, H)
  np.testing.assert_allclose(got["tokens"], want["tokens"].numpy() * mask[..., np.newaxis],
                             atol=1e-6)
  np.testing.assert_allclose(got["pooled"], want["pooled"], atol=1e-6)
  called = got["called_length"].numpy()
  if batch <= 3:  # one chunk (B <= chunk_size): trimmed to exactly the longest row
    assert np.all(called == max(lengths.max(), 1)), (called, lengths)
  # Each row ran trimmed: at most its chunk's longest row rounded up to 8 (<= S).
  assert np.all(called <= S) and np.all(called >= np.minimum(
      (lengths + 7) // 8 * 8 if batch > 3 else lengths, S))
  if batch > 3:
    assert called.min() < S or lengths.max() > 16  # some chunk was trimmed


@pytest.mark.parametrize("lengths, calls", [
    ([S] * 9, [(9, S)]),  # all full: one call, as without buckets
    ([2, 3, 2, 5, 3, 4, 20, 17, 19], [(6, 8), (3, S)]),  # chunks of 8, 8, 20
    ([1, 9, 2, 17, 3, 10, 4], [(3, 8), (3, 16), (1, S)])])  # 8, 16, 24 -> S
def test_consecutive_chunks_of_one_length_run_as_one_call(lengths, calls):
  """chunk_size 3, lengths rounded up to 8: each call's (rows, length), shortest
  first, is what the sorted chunks give once equal neighbours are merged."""
  lengths = np.array(lengths)
  mask = (np.arange(S)[np.newaxis] < lengths[:, np.newaxis]).astype(np.int32)  # [B, S]
  ids = np.random.RandomState(0).randint(1, 50, size=mask.shape).astype(np.int32) * mask
  feeds = {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask)}
  got = by_length(feeds)
  want = fn(feeds)
  np.testing.assert_allclose(got["pooled"], want["pooled"], atol=1e-6)
  order = np.argsort(lengths, kind="stable")
  seen = list(zip(got["called_rows"].numpy()[order], got["called_length"].numpy()[order]))
  assert list(dict.fromkeys(seen)) == calls, seen


def test_an_empty_batch_gives_empty_outputs():
  feeds = {k: tf.zeros([0, S], tf.int32) for k in ("input_word_ids", "input_mask")}
  got = by_length(feeds)
  assert got["tokens"].shape == (0, S, H) and got["pooled"].shape == (0, H)


def test_one_graph_path_for_every_batch_size():
  """No tf.cond (its untaken branch costs every call): one While, no If."""
  graph = by_length.get_concrete_function().graph
  types = {op.type for op in graph.get_operations()}
  assert "While" in types or "StatelessWhile" in types, types
  assert not types & {"If", "StatelessIf"}, types


@pytest.mark.parametrize("batch", [0, 1, 10])
def test_eagerly_one_call_on_the_trimmed_batch_equals_the_buckets(batch):
  """An export's in-memory reference runs eagerly (export/pipeline.py): fn once,
  on every row trimmed to the longest; the same values as the buckets' graph."""
  rng = np.random.RandomState(batch)
  lengths = rng.randint(1, S - 2, size=batch)
  mask = (np.arange(S)[np.newaxis] < lengths[:, np.newaxis]).astype(np.int32)  # [B, S]
  ids = rng.randint(1, 50, size=(batch, S)).astype(np.int32) * mask  # [B, S]
  feeds = {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask)}
  assert tf.executing_eagerly()
  got = length_buckets.run_by_length(fn, feeds, per_token=("tokens",), chunk_size=3)
  np.testing.assert_array_equal(got["called_rows"], batch)
  np.testing.assert_array_equal(got["called_length"], max(lengths.max(initial=0), 1))
  want = by_length(feeds)
  assert got["tokens"].shape == (batch, S, H)
  for key in ("tokens", "pooled"):
    np.testing.assert_allclose(got[key], want[key], atol=1e-6)
