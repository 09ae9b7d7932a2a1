"""Keras 3 users: exports load with keras.layers.TFSMLayer, without legacy Keras.

hub.KerasLayer is a tf_keras layer; a Keras 3 program (TF_USE_LEGACY_KERAS
unset, `import keras` is Keras 3) uses `keras.layers.TFSMLayer` instead. Its
endpoint must take one (possibly dict) argument, so it is `__call__`: the
encoder's dict in, dict out, and the text-embedding model's sentences in, its
embedding [batch, D] out. The
`serving_default` signature takes separate keyword inputs, which TFSMLayer
cannot call.

Fine-tuning with dropout: TFSMLayer calls an endpoint with the inputs alone;
in training it calls `call_training_endpoint` instead, if given
(keras/src/export/tfsm_layer.py). Encoder exports of versions 2 and 3 (those
with dropout when training) carry `call_training` = `__call__(inputs,
training=True)`; version 1 (its defect kept: no dropout) does not.

The Keras 3 programs (the README's snippets) run in ONE child process whose
environment has no TF_USE_LEGACY_KERAS and which never imports bert_hub (this
process has legacy Keras for good), on the tiny exports made once per run.
"""
import bert_hub  # noqa: F401  (legacy Keras first, in this process only)

import json
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
VERSIONS = (2, 3)  # the encoder versions with call_training

CHILD = r'''
import json, os, sys
import numpy as np
import tensorflow as tf
import keras
import tensorflow_text  # noqa: F401  (registers the TF Text ops of the text-embedding model)


def inference(encoder_path, embed_path, feeds_path, out_path):
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


def training(path, version, feeds_path, out_path):
  with np.load(feeds_path) as data:
    ids = {k: data[k] for k in data.files}
  names = ("input_word_ids", "input_mask", "input_type_ids")
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


# One Keras 3 process for everything (tests/test_keras3.py `keras3_run`): the
# inference program, then the training one for each version, each on its own
# TFSMLayer and model.
with open(sys.argv[1], encoding="utf-8") as f:
  spec = json.load(f)
inference(**spec["inference"])
for job in spec["training"]:
  training(**job)
'''


@pytest.fixture(scope="module")
def exports(run_shared):
  """The tiny encoder as versions 1, 2 and 3, made once per run (tests/fixtures.py)."""
  return fixtures.tiny_encoders(run_shared)


@pytest.fixture(scope="module")
def keras3_run(tmp_path_factory, run_shared, exports):
  """What CHILD computed: {"got": the inference program's results, "training":
  {version: the training program's}, ...}."""
  root = tmp_path_factory.mktemp("keras3")
  # The tiny TF1 checkpoint (no MLM) as encoder versions and as a text-embedding
  # servable, each made once per run (tests/fixtures.py).
  encoder = exports[3]
  embed = fixtures.tiny_text_embedding(run_shared)["path"]
  ids = sample_inputs(CONFIG, batch=3, seq_length=SEQ_LENGTH, seed=3)
  feeds = dict(ids, sentences=np.array(SENTENCES, dtype=object))
  np.savez(root / "feeds.npz", **feeds)
  np.savez(root / "ids.npz", **ids)
  spec = {"inference": dict(encoder_path=encoder, embed_path=embed,
                            feeds_path=str(root / "feeds.npz"),
                            out_path=str(root / "out.npz")),
          "training": [dict(path=exports[v], version=str(v),
                            feeds_path=str(root / "ids.npz"),
                            out_path=str(root / f"out{v}.npz")) for v in VERSIONS]}
  (root / "spec.json").write_text(json.dumps(spec))
  (root / "child.py").write_text(CHILD)
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run(
      [sys.executable, str(root / "child.py"), str(root / "spec.json")],
      env=env, cwd=str(root), capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-6000:]

  def read(path):
    with np.load(path, allow_pickle=True) as data:
      return {k: data[k] for k in data.files}
  return dict(got=read(root / "out.npz"), ids=ids, encoder=encoder, embed=embed,
              training={v: read(root / f"out{v}.npz") for v in VERSIONS})


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


# ------------------------------------------------- fine-tuning with dropout


@pytest.mark.parametrize("version", VERSIONS)
def test_keras_3_fine_tunes_with_dropout_through_call_training(exports, keras3_run,
                                                               version):
  path = exports[version]
  got = keras3_run["training"][version]
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
