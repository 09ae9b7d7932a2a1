"""The BERT encoder: tf-models' network with the TF Hub input and output names.

Built on tf-models-official's `networks.BertEncoderV2` (the network behind the TF
Hub BERT encoders) and, for `with_mlm`, its `layers.MaskedLM` head; no transformer
math is written here. How tf-models' layers run changes twice, same products: the
feed-forward projections (tf_keras EinsumDense) compute as 2-D MatMuls, fused with
the bias add and the activation (bert_hub/projections.py).

The Encoder (`build_encoder`, `load_encoder`; a value holding tf-models'
network, the tf_keras model on it, the optional MLM model, the config and the
checkpoint it came from), called with B=batch, S=seq_length:
  inputs (dict):
    input_word_ids   int32 [B, S]  token ids, [CLS] ... [SEP] ... [SEP] then padding
    input_mask       int32 [B, S]  1 for real tokens, 0 for padding
    input_type_ids   int32 [B, S]  segment of each token: 0, 1, ...
  outputs (dict):
    pooled_output    float32 [B, H]     tanh(dense(sequence_output[:, 0]))
    sequence_output  float32 [B, S, H]  the last layer's output
    encoder_outputs  list of L float32 [B, S, H]; the last equals sequence_output
    default          float32 [B, H]     = pooled_output (the common text-embedding name)

MLM model (`with_mlm=True`): the same inputs plus
    masked_lm_positions  int32 [B, P]  positions to predict
  and the same outputs plus
    mlm_logits       float32 [B, P, V]  logits over the vocabulary

Out-of-range inputs (the same in the Python model and every exported SavedModel;
bert-hub adds no checks to the graph, they would cost every call; validate ids
upstream: the preprocessing model only emits ids from its vocab):
  * word ids outside [0, vocab_size): TensorFlow's gather raises
    InvalidArgumentError on CPU ("indices[i,j] = 70 is not in [0, 70)") but
    returns a zero embedding on GPU.
  * type ids outside [0, type_vocab_size): no error on any device; the type
    embedding is a one-hot matmul (tf-models' OnDeviceEmbedding, use_one_hot),
    so such a position gets a zero type embedding.
  * more than max_position_embeddings positions: an error (InvalidArgumentError,
    or ValueError when the length is known while tracing).
"""
import dataclasses
import logging
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

from bert_hub import _keras  # noqa: F401
from bert_hub import projections
from bert_hub._tf_private import uninitialized_variables, without_autograph
from bert_hub.checkpoints import Weights, names, read_weights, resolve
from bert_hub.config import BertConfig, load_config
from bert_hub.errors import BertHubError

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order
import tf_keras  # pylint: disable=g-import-not-at-top,wrong-import-order

log = logging.getLogger("bert_hub")

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
NETWORK_NAME = "bert_encoder"
MLM_NAME = names.MLM_SCOPE


def build_network(config: BertConfig):
  """tf-models' BertEncoderV2 for `config`, randomly initialised, not yet built."""
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  return networks.BertEncoderV2(
      vocab_size=config.vocab_size,
      hidden_size=config.hidden_size,
      num_layers=config.num_layers,
      num_attention_heads=config.num_heads,
      inner_dim=config.intermediate_size,
      inner_activation=config.activation_fn(),
      output_dropout=config.hidden_dropout,
      attention_dropout=config.attention_dropout,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      initializer=tf_keras.initializers.TruncatedNormal(
          stddev=config.initializer_range),
      name=NETWORK_NAME)


def encoder_inputs(seq_length: Optional[int] = None) -> Dict[str, tf.Tensor]:
  return {name: tf_keras.layers.Input(shape=(seq_length,), dtype=tf.int32, name=name)
          for name in INPUT_NAMES}


def _called_network(config: BertConfig):
  """build_network(config) called on encoder_inputs(): (network, inputs, outputs).

  The call builds the layers; from the next call on (every call of the Keras model
  on these inputs and outputs) they run as bert_hub/projections.py makes them."""
  network = build_network(config)
  inputs = encoder_inputs()
  outputs = dict(network(inputs))
  if not projections.use_matmul_projections(network):
    raise RuntimeError("internal error: no EinsumDense projections found in the network")
  projections.activation_in_projection(network)
  return network, inputs, outputs


@dataclasses.dataclass(eq=False)
class Encoder:
  """A BERT encoder built from tf-models' layers, and what it was built from.

  config:   the BertConfig.
  network:  tf-models' BertEncoderV2 (a tf_keras layer), built; its feed-forward
            projections compute as 2-D MatMuls (use_matmul_projections).
  model:    tf_keras.Model on the network: the dict inputs and outputs of the
            module docstring (+ `default`).
  mlm:      with_mlm: tf_keras.Model with masked_lm_positions -> + mlm_logits;
            else None.
  mlm_head: with_mlm: tf-models' MaskedLM layer (shares the word embeddings).
  source:   the checkpoint read (checkpoints.Weights without arrays), or None.
  bfloat16_weights: bfloat16_twin only: the bfloat16 copies of the projections'
            weights it reads (its other variables are its float32 encoder's);
            a saved object that calls the twin tracks them.

  Calling the Encoder calls `model`: encoder(inputs, training=False) -> dict.
  """
  config: BertConfig
  network: Any
  model: Any
  mlm: Optional[Any] = None
  mlm_head: Optional[Any] = None
  source: Optional[Weights] = None
  bfloat16_weights: Tuple[tf.Variable, ...] = ()

  def __call__(self, inputs, training=False):
    return self.model(inputs, training=training)

  @property
  def has_pooler(self) -> bool:
    """False if the checkpoint had no pooler weights: pooled_output (and
    `default`) are then meaningless (the pooler's variables hold zeros, see
    assign_weights); only sequence_output and encoder_outputs may be used."""
    return self.source is None or self.source.has_pooler

  @property
  def variables(self):
    """The encoder's variables (without the MLM head's own)."""
    return self.model.variables

  @property
  def trainable_variables(self):
    return self.model.trainable_variables


def build_encoder(config: BertConfig, *, with_mlm: bool = False,
                  random_init: bool = True) -> Encoder:
  """The Encoder for `config` (see the module docstring); with_mlm adds `.mlm`.

  random_init=False leaves every weight without a value (no initializer, no
  memory) for callers that assign them all next (`assign_weights`, as
  `load_encoder` and the exporter do): it saves seconds and the memory of a
  second copy of the weights.
  """
  if not random_init:
    with uninitialized_variables(), without_autograph():
      return build_encoder(config, with_mlm=with_mlm)
  network, inputs, outputs = _called_network(config)
  outputs["default"] = outputs["pooled_output"]
  model = tf_keras.Model(inputs=inputs, outputs=outputs, name="bert_encoder_model")
  if not with_mlm:
    return Encoder(config=config, network=network, model=model)
  from official.nlp.modeling import layers  # pylint: disable=g-import-not-at-top
  head = layers.MaskedLM(embedding_table=network.get_embedding_table(),
                         activation=config.activation_fn(),
                         initializer=tf_keras.initializers.TruncatedNormal(
                             stddev=config.initializer_range),
                         name=MLM_NAME)
  mlm_inputs = dict(encoder_inputs(), masked_lm_positions=tf_keras.layers.Input(
      shape=(None,), dtype=tf.int32, name="masked_lm_positions"))
  mlm_outputs = dict(network({k: mlm_inputs[k] for k in INPUT_NAMES}))
  mlm_outputs["mlm_logits"] = head(mlm_outputs["sequence_output"],
                                   masked_positions=mlm_inputs["masked_lm_positions"])
  mlm = tf_keras.Model(inputs=mlm_inputs, outputs=mlm_outputs, name="bert_mlm")
  return Encoder(config=config, network=network, model=model, mlm=mlm, mlm_head=head)


# The weights the twin's bfloat16 matrix products read (attention, feed-forward
# and pooler projections), by the end of their canonical name.
_PROJECTION_WEIGHTS = ("/kernel", "/bias")


def bfloat16_twin(encoder: Encoder) -> Encoder:
  """`encoder` computing in bfloat16, its weights taken from `encoder`.

  tf-models' BertEncoderV2 built under tf_keras' "mixed_bfloat16" policy:
  matmuls, einsums and activations run in bfloat16 (fast on CPUs with
  AVX512-BF16 or AMX; the activation inside its projection, see
  activation_in_projection). The projections' kernels and biases are bfloat16
  copies of `encoder`'s, made here (`twin.bfloat16_weights`, not trainable):
  read as they are, where mixed precision would convert the float32 ones on
  every call, and in a text servable on every chunk of the by-length loop
  (MiniLM, batches of 32 short sentences: 1.03x; one sentence: 1.2x; the
  SavedModel grows by their size, 92 -> 113 MiB). The rest (embedding tables,
  layer norms) are `encoder`'s own float32 variables, shared. Same inputs and
  output names; outputs are bfloat16. For serving, not training; build it
  after `encoder`'s weights are assigned.
  """
  ours = canonical_variables(encoder)
  shared, copies = set(), []

  def share(next_creator, **kwargs):
    name = kwargs.get("name")
    if not callable(kwargs.get("initial_value")) or not name:
      return next_creator(**kwargs)  # not a weight (e.g. Keras' step counters)
    scope = tf.get_current_name_scope()
    canonical = names.canonical_name(f"{scope}/{name}" if scope else name)
    var = ours.get(canonical)
    if var is None or tuple(var.shape) != tuple(kwargs.get("shape") or ()):
      raise RuntimeError(f"internal error: bfloat16 encoder weight {canonical} "
                         f"{kwargs.get('shape')} has no float32 twin")
    shared.add(canonical)
    if canonical.endswith(_PROJECTION_WEIGHTS):
      copies.append(tf.Variable(tf.cast(var, tf.bfloat16), trainable=False,
                                name=f"{name}_bfloat16"))
      return copies[-1]
    return var

  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    with tf.variable_creator_scope(share), without_autograph():
      network, inputs, outputs = _called_network(encoder.config)
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)
  unshared = sorted(set(k for k in ours if not k.startswith(MLM_NAME)) - shared)
  if unshared:
    raise RuntimeError(f"internal error: bfloat16 encoder lacks {unshared}")
  outputs["default"] = outputs["pooled_output"]
  model = tf_keras.Model(inputs=inputs, outputs=outputs, name="bert_encoder_bfloat16")
  return Encoder(config=encoder.config, network=network, model=model,
                 source=encoder.source, bfloat16_weights=tuple(copies))


def canonical_variables(encoder: Encoder) -> Dict[str, tf.Variable]:
  """The encoder's variables by canonical name (see checkpoints/names.py)."""
  out = {names.canonical_name(v.name): v for v in encoder.network.variables}
  if encoder.mlm_head is not None:  # shares the word embeddings with the network
    out.update({names.canonical_name(v.name): v for v in encoder.mlm_head.variables})
  return out


def assign_weights(encoder: Encoder, weights: Weights) -> None:
  """Assigns every canonical weight; the readers already checked names and shapes.

  Consumes `weights.arrays` (each array is dropped once assigned), so that the
  weights are held about once, not twice, while they move into the model.
  Records where they came from in `encoder.source`.

  A checkpoint without pooler weights (weights.has_pooler False): tf-models'
  network still has the pooler's dense layer, whose variables get zeros (a
  saved variable needs a value), so pooled_output is tanh(0) = 0 for every
  input. It is never served as an embedding: `Encoder.has_pooler` is False and
  the exports that would serve pooled_output refuse such an encoder.
  """
  variables = canonical_variables(encoder)
  if not weights.has_pooler:
    for w in names.POOLER:
      weights.arrays.setdefault(
          w.canonical, np.zeros(variables[w.canonical].shape, np.float32))
  missing = sorted(set(variables) - set(weights.arrays))
  extra = sorted(set(weights.arrays) - set(variables))
  if missing or extra:  # the name table and the network disagree: our bug
    raise RuntimeError(f"internal error: name table out of date; network has "
                       f"unmapped {missing}, table has unknown {extra}")
  for name, var in variables.items():
    var.assign(weights.arrays.pop(name))
  models = [encoder.model] + ([encoder.mlm] if encoder.mlm is not None else [])
  unset = sorted({v.name for m in models for v in m.variables if not v.is_initialized()})
  if unset:  # build_encoder(random_init=False) left a variable the table does not name
    raise RuntimeError(f"internal error: variables without a value: {unset}")
  encoder.source = dataclasses.replace(weights, arrays={})


def find_config(checkpoint: str, checkpoint_format: Optional[str] = None) -> str:
  """The config beside a checkpoint: config.json (HF) or bert_config.json (TF)."""
  fmt, path, _ = resolve(checkpoint, checkpoint_format)
  folder = os.path.dirname(path) if not os.path.isdir(path) else path
  candidates = (["config.json"] if fmt in ("hf", "hf_h5")
                else ["bert_config.json", "config.json"])
  for name in candidates:
    if os.path.isfile(os.path.join(folder, name)):
      found = os.path.join(folder, name)
      log.info("using the config beside the checkpoint: %s", found)
      return found
  raise BertHubError(
      "config needed", expected=f"--config, or {' or '.join(candidates)} beside "
      "the checkpoint", received=f"none in {folder or '.'}",
      fix="pass --config PATH (bert_config.json, config.json or encoder YAML)")


def load_encoder(checkpoint: str, config=None, *,
                 checkpoint_format: Optional[str] = None,
                 with_mlm: bool = False) -> Encoder:
  """Builds the encoder for a checkpoint and loads its weights strictly.

  Args:
    checkpoint: a TF1 or TF2 checkpoint prefix, a Hugging Face model directory
      or a `.safetensors` file.
    config: a config path or `BertConfig`; optional when the checkpoint's folder
      holds config.json (Hugging Face) or bert_config.json.
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    with_mlm: also load the masked-LM head into `model.mlm`.

  Returns:
    The Encoder (see module docstring): call it on the dict inputs; `.model`
    is the tf_keras model, `.source` the checkpoint read.
  """
  if config is None:
    config = find_config(checkpoint, checkpoint_format)
  if not isinstance(config, BertConfig):
    config = load_config(config)
  weights = read_weights(checkpoint, config, checkpoint_format=checkpoint_format,
                         with_mlm=with_mlm)
  encoder = build_encoder(config, with_mlm=with_mlm, random_init=False)
  assign_weights(encoder, weights)
  return encoder


def sample_inputs(config: BertConfig, *, batch: int = 2, seq_length: int = 16,
                  seed: int = 0) -> Dict[str, np.ndarray]:
  """A deterministic padded batch of valid ids, for verification."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, config.vocab_size, size=(batch, seq_length), dtype=np.int32)
  mask = np.ones((batch, seq_length), np.int32)
  types = np.zeros((batch, seq_length), np.int32)
  for b in range(batch):
    length = seq_length - (b * seq_length) // (2 * batch)  # later rows padded more
    mask[b, length:] = 0
    ids[b, length:] = 0
    if config.type_vocab_size > 1:
      types[b, length // 2:length] = 1
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)
