"""bert_hub/projections.py: the encoder's projections as fusable MatMuls, same
products as tf-models' EinsumDense layers (outputs compared with the network
as tf-models builds it)."""
import dataclasses

import numpy as np
import pytest

from bert_hub import projections
from bert_hub.encoder import build_encoder, build_network, sample_inputs
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order

# Grappler on (tests/conftest.py): these projections exist to be fused by it.
pytestmark = pytest.mark.optimized_graphs

# The same math in the same framework; only op order may differ.
TF_TOLERANCE = 1e-5


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
  layer = tf_keras.layers.EinsumDense(equation, output_shape=out, bias_axes=bias_axes,
                                      activation="tanh", bias_initializer="random_normal")
  x = tf.constant(np.random.default_rng(0).normal(size=x_shape), tf.float32)
  want = layer(x).numpy()
  wrapper = tf.Module()
  wrapper.layer = layer
  assert projections.use_matmul_projections(wrapper) == int(switched)
  graph = tf.function(layer).get_concrete_function(
      tf.TensorSpec([None] * (len(x_shape) - 1) + [x_shape[-1]], tf.float32)).graph
  ops = [op.type for op in graph.get_operations()]
  assert ("MatMul" in ops and "Einsum" not in ops) == switched, ops
  got = layer(x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got.numpy(), want, atol=1e-6, rtol=1e-6)


def test_only_matrix_product_equations_are_recognised():
  from bert_hub.projections import matrix_product_letters
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
  """projections.activation_in_projection: the activation's ops follow the
  intermediate MatMul + BiasAdd directly (fusable), the outputs stay tf-models'
  network's as it is (an unpatched twin with the same weights)."""
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


def test_this_module_runs_with_grappler(graph_optimization):
  assert graph_optimization
  assert not tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer")
