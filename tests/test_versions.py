"""Interface versions 1, 2 and 3 of the encoder export, as their TF Hub pages say.

Oracles: the usage snippets of the TF Hub pages (tests/data/tfhub_*.md, copied
from shared/seeds/), run unchanged but for the handle; the in-memory encoder
(bert_hub.load_encoder) for numbers; FullTokenizer over the original vocab for ids.
"""
import hashlib
import json
import os
import pathlib
import re

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.encoder import load_encoder, sample_inputs
from export import cli, versions
from export.pages import encoder_page, metadata
from export.verify import VERIFY_TOLERANCE
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order
import tensorflow_hub as hub  # pylint: disable=wrong-import-order
from official.nlp.tools import tokenization  # pylint: disable=wrong-import-order

DATA = os.path.join(os.path.dirname(__file__), "data")
PAGE_V1_ZH = os.path.join(DATA, "tfhub_bert_zh_L-12_H-768_A-12_1.md")  # seed 002
PAGE_V3_EN = os.path.join(DATA, "tfhub_bert_en_wwm_uncased_L-24_H-1024_A-16_3.md")  # seed 000
# The seed snippets use max_seq_length = 128 unchanged: the model needs 128 positions.
CONFIG = fixtures.tiny_config(max_position_embeddings=128)
H = CONFIG.hidden_size
# Versions differ in interface only; the same weights and graph give the same
# numbers up to CPU kernel nondeterminism (repeated calls of one model differ by ~4e-9).
SAME_NUMBERS = 1e-6
# tf-models' export_tfhub_lib_test: mean stddev of pooled_output over 20 calls.
NO_DROPOUT, DROPOUT = 1e-6, 1e-3
TEXT = "我是中国人 The cat sat on the mat, unaffable!"


@pytest.fixture(scope="module")
def exports(run_shared):
  """One TF1 checkpoint (CONFIG) exported as versions 1, 2 and 3 by the CLI, once
  per run (tests/fixtures.py, tiny128_encoders): {version: path, "prefix",
  "vocab", "out", "printed"}."""
  return fixtures.tiny128_encoders(run_shared)


def _run_page_snippets(page_text, model_path):
  """Runs a page's python blocks in order, the tfhub.dev handle -> model_path."""
  namespace = {}
  exec("import bert_hub, tensorflow as tf, tensorflow_hub as hub\n"  # pylint: disable=exec-used
       "from official.nlp.tools import tokenization\n", namespace)
  blocks = encoder_page.python_blocks(page_text)
  assert blocks, "the page has no python snippet"
  for block in blocks:
    replaced = re.sub(r'"https://tfhub\.dev/[^"]+"', repr(model_path), block)
    assert "tfhub.dev" not in replaced  # never download
    exec(compile(replaced, "<page snippet>", "exec"), namespace)  # pylint: disable=exec-used
  return namespace


def _pack(tokenizer, text, seq_length):
  tokens = ["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"]
  ids = tokenizer.convert_tokens_to_ids(tokens)
  pad = seq_length - len(ids)
  return (np.array([ids + [0] * pad], np.int32),
          np.array([[1] * len(ids) + [0] * pad], np.int32),
          np.zeros((1, seq_length), np.int32))


@pytest.mark.parametrize("version", [1, 2])
def test_seed_002_snippets_run_unchanged_on_list_versions(exports, version):
  with open(PAGE_V1_ZH, encoding="utf-8") as f:
    ns = _run_page_snippets(f.read(), exports[version])
  # The page: pooled_output [batch_size, 768], sequence_output [batch_size, max_seq_length, 768].
  assert ns["pooled_output"].shape.as_list() == [None, H]
  static = [None, 128, H] if version == 2 else [None, None, H]  # v2 fixed shape propagation
  assert ns["sequence_output"].shape.as_list() == static

  # The tokenizer built from the SavedModel's own attributes.
  assert ns["vocab_file"].decode().startswith(os.path.join(exports[version], "assets"))
  assert isinstance(ns["do_lower_case"], np.bool_) and ns["do_lower_case"]
  reference = tokenization.FullTokenizer(exports["vocab"], do_lower_case=True)
  tokens = ns["tokenizer"].tokenize(TEXT)
  assert tokens[:5] == ["我", "是", "中", "国", "人"] and "##aff" in tokens
  assert "[UNK]" not in tokens
  assert (ns["tokenizer"].convert_tokens_to_ids(tokens)
          == reference.convert_tokens_to_ids(reference.tokenize(TEXT)))

  # ... produces ids the layer accepts, through the Keras model of the snippet.
  model = tf.keras.Model([ns["input_word_ids"], ns["input_mask"], ns["segment_ids"]],
                         [ns["pooled_output"], ns["sequence_output"]])
  feeds = _pack(ns["tokenizer"], TEXT, 128)
  pooled, sequence = model.predict(list(feeds), verbose=0)
  assert pooled.shape == (1, H) and sequence.shape == (1, 128, H)
  want = load_encoder(exports["prefix"], CONFIG)(
      dict(input_word_ids=feeds[0], input_mask=feeds[1], input_type_ids=feeds[2]))
  np.testing.assert_allclose(pooled, want["pooled_output"], atol=VERIFY_TOLERANCE)


def test_seed_000_snippet_runs_unchanged_on_version_3(exports):
  with open(PAGE_V3_EN, encoding="utf-8") as f:
    ns = _run_page_snippets(f.read(), exports[3])
  assert ns["pooled_output"].shape.as_list() == [None, H]
  assert ns["sequence_output"].shape.as_list() == [None, 128, H]
  encoder_outputs = ns["outputs"]["encoder_outputs"]
  assert len(encoder_outputs) == CONFIG.num_layers
  assert all(t.shape.as_list() == [None, 128, H] for t in encoder_outputs)


def _layer_call(layer, version, inputs, training):
  if versions.get(version).dict_api:
    return layer(inputs, training=training)
  pooled, sequence = layer([inputs["input_word_ids"], inputs["input_mask"],
                            inputs["input_type_ids"]], training=training)
  return dict(pooled_output=pooled, sequence_output=sequence)


def _dropout_mean_stddev(layer, version, training, runs=20):
  inputs = sample_inputs(CONFIG, batch=1, seq_length=6)
  pooled = np.concatenate([_layer_call(layer, version, inputs, training)["pooled_output"]
                           for _ in range(runs)])
  return float(np.mean(np.std(pooled, axis=0)))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_dropout_under_training_off_in_v1_on_in_v2_and_v3(exports, version):
  layer = hub.KerasLayer(exports[version], trainable=True)
  assert _dropout_mean_stddev(layer, version, training=False) < NO_DROPOUT
  spread = _dropout_mean_stddev(layer, version, training=True)
  if version == 1:  # the defect version 2 fixed, kept as released
    assert spread < NO_DROPOUT
    inputs = sample_inputs(CONFIG, batch=2, seq_length=8)
    trained = _layer_call(layer, 1, inputs, True)["sequence_output"]
    inferred = _layer_call(layer, 1, inputs, False)["sequence_output"]
    assert np.max(np.abs(trained - inferred)) < SAME_NUMBERS
  else:
    assert spread > DROPOUT


@pytest.mark.parametrize("version", [1, 2, 3])
def test_static_seq_length_reaches_sequence_output_from_v2(exports, version):
  layer = hub.KerasLayer(exports[version], trainable=True)
  seq_length = 10
  inputs = {name: tf.keras.layers.Input(shape=(seq_length,), dtype=tf.int32, name=name)
            for name in ("input_word_ids", "input_mask", "input_type_ids")}
  out = _layer_call(layer, version, inputs, None)
  assert out["pooled_output"].shape.as_list() == [None, H]
  want = [None, None, H] if version == 1 else [None, seq_length, H]
  assert out["sequence_output"].shape.as_list() == want
  if version == 3:
    assert [t.shape.as_list() for t in out["encoder_outputs"]] == [[None, seq_length, H]] * 2


def test_all_versions_give_the_same_numbers_in_inference(exports):
  inputs = sample_inputs(CONFIG, batch=3, seq_length=12)
  want = load_encoder(exports["prefix"], CONFIG)(inputs, training=False)
  got = {v: _layer_call(hub.KerasLayer(exports[v]), v, inputs, False) for v in (1, 2, 3)}
  for v in (1, 2, 3):
    for key in ("pooled_output", "sequence_output"):
      assert np.max(np.abs(got[v][key] - got[3][key])) <= SAME_NUMBERS, (v, key)
      assert np.max(np.abs(got[v][key] - want[key])) <= VERIFY_TOLERANCE


@pytest.mark.parametrize("version", [1, 2, 3])
def test_serving_default_has_meaningful_names(exports, version):
  loaded = tf.saved_model.load(exports[version])
  signature = loaded.signatures["serving_default"]
  _, inputs = signature.structured_input_signature
  spec = versions.get(version)
  assert sorted(inputs) == sorted(spec.input_names)
  assert all(s.shape.as_list() == [None, None] and s.dtype == tf.int32
             for s in inputs.values())
  outputs = signature.structured_outputs
  if spec.dict_api:
    assert set(outputs) == {"pooled_output", "sequence_output", "default",
                            "encoder_outputs_0", "encoder_outputs_1"}
  else:
    assert spec.input_names == ("input_word_ids", "input_mask", "segment_ids")
    assert set(outputs) == {"pooled_output", "sequence_output"}
  feeds = sample_inputs(CONFIG, batch=2, seq_length=7)
  served = signature(**dict(zip(spec.input_names, (tf.constant(feeds[n]) for n in (
      "input_word_ids", "input_mask", "input_type_ids")))))
  called = _layer_call(hub.KerasLayer(exports[version]), version, feeds, False)
  for key in ("pooled_output", "sequence_output"):  # two graphs: fusion moves ~2e-6
    assert np.max(np.abs(served[key] - called[key])) <= VERIFY_TOLERANCE


@pytest.mark.parametrize("version", [1, 2, 3])
def test_legacy_attributes_on_every_version(exports, version):
  layer = hub.KerasLayer(exports[version], trainable=True)
  obj = layer.resolved_object
  vocab_file = obj.vocab_file.asset_path.numpy().decode()
  assert os.path.dirname(vocab_file) == os.path.join(exports[version], "assets")
  with open(vocab_file, encoding="utf-8") as f:
    assert f.read().split("\n")[:-1] == fixtures.TINY_VOCAB
  assert obj.do_lower_case.numpy() == True  # noqa: E712
  assert not obj.do_lower_case.trainable
  assert obj.do_lower_case.dtype == tf.bool


def test_ops_each_version_needs(exports):
  """The README's matrix: core TensorFlow only; v1's graph has no dropout at all."""
  from export.serving import ops as serving_ops  # pylint: disable=g-import-not-at-top
  ops = {v: serving_ops.saved_model_op_types(exports[v]) for v in (1, 2, 3)}
  for v in (1, 2, 3):
    assert serving_ops.ops_outside_core_tensorflow(exports[v]) == []
    assert serving_ops.ops_outside_allowlist(exports[v]) == []
  assert ops[1] - ops[2] == {"PlaceholderWithDefault"}  # hides the static seq_length
  assert "RandomUniform" in ops[2] and "RandomUniform" not in ops[1]  # dropout masks
  assert ops[2] == ops[3]


@pytest.mark.parametrize("version", [1, 3])
def test_fine_tuning_updates_the_weights(exports, version):
  """hub.KerasLayer(path, trainable=True) trains: every weight gets a gradient."""
  layer = hub.KerasLayer(exports[version], trainable=True)
  frozen = hub.KerasLayer(exports[version], trainable=False)
  inputs = sample_inputs(CONFIG, batch=2, seq_length=8)
  _layer_call(frozen, version, inputs, False)
  assert not frozen.trainable_weights
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(_layer_call(layer, version, inputs, True)["pooled_output"])
  weights = layer.trainable_weights
  assert len(weights) == len(load_encoder(exports["prefix"], CONFIG).trainable_variables)
  grads = tape.gradient(loss, weights)
  assert all(g is not None for g in grads)
  before = _layer_call(layer, version, inputs, False)["pooled_output"].numpy()
  tf.keras.optimizers.SGD(0.1).apply_gradients(zip(grads, weights))
  after = _layer_call(layer, version, inputs, False)["pooled_output"].numpy()
  assert np.max(np.abs(after - before)) > 1e-4


def _write_checkpoint(fmt, folder):
  if fmt == "tf2":
    prefix, _ = fixtures.write_tf2_checkpoint(folder, CONFIG)
  else:
    prefix = str(fixtures.write_hf_checkpoint(folder, CONFIG, pretraining=False,
                                              hidden_act="gelu_new"))
  fixtures.write_vocab(folder)
  return prefix


@pytest.mark.parametrize("fmt", ["tf1", "tf2", "hf"])
def test_cli_exports_every_version_from_every_format(tmp_path, fmt, capsys, exports):
  if fmt == "tf1":
    # The module's exports: this same CLI command on a TF1 checkpoint of CONFIG
    # (tests/fixtures.py, tiny128_encoders, which asserts each exit code is 0).
    checkpoint, printed = exports["prefix"], exports["printed"]
    out = pathlib.Path(exports["out"])
  else:
    checkpoint = _write_checkpoint(fmt, tmp_path / fmt)
    out = tmp_path / "out"
    for version in (1, 2, 3):
      assert cli.main(["encoder", "--checkpoint", checkpoint, "--output", str(out),
                       "--version", str(version), "--lower-case"]) == 0
    printed = capsys.readouterr().out
  assert printed.count("[done]") == 3
  inputs = sample_inputs(CONFIG, batch=2, seq_length=9)
  want = load_encoder(checkpoint, CONFIG)(inputs, training=False)
  for version in (1, 2, 3):
    path = str(out / str(version))
    assert {"assets", "variables", "saved_model.pb", metadata.PAGE_FILE,
            metadata.METADATA_FILE} <= set(os.listdir(path))
    got = _layer_call(hub.KerasLayer(path), version, inputs, False)
    for key in ("pooled_output", "sequence_output"):
      assert np.max(np.abs(got[key] - want[key])) <= VERIFY_TOLERANCE
    with open(os.path.join(path, metadata.METADATA_FILE), encoding="utf-8") as f:
      meta = json.load(f)
    assert meta["version"] == version and meta["checkpoint"]["format"] == fmt
    assert meta["handle"] == f"bert-hub/bert_en_uncased_L-2_H-16_A-4/{version}"
    for entry in meta["checkpoint"]["files"]:
      with open(entry["path"], "rb") as f:
        assert entry["sha256"] == hashlib.sha256(f.read()).hexdigest()
