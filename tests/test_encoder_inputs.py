"""Ids into the encoder (bert_hub/encoder.py and its exports): out-of-range ids.

Rows of the README's "Bad input and faults" table.
"""

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.encoder import sample_inputs
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order


# ------------------------------------------------------------------ ids into the encoder


@pytest.fixture(scope="module")
def encoders(tiny, exported):
  """The Python model and the reloaded export, with the same weights."""
  from bert_hub.encoder import load_encoder
  return dict(python=load_encoder(tiny.prefix), saved_model=tf.saved_model.load(exported))


@pytest.mark.parametrize("kind", ["python", "saved_model"])
@pytest.mark.parametrize("bad_id", [len(fixtures.TINY_VOCAB), 10 ** 6, -1])
def test_word_ids_out_of_range_raise_on_cpu(encoders, kind, bad_id):
  inputs = sample_inputs(fixtures.tiny_config(), batch=2, seq_length=8)
  inputs["input_word_ids"][1, 3] = bad_id
  with tf.device("/CPU:0"), pytest.raises(tf.errors.InvalidArgumentError,
                                          match=r"indices\[.*\] = %d is not in \[0, %d\)"
                                          % (bad_id, len(fixtures.TINY_VOCAB))):
    encoders[kind](inputs)


def type_embeddings(model):
  (var,) = [v for v in model.variables if "type_embeddings" in v.name]
  return var


@pytest.mark.parametrize("kind", ["python", "saved_model"])
def test_type_ids_out_of_range_get_a_zero_type_embedding(encoders, kind):
  model = encoders[kind]
  inputs = sample_inputs(fixtures.tiny_config(), batch=2, seq_length=8)
  inputs["input_type_ids"][:] = 0
  table = type_embeddings(model)
  saved = table.numpy()
  try:
    table.assign(np.stack([np.zeros_like(saved[0]), saved[1]]))  # row 0 := zeros
    with tf.device("/CPU:0"):
      want = model(inputs)["sequence_output"].numpy()
      for bad in (2, 7, -1):
        odd = {k: v.copy() for k, v in inputs.items()}
        odd["input_type_ids"][:, 2:5] = bad
        got = model(odd)["sequence_output"].numpy()  # no error, like type id 0 here
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
  finally:
    table.assign(saved)


@pytest.mark.parametrize("kind", ["python", "saved_model"])
def test_sequence_longer_than_max_position_embeddings_raises(encoders, kind):
  inputs = sample_inputs(fixtures.tiny_config(), batch=1, seq_length=65)  # max 64
  # InvalidArgumentError when run; ValueError when the length is static in a trace.
  with tf.device("/CPU:0"), pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                                          match="position_embedding"):
    encoders[kind](inputs)
