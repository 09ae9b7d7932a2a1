"""TF Model Garden (TF2, object-based) checkpoints, read through tf-models' own networks.

A TF2 checkpoint stores each variable under its object path, e.g.
`encoder/_transformer_layers/0/_attention_layer/_query_dense/kernel/.ATTRIBUTES/
VARIABLE_VALUE` for `BertEncoderV2`, or `encoder/layer_with_weights-4/...` for the
legacy functional `BertEncoder` (what `export_tfhub_lib` and the TF1 converter
build). Rather than a table of those paths, we build the tf-models network the
checkpoint was saved from (detected from its keys), ask TensorFlow which key each
of its variables has, compare every key and shape with the checkpoint (listing
all problems at once), then read the tensors: no restore, no side effects.

Roots: `encoder=` (current) and `model=` (legacy) for the encoder; a
`BertPretrainerV2` checkpoint also has `masked_lm=` (the MLM head).
"""
from typing import Dict

import numpy as np

from bert_hub._tf_private import (checkpoint_keys, uninitialized_variables,
                                  without_autograph)
from bert_hub.checkpoints import names
from bert_hub.checkpoints.common import (check_config_agrees, open_tf_checkpoint,
                                         read_tf_tensor)
from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError, CheckpointMismatchError

_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def read(prefix: str, config: BertConfig, *, with_mlm: bool) -> Dict[str, np.ndarray]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import layers, networks  # pylint: disable=g-import-not-at-top

  reader = open_tf_checkpoint(prefix)
  shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()
            if k.endswith(_VALUE) and ".OPTIMIZER_SLOT" not in k}
  root = next((r for r in ("encoder", "model")
               if any(k.startswith(r + "/") for k in shapes)), None)
  if root is None:
    raise BertHubError(
        f"no encoder in TF2 checkpoint {prefix}",
        expected="variables under encoder/ (or model/ in legacy checkpoints)",
        received="roots " + ", ".join(sorted({k.split("/")[0] for k in shapes})),
        fix="save the checkpoint with tf.train.Checkpoint(encoder=bert_encoder)")
  legacy = any(k.startswith(root + "/layer_with_weights-") for k in shapes)
  layer_ids = {k.split("/")[2] for k in shapes
               if k.startswith(root + "/_transformer_layers/")}
  if legacy:
    layer_ids = {k.split("/")[1] for k in shapes if "/_attention_layer/" in k
                 and k.startswith(root + "/")}
  check_config_agrees(config, prefix, layers=layer_ids, word_embeddings=None)

  kwargs = dict(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      num_layers=config.num_layers, num_attention_heads=config.num_heads,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      inner_activation=config.activation_fn())
  # The network only names the keys: its variables get no values (no memory, no
  # random initialization) and it is built symbolically, on Keras inputs.
  with uninitialized_variables(), without_autograph():
    if legacy:
      kwargs["intermediate_size"] = config.intermediate_size
      net = networks.BertEncoder(dict_outputs=True, **{
          ("activation" if k == "inner_activation" else k): v for k, v in kwargs.items()})
    else:
      net = networks.BertEncoderV2(inner_dim=config.intermediate_size, **kwargs)
    inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name)
              for name in ("input_word_ids", "input_mask", "input_type_ids")}
    if not net.built:  # the legacy BertEncoder is functional: built already
      net(inputs)
    items = {root: net}
    if with_mlm:
      mlm = layers.MaskedLM(embedding_table=net.get_embedding_table(),
                            activation=config.activation_fn(), name="cls/predictions")
      mlm(net(inputs)["sequence_output"], masked_positions=tf_keras.Input(
          shape=(None,), dtype=tf.int32, name="masked_lm_positions"))
      items["masked_lm"] = mlm

  # Which checkpoint key each variable of the network has.
  root_object = tf.train.Checkpoint(**items)  # the view holds only a weakref
  keys = checkpoint_keys(root_object)
  expected = {}
  for obj in items.values():
    for v in obj.variables:
      key = keys[id(v)] + _VALUE
      expected[key] = (names.canonical_name(v.name), tuple(v.shape))

  ours = [k for k in shapes if k.startswith(root + "/") or
          (with_mlm and k.startswith("masked_lm/"))]
  missing = sorted(k for k in expected if k not in shapes)
  unused = sorted(k for k in ours if k not in expected)
  mismatched = sorted((k, shape, shapes[k]) for k, (_, shape) in expected.items()
                      if k in shapes and shapes[k] != shape)
  if missing or unused or mismatched:
    raise CheckpointMismatchError(
        prefix, missing=missing, unused=unused, mismatched=mismatched,
        fix="pass the config that belongs to this checkpoint (and --with-mlm "
        "only if it holds a masked_lm head)")
  return {canonical: np.asarray(read_tf_tensor(reader, key, prefix), np.float32)
          for key, (canonical, _) in expected.items()}
