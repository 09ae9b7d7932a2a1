"""How the encoder's projections compute: same products, faster kernels.

tf-models' layers compute every projection as a tf_keras EinsumDense. Two
changes, applied to a built network by bert_hub/encoder.py, make TensorFlow's
graph rewrites (grappler, oneDNN) fuse more:
  use_matmul_projections    the feed-forward projections as 2-D MatMuls, so the
                            bias add fuses into the product
  activation_in_projection  the feed-forward activation inside its projection,
                            so it fuses too
Measured in benchmarks/README.md; tested in tests/test_projections.py (outputs
equal to the network as tf-models builds it).
"""
from typing import Optional, Tuple

from bert_hub import _keras  # noqa: F401
from bert_hub._tf_private import replace_layer_call

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order
import tf_keras  # pylint: disable=g-import-not-at-top,wrong-import-order


def matrix_product_letters(equation: str) -> Optional[Tuple[str, str, str]]:
  """(lead, contracted, out) if an EinsumDense equation is one matrix product.

  That is: input = lead + contracted, kernel = contracted + out, output =
  lead + out, as in all of BERT's projections: "abc,cd->abd" (feed-forward),
  "abc,cde->abde" (query, key, value), "abcd,cde->abe" (attention output).
  None for any other equation.
  """
  if "." in equation or equation.count(",") != 1 or equation.count("->") != 1:
    return None
  operands, output = equation.split("->")
  x, kernel = operands.split(",")
  contracted = "".join(ch for ch in x if ch in kernel and ch not in output)
  lead, out = x[:len(x) - len(contracted)], kernel[len(contracted):]
  letters = lead + contracted + out
  if (not contracted or len(set(letters)) != len(letters) or x != lead + contracted
      or kernel != contracted + out or output != lead + out):
    return None
  return lead, contracted, out


def _einsum_dense_as_matmul(layer, inputs):
  """tf_keras EinsumDense.call for "...c,cd->...d" (a 2-D kernel), as a 2-D MatMul.

  The same product as `einsum(equation, inputs, kernel) + bias` on the inputs
  flattened to rows. TensorFlow runs an Einsum as oneDNN's einsum and then a
  separate bias addition; a 2-D MatMul followed by BiasAdd is fused by grappler
  into one oneDNN kernel (_MklNativeFusedMatMul).
  """
  k, n = layer.kernel.shape  # one contracted axis: the inputs' last
  y = tf.matmul(tf.reshape(inputs, [-1, k]), layer.kernel)  # [prod(lead dims), n]
  if layer.bias is not None:
    y = tf.nn.bias_add(y, layer.bias)
  if layer.activation is not None:
    y = layer.activation(y)
  # [lead dims..., n]
  y = tf.reshape(y, tf.concat([tf.shape(inputs)[:-1], [n]], axis=0))
  y.set_shape(inputs.shape[:-1].concatenate([n]))
  return y


def use_matmul_projections(network) -> int:
  """Makes the feed-forward projections of `network` compute as 2-D MatMuls.

  Every EinsumDense whose equation is a matrix product with a 2-D kernel (and
  a bias over its output axis, if any): in BERT, the two feed-forward layers
  ("abc,cd->abd"), two thirds of the encoder's FLOPs. Measured on BERT-base
  (benchmarks/README.md): about 3% faster float32 inference at batch 32. The
  attention projections ([H, A, H/A] kernels) stay Einsum: as MatMuls they cost
  export time and size (MiniLM encoder: +1 s, +20% saved_model.pb) for no
  measurable gain (2026-12-01). Returns how many layers were switched.
  """
  switched = 0
  for layer in network.submodules:
    if not isinstance(layer, tf_keras.layers.EinsumDense):
      continue
    letters = matrix_product_letters(layer.equation)
    if letters is None or len(letters[1]) != 1 or len(letters[2]) != 1:
      continue  # not a 2-D kernel
    if layer.bias is not None and layer.bias_axes != letters[2]:
      continue  # a bias over other axes than the output's
    replace_layer_call(layer, _einsum_dense_as_matmul)
    switched += 1
  return switched


def activation_in_projection(network) -> int:
  """Runs each transformer block's feed-forward activation inside its projection:
  tf-models applies it as an Activation layer after the "intermediate"
  EinsumDense (MatMul, BiasAdd, Reshape, then gelu's ops: not fusable); as the
  EinsumDense's own activation (the Activation layer linear: same function)
  grappler fuses MatMul + BiasAdd + gelu (erf, tanh; relu...) into one oneDNN
  kernel.

  Under mixed bfloat16 too (bfloat16_twin), where tf-models gives the
  Activation layer a float32 policy: oneDNN's fused kernel applies the
  activation to the projection's float32 accumulator before rounding its
  output to bfloat16, so moved, the twin is faster and no less exact (MiniLM,
  the benchmark's 320 short sentences, 2026-12-02: min cosine to float32
  0.99995 against 0.99994, 1.15-1.2x at batch 32; without oneDNN,
  TF_ENABLE_ONEDNN_OPTS=0, bfloat16 is about 0.999 either way)."""
  linear, changed = tf_keras.activations.linear, 0
  for block in getattr(network, "transformer_layers", []):
    dense = [l for l in block.submodules if isinstance(l, tf_keras.layers.EinsumDense)
             and l.name == "intermediate" and l.activation is linear]
    act = [l for l in block.submodules if isinstance(l, tf_keras.layers.Activation)]
    if len(dense) == len(act) == 1:
      dense[0].activation, act[0].activation = act[0].activation, linear
      changed += 1
  return changed
