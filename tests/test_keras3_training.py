"""Keras 3 fine-tuning with dropout: TFSMLayer(call_training_endpoint="call_training").

Keras 3's TFSMLayer calls an endpoint with the inputs alone; in training it
calls `call_training_endpoint` instead, if given (keras/src/export/tfsm_layer.py).
Encoder exports of versions 2 and 3 (those with dropout when training) carry
`call_training` = `__call__(inputs, training=True)`; version 1 (its defect
kept: no dropout) does not. The Keras 3 program runs in a fresh process
without legacy Keras and without bert_hub, as in tests/test_keras3.py (one
process for both versions, on the tiny exports made once per run).
"""
import bert_hub  # noqa: F401  (legacy Keras first, in this process only)

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_hub.encoder import sample_inputs
from tests import fixtures

CONFIG = fixtures.tiny_config()

CHILD = r'''
import sys
import numpy as np
import keras

feeds_path = sys.argv[1]
with np.load(feeds_path) as data:
  ids = {k: data[k] for k in data.files}
names = ("input_word_ids", "input_mask", "input_type_ids")


def run(path, version, out_path):
  dict_api = version == "3"
  feed = ids if dict_api else [ids[n] for n in names]
  pooled = (lambda out: out["pooled_output"]) if dict_api else (lambda out: out[0])
  results = {}

  # README, "Keras 3": fine-tuning with dropout.
  encoder = keras.layers.TFSMLayer(path, call_endpoint="__call__",
                                   call_training_endpoint="call_training")
  results["inference 1"] = np.asarray(pooled(encoder(feed, training=False)))
  results["inference 2"] = np.asarray(pooled(encoder(feed, training=False)))
  results["training 1"] = np.asarray(pooled(encoder(feed, training=True)))
  results["training 2"] = np.asarray(pooled(encoder(feed, training=True)))

  inputs = {n: keras.Input(shape=(None,), dtype="int32", name=n) for n in names}
  outputs = encoder(inputs if dict_api else [inputs[n] for n in names])
  classifier = keras.Model(inputs, keras.layers.Dense(2)(pooled(outputs)))
  classifier.compile(optimizer=keras.optimizers.SGD(0.1),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  before = [np.array(w) for w in encoder.trainable_weights]
  classifier.fit(ids, np.array([0, 1, 0]), epochs=2, batch_size=3, verbose=0)
  results["trained change"] = np.array(max(
      float(np.max(np.abs(np.array(w) - b)))
      for w, b in zip(encoder.trainable_weights, before)))
  results["trainable weights"] = np.array(len(encoder.trainable_weights))
  # The fine-tuned weights are the ones both endpoints compute with.
  results["inference after"] = np.asarray(pooled(encoder(feed, training=False)))
  results["keras version"] = np.array(keras.__version__)
  results["imported"] = np.array(sorted(m for m in ("bert_hub", "tf_keras")
                                        if m in sys.modules))
  np.savez(out_path, **results)


# One Keras 3 process for every (path, version, out) given: each version's
# program runs on its own TFSMLayer and model.
for path, version, out_path in zip(*[iter(sys.argv[2:])] * 3):
  run(path, version, out_path)
'''


VERSIONS = (2, 3)  # those with call_training


@pytest.fixture(scope="module")
def exports(run_shared):
  """The tiny encoder as versions 1, 2 and 3, made once per run (tests/fixtures.py)."""
  return fixtures.tiny_encoders(run_shared)


@pytest.fixture(scope="module")
def keras3_runs(tmp_path_factory, exports):
  """{version: what CHILD computed for that version}, VERSIONS in ONE Keras 3 process."""
  root = tmp_path_factory.mktemp("keras3_training")
  np.savez(root / "feeds.npz", **sample_inputs(CONFIG, batch=3, seq_length=8, seed=3))
  (root / "child.py").write_text(CHILD)
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  jobs = [str(a) for v in VERSIONS for a in (exports[v], v, root / f"out{v}.npz")]
  result = subprocess.run(
      [sys.executable, str(root / "child.py"), str(root / "feeds.npz"), *jobs],
      env=env, cwd=str(root), capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-6000:]
  runs = {}
  for version in VERSIONS:
    with np.load(root / f"out{version}.npz") as data:
      runs[version] = {k: data[k] for k in data.files}
  return runs


@pytest.mark.parametrize("version", VERSIONS)
def test_keras_3_fine_tunes_with_dropout_through_call_training(exports, keras3_runs,
                                                               version):
  path = exports[version]
  got = keras3_runs[version]
  assert str(got["keras version"]).startswith("3.")
  assert list(got["imported"]) == []
  # Inference: deterministic, and what the export computes.
  np.testing.assert_array_equal(got["inference 1"], got["inference 2"])
  loaded = tf.saved_model.load(path)
  ids = sample_inputs(CONFIG, batch=3, seq_length=8, seed=3)
  feed = ids if version == 3 else [ids[n] for n in ("input_word_ids", "input_mask",
                                                     "input_type_ids")]
  out = loaded(feed, training=False)
  want = out["pooled_output"] if version == 3 else out[0]
  np.testing.assert_allclose(got["inference 1"], want, rtol=1e-5, atol=1e-6)
  # Training: dropout on, so two calls on the same input differ.
  assert np.max(np.abs(got["training 1"] - got["training 2"])) > 1e-4
  assert np.max(np.abs(got["training 1"] - got["inference 1"])) > 1e-4
  # Fine-tuning moved the encoder's weights, and inference uses them.
  assert int(got["trainable weights"]) == len(loaded.trainable_variables)
  assert float(got["trained change"]) > 0
  assert np.max(np.abs(got["inference after"] - got["inference 1"])) > 0


def test_call_training_applies_dropout_without_keras(exports):
  loaded = tf.saved_model.load(exports[3])
  ids = sample_inputs(CONFIG, batch=3, seq_length=8, seed=3)
  inference = loaded(ids, training=False)["sequence_output"].numpy()
  first, second = (loaded.call_training(ids)["sequence_output"].numpy() for _ in range(2))
  assert np.max(np.abs(first - inference)) > 1e-4
  assert np.max(np.abs(first - second)) > 1e-4


def test_version_1_has_no_training_endpoint(exports):
  assert not hasattr(tf.saved_model.load(exports[1]), "call_training")
