"""The encoder from each checkpoint format, against independent references."""
import json
import os
import shutil

import numpy as np
import pytest

import bert_hub
from bert_hub import checkpoints
from bert_hub.checkpoints import names
from bert_hub.encoder import build_encoder, canonical_variables, load_encoder, sample_inputs
from bert_hub.errors import BertHubError, CheckpointMismatchError
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order

# Float32 through two frameworks' kernels: measured about 4e-6 on MiniLM.
HF_TOLERANCE = 1e-4
# The same math in the same framework; only op order may differ.
TF_TOLERANCE = 1e-5


def _outputs(model, inputs):
  out = model(inputs, training=False)
  return {k: (v.numpy() if k != "encoder_outputs" else [t.numpy() for t in v])
          for k, v in out.items()}


def _max_diff_masked(a, b, mask):
  return float(np.max(np.abs(a - b) * mask[..., None]))


@pytest.mark.slow
def test_minilm_matches_hugging_face_on_real_sentence_pairs():
  model_dir = fixtures.minilm_dir()
  encoded = fixtures.hf_encode_pairs(model_dir)
  assert encoded["input_mask"].min() == 0, "the batch must be padded"
  assert encoded["input_type_ids"].max() == 1, "the batch must have two segments"
  ours = _outputs(load_encoder(model_dir), encoded)
  ref = fixtures.hf_reference(model_dir, encoded)
  mask = encoded["input_mask"]
  assert _max_diff_masked(ours["sequence_output"], ref["sequence_output"], mask) < HF_TOLERANCE
  assert np.max(np.abs(ours["pooled_output"] - ref["pooled_output"])) < HF_TOLERANCE
  assert len(ours["encoder_outputs"]) == 6
  for i in range(6):
    assert _max_diff_masked(ours["encoder_outputs"][i], ref["encoder_outputs"][i],
                            mask) < HF_TOLERANCE, f"layer {i}"
  np.testing.assert_array_equal(ours["encoder_outputs"][-1], ours["sequence_output"])
  np.testing.assert_array_equal(ours["default"], ours["pooled_output"])


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_hugging_face_activations_keep_their_meaning(tmp_path, hidden_act):
  config = fixtures.tiny_config()
  fixtures.write_hf_checkpoint(tmp_path, config, hidden_act=hidden_act, pretraining=False)
  encoded = sample_inputs(config, batch=3, seq_length=12)
  ours = _outputs(load_encoder(str(tmp_path)), encoded)
  ref = fixtures.hf_reference(str(tmp_path), encoded)
  assert _max_diff_masked(ours["sequence_output"], ref["sequence_output"],
                          encoded["input_mask"]) < HF_TOLERANCE
  assert np.max(np.abs(ours["pooled_output"] - ref["pooled_output"])) < HF_TOLERANCE


def test_hf_gelu_is_exact_and_tf1_gelu_is_tanh(tmp_path):
  assert bert_hub.config.from_hf_config(
      dict(fixtures.bert_config_json(fixtures.tiny_config()), model_type="bert",
           hidden_act="gelu")).activation == "gelu_erf"
  assert bert_hub.config.from_bert_config_json(
      fixtures.bert_config_json(fixtures.tiny_config())).activation == "gelu_tanh"


def test_tf1_checkpoint_matches_tf_models_own_conversion(tmp_path):
  from official.legacy.bert import configs
  from official.nlp.tools import export_tfhub_lib
  from official.nlp.tools import tf2_bert_encoder_checkpoint_converter as converter
  config = fixtures.tiny_config()
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "tf1", config)
  legacy_config = configs.BertConfig.from_json_file(str(tmp_path / "tf1/bert_config.json"))
  converted = str(tmp_path / "converted/ckpt")
  converter.convert_checkpoint(legacy_config, converted, prefix, "encoder", "encoder")
  converted = tf.train.latest_checkpoint(str(tmp_path / "converted"))
  reference = export_tfhub_lib.get_bert_encoder(legacy_config)
  tf.train.Checkpoint(encoder=reference).restore(converted).assert_existing_objects_matched()

  ours = load_encoder(prefix, str(tmp_path / "tf1/bert_config.json"))
  encoded = sample_inputs(config, batch=3, seq_length=12)
  want = reference(encoded, training=False)
  got = ours(encoded, training=False)
  for key in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(got[key], want[key], atol=TF_TOLERANCE, rtol=0)
  for a, b in zip(got["encoder_outputs"], want["encoder_outputs"]):
    np.testing.assert_allclose(a, b, atol=TF_TOLERANCE, rtol=0)
  # The converted (legacy BertEncoder, TF2) checkpoint reads to the same weights.
  again = load_encoder(converted, config)
  for name, v in canonical_variables(again).items():
    np.testing.assert_array_equal(v.numpy(), canonical_variables(ours)[name].numpy(), name)


@pytest.mark.parametrize("legacy,root", [(False, "encoder"), (True, "encoder"),
                                         (True, "model")])
def test_tf2_checkpoint_restores_exactly(tmp_path, legacy, root):
  config = fixtures.tiny_config()
  prefix, net = fixtures.write_tf2_checkpoint(tmp_path, config, legacy=legacy, root=root)
  model = load_encoder(prefix)  # bert_config.json beside it
  theirs = {names.canonical_name(v.name): v.numpy() for v in net.variables}
  ours = {names.canonical_name(v.name): v.numpy() for v in model.network.variables}
  assert theirs.keys() == ours.keys()
  for k in theirs:
    np.testing.assert_array_equal(ours[k], theirs[k], k)
  encoded = sample_inputs(config)
  np.testing.assert_array_equal(model(encoded)["sequence_output"],
                                net(encoded)["sequence_output"])


def test_mlm_head_from_each_format_matches(tmp_path):
  config = fixtures.tiny_config()
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "tf1", config)
  tf1 = load_encoder(prefix, with_mlm=True)
  pos = np.array([[1, 2, 3], [0, 4, 5]], np.int32)
  inputs = dict(sample_inputs(config), masked_lm_positions=pos)
  logits = tf1.mlm(inputs)["mlm_logits"].numpy()
  assert logits.shape == (2, 3, config.vocab_size)

  # Hugging Face: transformers' own BertForPreTraining prediction scores.
  import torch
  import transformers
  fixtures.write_hf_checkpoint(tmp_path / "hf", config, hidden_act="gelu_new")
  hf = load_encoder(str(tmp_path / "hf"), with_mlm=True)
  ref = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "hf")).eval()
  with torch.no_grad():
    scores = ref(input_ids=torch.tensor(inputs["input_word_ids"]).long(),
                 attention_mask=torch.tensor(inputs["input_mask"]).long(),
                 token_type_ids=torch.tensor(inputs["input_type_ids"]).long()
                 ).prediction_logits.numpy()
  want = np.take_along_axis(scores, pos[..., None], axis=1)
  got = hf.mlm(inputs)["mlm_logits"].numpy()
  np.testing.assert_allclose(got, want, atol=HF_TOLERANCE, rtol=0)

  # TF2: a BertPretrainerV2 checkpoint of tf-models.
  prefix2, _ = fixtures.write_tf2_checkpoint(tmp_path / "tf2", config, with_mlm=True)
  tf2 = load_encoder(prefix2, with_mlm=True)
  assert tf2.mlm(inputs)["mlm_logits"].shape == (2, 3, config.vocab_size)


# ---------------------------------------------------------------- bad inputs


def _tf1(tmp_path, **kw):
  config = fixtures.tiny_config()
  arrays = fixtures.tf1_arrays(config)
  return config, arrays


def test_missing_unused_and_mis_shaped_are_listed_at_once(tmp_path):
  config, arrays = _tf1(tmp_path)
  del arrays["bert/encoder/layer_1/output/dense/bias"]
  del arrays["bert/pooler/dense/kernel"]
  arrays["bert/encoder/layer_0/attention/self/extra"] = np.zeros(3, np.float32)
  arrays["bert/embeddings/LayerNorm/beta"] = np.zeros(7, np.float32)
  prefix = fixtures.write_tf1_arrays(str(tmp_path / "ckpt"), arrays)
  with pytest.raises(CheckpointMismatchError) as e:
    load_encoder(prefix, config)
  err = e.value
  assert set(err.missing) == {"bert/encoder/layer_1/output/dense/bias",
                              "bert/pooler/dense/kernel"}
  assert err.unused == ["bert/encoder/layer_0/attention/self/extra"]
  assert err.mismatched == [("bert/embeddings/LayerNorm/beta", (16,), (7,))]
  assert "\n" not in str(err) and "fix:" in str(err)


def test_tf2_mismatch_lists_every_problem(tmp_path):
  config = fixtures.tiny_config()
  prefix, _ = fixtures.write_tf2_checkpoint(tmp_path, config)
  with pytest.raises(CheckpointMismatchError) as e:
    load_encoder(prefix, fixtures.tiny_config(intermediate_size=24))
  # intermediate kernel and bias, output kernel, in each of 2 layers
  assert len(e.value.mismatched) == 3 * 2
  assert not e.value.missing and not e.value.unused


@pytest.mark.parametrize("override,needle", [
    (dict(hidden_size=32), "hidden size 16 (config: hidden_size=32)"),
    (dict(num_layers=3), "2 layers (config: num_layers=3)"),
    (dict(vocab_size=99), "vocab size"),
])
def test_config_that_disagrees_with_checkpoint(tmp_path, override, needle):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path, fixtures.tiny_config())
  with pytest.raises(BertHubError, match="disagrees") as e:
    load_encoder(prefix, fixtures.tiny_config(**override))
  assert needle in str(e.value)


def test_hf_config_that_disagrees(tmp_path):
  fixtures.write_hf_checkpoint(tmp_path, fixtures.tiny_config(), pretraining=False)
  with pytest.raises(BertHubError, match="hidden size 16"):
    load_encoder(str(tmp_path), fixtures.tiny_config(hidden_size=32))


def test_non_finite_weights_are_refused(tmp_path):
  config, arrays = _tf1(tmp_path)
  arrays["bert/encoder/layer_0/intermediate/dense/kernel"][0, 0] = np.nan
  prefix = fixtures.write_tf1_arrays(str(tmp_path / "ckpt"), arrays)
  with pytest.raises(BertHubError, match="NaN or Inf in 1: transformer/layer_0/intermediate/kernel"):
    load_encoder(prefix, config)


def test_truncated_data_file(tmp_path):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path, fixtures.tiny_config())
  data = prefix + ".data-00000-of-00001"
  size = os.path.getsize(data)
  with open(data, "r+b") as f:
    f.truncate(size // 2)
  with pytest.raises(BertHubError, match="unreadable checkpoint.*truncated"):
    load_encoder(prefix)


def test_truncated_safetensors(tmp_path):
  fixtures.write_hf_checkpoint(tmp_path, fixtures.tiny_config(), pretraining=False)
  path = tmp_path / "model.safetensors"
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(BertHubError, match="unreadable safetensors"):
    load_encoder(str(tmp_path))


def test_missing_index(tmp_path):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path, fixtures.tiny_config())
  os.remove(prefix + ".index")
  with pytest.raises(BertHubError, match="index missing"):
    load_encoder(prefix, fixtures.tiny_config())


def test_wrong_checkpoint_format(tmp_path):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path, fixtures.tiny_config())
  with pytest.raises(BertHubError, match="which is a tf1 checkpoint.*--checkpoint-format tf1"):
    load_encoder(prefix, checkpoint_format="tf2")


def test_pytorch_bin_is_refused_without_unpickling(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  marker = tmp_path / "pwned"
  # A pickle that would create a file if it were ever loaded.
  import pickle

  class Evil:
    def __reduce__(self):
      return (open, (str(marker), "w"))
  (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
  with pytest.raises(BertHubError, match="pickled checkpoint refused.*safe_serialization"):
    load_encoder(str(tmp_path))
  assert not marker.exists()


def test_unknown_activation_and_bad_sizes():
  with pytest.raises(BertHubError, match="unknown activation.*received 'gelu_newest'"):
    bert_hub.config.from_hf_config(dict(fixtures.bert_config_json(
        fixtures.tiny_config()), model_type="bert", hidden_act="gelu_newest"))
  with pytest.raises(BertHubError, match="divisible"):
    fixtures.tiny_config(hidden_size=18)
  with pytest.raises(BertHubError, match="type_vocab_size=0"):
    fixtures.tiny_config(type_vocab_size=0)


def test_config_files_of_each_kind(tmp_path):
  c = fixtures.tiny_config()
  (tmp_path / "bert_config.json").write_text(json.dumps(fixtures.bert_config_json(c)))
  assert bert_hub.load_config(str(tmp_path / "bert_config.json")).to_dict() == c.to_dict()
  hf = dict(fixtures.bert_config_json(c), model_type="bert", hidden_act="gelu_new")
  (tmp_path / "config.json").write_text(json.dumps(hf))
  assert bert_hub.load_config(str(tmp_path / "config.json")).to_dict() == c.to_dict()
  (tmp_path / "enc.yaml").write_text(
      "encoder:\n  type: bert\n  bert:\n    vocab_size: %d\n    hidden_size: 16\n"
      "    num_layers: 2\n    num_attention_heads: 4\n    intermediate_size: 32\n"
      "    hidden_activation: gelu\n    max_position_embeddings: 64\n"
      "    type_vocab_size: 2\n    dropout_rate: 0.1\n    attention_dropout_rate: 0.1\n"
      % c.vocab_size)
  assert bert_hub.load_config(str(tmp_path / "enc.yaml")).to_dict() == c.to_dict()
  (tmp_path / "broken.json").write_text("{")
  with pytest.raises(BertHubError, match="valid JSON"):
    bert_hub.load_config(str(tmp_path / "broken.json"))
  (tmp_path / "partial.json").write_text(json.dumps({"vocab_size": 3}))
  with pytest.raises(BertHubError, match="no hidden_size, num_hidden_layers"):
    bert_hub.load_config(str(tmp_path / "partial.json"))
  (tmp_path / "typed.json").write_text(json.dumps(
      dict(fixtures.bert_config_json(c), hidden_size="16")))
  with pytest.raises(BertHubError, match="hidden_size='16'"):
    bert_hub.load_config(str(tmp_path / "typed.json"))


def test_importing_bert_hub_selects_legacy_keras():
  assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
  import tf_keras
  assert tf.keras.layers.Dense is tf_keras.layers.Dense


def test_format_detection(tmp_path):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "a", fixtures.tiny_config())
  assert checkpoints.resolve(prefix)[0] == "tf1"
  assert checkpoints.resolve(prefix + ".index")[:2] == ("tf1", prefix)
  assert checkpoints.resolve(str(tmp_path / "a"))[:2] == ("tf1", prefix)
  p2, _ = fixtures.write_tf2_checkpoint(tmp_path / "b", fixtures.tiny_config())
  assert checkpoints.resolve(p2)[0] == "tf2"
  assert checkpoints.resolve(str(tmp_path / "b"))[:2] == ("tf2", p2)
  fixtures.write_hf_checkpoint(tmp_path / "c", fixtures.tiny_config(), pretraining=False)
  assert checkpoints.resolve(str(tmp_path / "c"))[0] == "hf"
  shutil.rmtree(tmp_path / "c")
  with pytest.raises(BertHubError, match="checkpoint not found"):
    checkpoints.resolve(str(tmp_path / "c"))


def test_bfloat16_twin_reads_bfloat16_copies_and_runs_its_activation_in_the_projection():
  """bfloat16_twin: the projections' kernels and biases are bfloat16 copies of the
  encoder's (no per-call cast of a float32 one), the rest is the encoder's own
  variables; the activation runs inside the intermediate projection, in
  bfloat16 (fusable); outputs within bfloat16's precision of float32's."""
  from bert_hub import encoder as encoder_lib
  cfg = fixtures.tiny_config()  # gelu_tanh
  model = build_encoder(cfg)
  twin = encoder_lib.bfloat16_twin(model)
  ours = encoder_lib.canonical_variables(model)
  copies = twin.bfloat16_weights
  projections = sorted(k for k in ours if k.endswith(("/kernel", "/bias")))
  assert len(copies) == len(projections) == 12 * cfg.num_layers + 2  # + the pooler
  by_name = {names.canonical_name(v.name.replace("_bfloat16", "")): v for v in copies}
  assert sorted(by_name) == projections
  for name, copy in by_name.items():
    assert not copy.trainable
    np.testing.assert_array_equal(copy.numpy(), tf.cast(ours[name], tf.bfloat16).numpy())
  float32_handles = {id(v.handle) for v in model.variables}
  copy_handles = {id(v.handle) for v in copies}
  assert all(id(v.handle) in float32_handles | copy_handles for v in twin.variables)
  assert len(model.variables) == len(ours)  # the encoder itself holds no copies

  specs = {n: tf.TensorSpec([None, None], tf.int32) for n in encoder_lib.INPUT_NAMES}
  graph = tf.function(lambda x: twin(x, training=False)).get_concrete_function(specs).graph
  variable_of = {id(v.handle): v for v in twin.variables}
  captured = {inner.name: variable_of.get(id(outer)) for outer, inner in graph.captures}
  read_and_cast = [names.canonical_name(captured[op.inputs[0].op.inputs[0].name].name)
                   for op in graph.get_operations()
                   if op.type == "Cast" and op.inputs[0].op.type == "ReadVariableOp"
                   and captured.get(op.inputs[0].op.inputs[0].name) is not None]
  # Only the type embeddings (a one-hot matmul on the whole float32 table) are
  # read and cast; the old twin cast every projection's kernel and bias too.
  assert read_and_cast == ["type_embeddings/embeddings"], read_and_cast
  tanh = [op for op in graph.get_operations() if op.type == "Tanh" and "layer_" in op.name]
  assert len(tanh) == cfg.num_layers
  assert all("/intermediate/" in op.name for op in tanh), [op.name for op in tanh]
  assert all(op.outputs[0].dtype == tf.bfloat16 for op in tanh)

  inputs = sample_inputs(cfg, batch=3, seq_length=9)
  want = model(inputs, training=False)["sequence_output"].numpy()
  got = tf.cast(twin(inputs, training=False)["sequence_output"], tf.float32).numpy()
  assert 0 < np.max(np.abs(got - want)) < 0.05 * np.max(np.abs(want))
