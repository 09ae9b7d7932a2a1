"""The encoder as a lean, reusable SavedModel object, per interface version.

The object saved is a plain trackable (not the Keras model): it tracks the
encoder's variables and the traced functions of the Reusable SavedModel API
(https://www.tensorflow.org/hub/reusable_saved_models) and nothing else, so
export and load do not serialize every Keras layer:

  obj.__call__(inputs, training=False)   traced for training True and False
  obj.call_training(inputs)  (versions 2 and 3: those with dropout when training)
                      = __call__(inputs, training=True), dropout on: the training
                      endpoint of Keras 3's TFSMLayer (call_training_endpoint=)
  obj.variables, obj.trainable_variables, obj.regularization_losses
  obj.vocab_file      tf.saved_model.Asset: the vocabulary, in assets/
  obj.do_lower_case   tf.Variable(bool, trainable=False)
  obj.mlm             (with_mlm, version 3) the same API with masked_lm_positions
  signatures["serving_default"]   for TF Serving, with meaningful names; it calls
                      `__call__`'s inference graph (saved once, not twice)
  signatures["serving_float32"]   only with serving_precision="bfloat16", which
                      makes serving_default compute in bfloat16 (float32 outputs)

Version 3 (dict API), B=batch, S=seq_length, L layers, V=vocab:
  inputs:  input_word_ids, input_mask, input_type_ids   int32 [B, S]
  outputs: pooled_output float32 [B, H], sequence_output float32 [B, S, H],
           encoder_outputs: list of L float32 [B, S, H], default = pooled_output
  mlm inputs add masked_lm_positions int32 [B, P]; outputs add mlm_logits [B, P, V]
  serving_default outputs: pooled_output, sequence_output, default,
           encoder_outputs_0 ... encoder_outputs_{L-1}
Versions 1 and 2 (list API):
  inputs:  [input_word_ids, input_mask, segment_ids]   int32 [B, S]
  outputs: [pooled_output [B, H], sequence_output [B, S, H]]
  serving_default: inputs input_word_ids, input_mask, segment_ids;
           outputs pooled_output, sequence_output
"""
from typing import Dict

from bert_hub import _keras  # noqa: F401
from bert_hub.encoder import INPUT_NAMES, Encoder, bfloat16_twin
from bert_hub.errors import BertHubError
from export.versions import Version

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

def _spec(name, rank=2, dtype=tf.int32):
  return tf.TensorSpec([None] * rank, dtype, name=name)


# The functions are traced without autograph: tf-models' layers have no
# data-dependent Python control flow, and converting them costs about a second.
# tf.saved_model.save traces every function again inside its save context (the
# function cache key includes the save options), so traces made outside it are
# thrown away, and a signature calling one of them saves that graph twice.
# export/pipeline.py builds every export inside that context, with these options
# (what save() is then called with): save() finds the traces in the cache.
SAVE_OPTIONS = tf.saved_model.SaveOptions()
# The float32 signature beside a bfloat16 serving_default (every kind).
FLOAT32_SIGNATURE = "serving_float32"


def trackable(variables, trainable_variables):
  """A plain object with the Reusable SavedModel attributes for `variables`.

  The one home of the variables/trainable_variables/regularization_losses
  triple that every saved object carries (hub.KerasLayer reads them).
  """
  obj = tf.train.Checkpoint()
  obj.variables = list(variables)
  obj.trainable_variables = list(trainable_variables)
  obj.regularization_losses = []
  return obj


def tracked_bfloat16_twin(model: Encoder, obj) -> Encoder:
  """bert_hub.encoder.bfloat16_twin(model), its bfloat16 copies tracked by `obj`.

  As obj.bfloat16_weights (saved with it), not among obj.variables: those are
  what the float32 object API reads, and only the bfloat16 signatures read the
  copies. Every kind's bfloat16 signatures call a twin made here.
  """
  twin = bfloat16_twin(model)
  obj.bfloat16_weights = list(twin.bfloat16_weights)
  return twin


SERVING_PRECISIONS = ("float32", "bfloat16")


def _serving_function(compute, version: Version, num_layers: int):
  """The serving_default tf.function of `version` over `compute`.

  compute(dict of the three int32 inputs) -> dict(pooled_output, sequence_output,
  encoder_outputs), float32.
  """
  if version.dict_api:
    @tf.function(input_signature=[_spec(n) for n in INPUT_NAMES], autograph=False)
    def serve(input_word_ids, input_mask, input_type_ids):
      out = compute(dict(input_word_ids=input_word_ids, input_mask=input_mask,
                         input_type_ids=input_type_ids))
      named = dict(pooled_output=out["pooled_output"],
                   sequence_output=out["sequence_output"],
                   default=out["pooled_output"])
      for i in range(num_layers):
        named[f"encoder_outputs_{i}"] = out["encoder_outputs"][i]
      return named
  else:
    @tf.function(input_signature=[_spec(n) for n in version.input_names], autograph=False)
    def serve(input_word_ids, input_mask, segment_ids):
      out = compute(dict(input_word_ids=input_word_ids, input_mask=input_mask,
                         input_type_ids=segment_ids))
      return dict(pooled_output=out["pooled_output"],
                  sequence_output=out["sequence_output"])
  return serve


def check_serving_precision(serving_precision: str) -> None:
  """--serving-precision, for every kind that has it; raises BertHubError."""
  if serving_precision not in SERVING_PRECISIONS:
    raise BertHubError(
        "unknown serving precision", expected=" or ".join(SERVING_PRECISIONS),
        received=repr(serving_precision), fix="pass float32 (default) or bfloat16")


def check_encoder_options(*, version: Version, with_mlm: bool,
                          serving_precision: str) -> None:
  """The options an encoder export accepts; raises BertHubError before any work."""
  check_serving_precision(serving_precision)
  if with_mlm and not version.dict_api:
    raise BertHubError(
        "MLM head needs the dict API", expected="--with-mlm with --version 3",
        received=f"--version {version.number}",
        fix="drop --with-mlm, or export version 3")


def encoder_object(model: Encoder, *, version: Version, vocab_file: str,
                   do_lower_case: bool, serving_precision: str = "float32"):
  """The object to save for `model` (a bert_hub.encoder.Encoder) at `version`.

  serving_precision="bfloat16" makes `serving_default` compute in bfloat16
  (bert_hub.encoder.bfloat16_twin: bfloat16 copies of the projections, the rest
  shared; float32 outputs), for
  CPUs with AVX512-BF16 or AMX; the float32 signature stays as
  `serving_float32`. `__call__` (fine-tuning, hub.KerasLayer) is float32 always.
  Made by export/pipeline.py inside tf.saved_model.save's context (see
  SAVE_OPTIONS), so that save() reuses these traces.
  """
  check_encoder_options(version=version, with_mlm=model.mlm is not None,
                        serving_precision=serving_precision)
  num_layers = model.config.num_layers
  hidden = model.config.hidden_size
  dropout = version.dropout_when_training

  def encode(inputs: Dict[str, tf.Tensor], training: bool):
    # v1's defect, kept: dropout is never applied, even when re-training.
    # The network itself, not the Keras model around it: the same layers, and
    # saved_model.pb is 0.3 MB smaller without its name scope on every node.
    return model.network(inputs, training=bool(training and dropout))

  obj = trackable(model.variables, model.trainable_variables)
  if version.dict_api:
    @tf.function(autograph=False)
    def call(inputs, training=False):
      out = encode(inputs, training)
      return dict(pooled_output=out["pooled_output"],
                  sequence_output=out["sequence_output"],
                  encoder_outputs=list(out["encoder_outputs"]),
                  default=out["pooled_output"])
    specs = {name: _spec(name) for name in version.input_names}
  else:
    @tf.function(autograph=False)
    def call(inputs, training=False):
      word_ids, mask, segment_ids = inputs
      out = encode(dict(input_word_ids=word_ids, input_mask=mask,
                        input_type_ids=segment_ids), training)
      sequence_output = out["sequence_output"]
      if not version.static_seq_length:
        # v1 as released: sequence_output's dimension 1 is unknown to callers
        # even for a static max_seq_length (version 2 fixed this).
        sequence_output = tf.compat.v1.placeholder_with_default(
            sequence_output, [None, None, hidden])
      return [out["pooled_output"], sequence_output]
    specs = [_spec(name) for name in version.input_names]
  inference = {training: call.get_concrete_function(specs, training=training)
               for training in (False, True)}[False]
  obj.__call__ = call
  if dropout:
    # Keras 3's TFSMLayer calls an endpoint with the inputs only (no
    # `training`): this one is `__call__(inputs, training=True)`, the graph
    # traced above (called, not saved twice), for call_training_endpoint=.
    @tf.function(autograph=False)
    def call_training(inputs):
      return call(inputs, training=True)
    call_training.get_concrete_function(specs)
    obj.call_training = call_training

  # Legacy attributes, on every version (002's page; v3 "still provides" them).
  obj.vocab_file = tf.saved_model.Asset(vocab_file)
  obj.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

  # The float32 signature calls the traced `__call__` (training=False) rather
  # than the model: one graph in saved_model.pb instead of two, no third trace.
  def float32(inputs):
    if version.dict_api:
      return inference(inputs, training=False)
    pooled_output, sequence_output = inference([inputs[n] for n in INPUT_NAMES],
                                               training=False)
    return dict(pooled_output=pooled_output, sequence_output=sequence_output)

  if serving_precision == "bfloat16":
    twin = tracked_bfloat16_twin(model, obj)

    def bfloat16(inputs):
      out = twin(inputs, training=False)
      return dict(pooled_output=tf.cast(out["pooled_output"], tf.float32),
                  sequence_output=tf.cast(out["sequence_output"], tf.float32),
                  encoder_outputs=[tf.cast(t, tf.float32) for t in out["encoder_outputs"]])
    obj.serving_default = _serving_function(bfloat16, version, num_layers)
    obj.serving_float32 = _serving_function(float32, version, num_layers)
  else:
    obj.serving_default = _serving_function(float32, version, num_layers)

  if model.mlm is not None:
    mlm = trackable(model.mlm.variables, model.mlm.trainable_variables)

    @tf.function(autograph=False)
    def mlm_call(inputs, training=False):
      return dict(model.mlm(inputs, training=bool(training)))
    mlm_specs = dict({n: _spec(n) for n in INPUT_NAMES},
                     masked_lm_positions=_spec("masked_lm_positions"))
    for training in (False, True):
      mlm_call.get_concrete_function(mlm_specs, training=training)
    mlm.__call__ = mlm_call
    obj.mlm = mlm
  return obj


def signatures(obj) -> dict:
  """The SavedModel signatures of an encoder_object."""
  out = {"serving_default": obj.serving_default}
  if hasattr(obj, FLOAT32_SIGNATURE):
    out[FLOAT32_SIGNATURE] = getattr(obj, FLOAT32_SIGNATURE)
  return out
