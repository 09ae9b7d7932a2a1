"""Keras 3 users: exports load with keras.layers.TFSMLayer, without legacy Keras.

hub.KerasLayer is a tf_keras layer; a Keras 3 program (TF_USE_LEGACY_KERAS
unset, `import keras` is Keras 3) uses `keras.layers.TFSMLayer` instead. Its
endpoint must take one (possibly dict) argument, so it is `__call__`: the
encoder's dict in, dict out, and the text-embedding model's sentences in, its
embedding [batch, D] out. The
`serving_default` signature takes separate keyword inputs, which TFSMLayer
cannot call.

The Keras 3 program runs in a child process whose environment has no
TF_USE_LEGACY_KERAS and which never imports bert_hub (this process has legacy
Keras for good), exactly the README's snippet.
"""
import bert_hub  # noqa: F401  (legacy Keras first, in this process only)

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (loading the text-embedding model here)

from bert_hub.encoder import sample_inputs
from tests import fixtures

CONFIG = fixtures.tiny_config()
SEQ_LENGTH = 8  # of the encoder's sample ids
SENTENCES = ["hello world", "the cat sat on the mat.", ""]

CHILD = r'''
import os, sys
import numpy as np
import tensorflow as tf
import keras
import tensorflow_text  # noqa: F401  (registers the TF Text ops of the text-embedding model)

encoder_path, embed_path, feeds_path, out_path = sys.argv[1:5]
with np.load(feeds_path, allow_pickle=True) as data:
  feeds = {k: data[k] for k in data.files}
ids = {k: feeds[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}
results = {}

# README, "Keras 3": the encoder in a functional Keras 3 model.
encoder = keras.layers.TFSMLayer(encoder_path, call_endpoint="__call__")
inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
          for name in ("input_word_ids", "input_mask", "input_type_ids")}
outputs = encoder(inputs)
embedder = keras.Model(inputs, {"pooled_output": outputs["pooled_output"],
                                "sequence_output": outputs["sequence_output"]})
for key, value in embedder(ids).items():
  results[f"encoder {key}"] = np.asarray(value)
results["encoder encoder_outputs"] = np.stack(
    [np.asarray(t) for t in encoder(ids)["encoder_outputs"]])

# Fine-tuning: the encoder's weights are trainable Keras 3 variables.
logits = keras.layers.Dense(2)(outputs["pooled_output"])
classifier = keras.Model(inputs, logits)
classifier.compile(optimizer=keras.optimizers.SGD(0.1),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
before = [np.array(w) for w in encoder.trainable_weights]
classifier.fit(ids, np.array([0, 1, 0]), epochs=1, verbose=0)
results["trained change"] = np.array(max(
    float(np.max(np.abs(np.array(w) - b))) for w, b in zip(encoder.trainable_weights, before)))
results["trainable weights"] = np.array(len(encoder.trainable_weights))

# README, "Keras 3": sentences in, embeddings out.
embed = keras.layers.TFSMLayer(embed_path, call_endpoint="__call__", trainable=False)
sentences = keras.Input(shape=(), dtype="string", name="sentences")
text_model = keras.Model(sentences, embed(sentences))  # the embedding [batch, D]
results["text embedding"] = np.asarray(text_model(tf.constant(feeds["sentences"])))

results["keras version"] = np.array(keras.__version__)
results["legacy keras env"] = np.array(os.environ.get("TF_USE_LEGACY_KERAS", ""))
results["imported"] = np.array(sorted(m for m in ("bert_hub", "tf_keras", "export")
                                      if m in sys.modules))
np.savez(out_path, **results)
'''


@pytest.fixture(scope="module")
def keras3_run(tmp_path_factory, run_shared):
  root = tmp_path_factory.mktemp("keras3")
  # The tiny TF1 checkpoint (no MLM) as encoder version 3 and as a text-embedding
  # servable, each made once per run (tests/fixtures.py).
  encoder = fixtures.tiny_encoders(run_shared)[3]
  embed = fixtures.tiny_text_embedding(run_shared)["path"]
  ids = sample_inputs(CONFIG, batch=3, seq_length=SEQ_LENGTH, seed=3)
  feeds = dict(ids, sentences=np.array(SENTENCES, dtype=object))
  np.savez(root / "feeds.npz", **feeds)
  (root / "child.py").write_text(CHILD)
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run(
      [sys.executable, str(root / "child.py"), encoder, embed,
       str(root / "feeds.npz"), str(root / "out.npz")],
      env=env, cwd=str(root), capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-6000:]
  with np.load(root / "out.npz", allow_pickle=True) as data:
    got = {k: data[k] for k in data.files}
  return dict(got=got, ids=ids, encoder=encoder, embed=embed)


def test_child_is_a_keras_3_program_without_bert_hub(keras3_run):
  got = keras3_run["got"]
  assert str(got["keras version"]).startswith("3.")
  assert str(got["legacy keras env"]) == ""
  assert list(got["imported"]) == []  # neither bert_hub nor tf_keras


def test_version_3_encoder_in_tfsm_layer_equals_the_export(keras3_run):
  got = keras3_run["got"]
  want = tf.saved_model.load(keras3_run["encoder"])(keras3_run["ids"])
  for key in ("pooled_output", "sequence_output"):
    np.testing.assert_allclose(got[f"encoder {key}"], want[key], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got["encoder encoder_outputs"],
                             np.stack([t.numpy() for t in want["encoder_outputs"]]),
                             rtol=1e-5, atol=1e-6)


def test_version_3_encoder_fine_tunes_under_keras_3(keras3_run):
  got = keras3_run["got"]
  assert int(got["trainable weights"]) == len(
      tf.saved_model.load(keras3_run["encoder"]).trainable_variables)
  assert float(got["trained change"]) > 0


def test_text_embedding_in_tfsm_layer_equals_the_export(keras3_run):
  got = keras3_run["got"]
  want = tf.saved_model.load(keras3_run["embed"])(tf.constant(SENTENCES))
  assert got["text embedding"].shape == (len(SENTENCES), CONFIG.hidden_size)
  np.testing.assert_allclose(got["text embedding"], want, rtol=1e-5, atol=1e-6)
