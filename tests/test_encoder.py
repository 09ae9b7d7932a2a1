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


# -- feed-forward projections as MatMul (encoder.use_matmul_projections) ---------
@pytest.mark.parametrize("equation,out,bias_axes,x_shape,switched", [
    ("abc,cd->abd", (None, 12), "d", (3, 5, 8), True),         # feed-forward
    ("abc,cd->abd", (None, 12), None, (3, 5, 8), True),        # no bias
    ("abcd,de->abce", (None, None, 6), "e", (2, 3, 4, 8), True),
    ("abc,cd->abd", (5, 12), "b", (3, 5, 8), False),           # bias over another axis
    ("abc,cde->abde", (None, 4, 3), "de", (3, 5, 8), False),   # query, key, value
    ("abcd,cde->abe", (None, 8), "e", (3, 5, 4, 2), False),    # attention output
])
def test_feed_forward_projections_as_matmul_equal_einsum(equation, out, bias_axes,
                                                         x_shape, switched):
  import tf_keras
  from bert_hub import encoder
  layer = tf_keras.layers.EinsumDense(equation, output_shape=out, bias_axes=bias_axes,
                                      activation="tanh", bias_initializer="random_normal")
  x = tf.constant(np.random.default_rng(0).normal(size=x_shape), tf.float32)
  want = layer(x).numpy()
  wrapper = tf.Module()
  wrapper.layer = layer
  assert encoder.use_matmul_projections(wrapper) == int(switched)
  graph = tf.function(layer).get_concrete_function(
      tf.TensorSpec([None] * (len(x_shape) - 1) + [x_shape[-1]], tf.float32)).graph
  ops = [op.type for op in graph.get_operations()]
  assert ("MatMul" in ops and "Einsum" not in ops) == switched, ops
  got = layer(x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got.numpy(), want, atol=1e-6, rtol=1e-6)


def test_only_matrix_product_equations_are_recognised():
  from bert_hub.encoder import matrix_product_letters
  assert matrix_product_letters("abc,cd->abd") == ("ab", "c", "d")
  assert matrix_product_letters("abcd,cde->abe") == ("ab", "cd", "e")
  for equation in ("abc,dc->abd", "abc,cd->adb", "...b,bc->...c", "abc,bcd->abd",
                   "ab,ab->a", "abc,cd,de->abe"):
    assert matrix_product_letters(equation) is None, equation


def test_encoder_feed_forward_is_matmul_and_keeps_static_shapes():
  cfg = fixtures.tiny_config()
  model = build_encoder(cfg)
  specs = {n: tf.TensorSpec([None, 7], tf.int32) for n in
           ("input_word_ids", "input_mask", "input_type_ids")}
  fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs)
  ops = fn.graph.get_operations()
  # Per layer: the 2 feed-forward MatMuls; query, key, value, attention output
  # and attention's two batched products stay Einsum.
  assert [op.type for op in ops].count("Einsum") == 6 * cfg.num_layers
  for dense in ("intermediate", "output"):
    matmuls = [op.name for op in ops
               if op.type == "MatMul" and f"/{dense}/" in op.name and "layer_" in op.name]
    assert len(matmuls) == cfg.num_layers, (dense, matmuls)
  seq = fn.structured_outputs["sequence_output"]
  assert seq.shape.as_list() == [None, 7, cfg.hidden_size]


def _graph_ops(model, cfg):
  specs = {n: tf.TensorSpec([None, None], tf.int32) for n in
           ("input_word_ids", "input_mask", "input_type_ids")}
  fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs)
  return fn.graph.get_operations()


@pytest.mark.parametrize("activation,op_type", [
    ("gelu_erf", "Erfc"), ("gelu_tanh", "Tanh"), ("relu", "Relu")])
def test_feed_forward_activation_runs_in_its_projection_same_outputs(activation, op_type):
  """encoder.activation_in_projection: the activation's ops follow the
  intermediate MatMul + BiasAdd directly (fusable), the outputs stay tf-models'
  network's as it is (an unpatched twin with the same weights)."""
  import dataclasses
  from bert_hub.encoder import build_network
  cfg = dataclasses.replace(fixtures.tiny_config(), activation=activation)
  model = build_encoder(cfg)
  inner = [op for op in _graph_ops(model, cfg) if op.type == op_type and "layer_" in op.name]
  assert len(inner) == cfg.num_layers and all("/intermediate/" in op.name for op in inner), [
      op.name for op in inner]
  inputs = sample_inputs(cfg, batch=3, seq_length=9)
  reference = build_network(cfg)
  reference(inputs)  # built, never patched
  reference.set_weights(model.network.get_weights())
  want = reference(inputs, training=False)
  got = model(inputs, training=False)
  for name in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), atol=TF_TOLERANCE)


def test_bfloat16_twin_keeps_its_float32_activation_layer():
  """Under mixed bfloat16 tf-models computes the activation in float32: left so."""
  from bert_hub.encoder import bfloat16_twin
  cfg = fixtures.tiny_config()  # gelu_tanh
  twin = bfloat16_twin(build_encoder(cfg))
  tanh = [op for op in _graph_ops(twin, cfg) if op.type == "Tanh" and "layer_" in op.name]
  assert len(tanh) == cfg.num_layers
  assert not any("/intermediate/" in op.name for op in tanh), [op.name for op in tanh]
  assert all(op.outputs[0].dtype == tf.float32 for op in tanh)
