"""The encoder as a lean, reusable SavedModel object, per interface version.

The object saved is a plain trackable (not the Keras model): it tracks the
encoder's variables and the traced functions of the Reusable SavedModel API
(https://www.tensorflow.org/hub/reusable_saved_models) and nothing else, so
export and load do not serialize every Keras layer:

  obj.__call__(inputs, training=False)   traced for training True and False
  obj.variables, obj.trainable_variables, obj.regularization_losses
  obj.vocab_file      tf.saved_model.Asset: the vocabulary, in assets/
  obj.do_lower_case   tf.Variable(bool, trainable=False)
  obj.mlm             (with_mlm, version 3) the same API with masked_lm_positions
  signatures["serving_default"]   for TF Serving, with meaningful names

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

import numpy as np

from bert_hub import _keras  # noqa: F401
from bert_hub.encoder import INPUT_NAMES, sample_inputs
from bert_hub.errors import BertHubError, ExportVerificationError
from export.versions import Version

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

# Reloading a SavedModel changes nothing but graph rewrites (op fusion, constant
# folding), which move float32 outputs by about 1e-6 per unit of magnitude
# (MiniLM: 5.7e-6); a real mistake (a missing weight, gelu erf vs tanh) moves
# them by 1e-3 or more. 5e-5 is Hugging Face pt_to_tf's bound, between the two.
# It applies to scaled_difference(): float32 rounding grows with the size of
# the values, so an output whose values reach 10 may differ by 10 times more.
VERIFY_TOLERANCE = 5e-5


def scaled_difference(got, want) -> float:
  """max|got - want| / max(1, max|want|): the error relative to the output's scale."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  if got.size == 0 and want.size == 0:
    return 0.0
  return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def _spec(name, rank=2, dtype=tf.int32):
  return tf.TensorSpec([None] * rank, dtype, name=name)


# tf.saved_model.save traces every function again inside its save context (the
# function cache key includes the save options), so traces made outside it are
# thrown away, and a signature calling one of them saves that graph twice. The
# API's functions are traced once, in the same context as save() uses (same
# options): save() then finds them in the cache.
_SAVE_OPTIONS = tf.saved_model.SaveOptions()


def _traced_as_saved():
  from tensorflow.python.saved_model import save_context  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  return save_context.save_context(_SAVE_OPTIONS)


def _trackable(variables, trainable_variables):
  obj = tf.train.Checkpoint()
  obj.variables = list(variables)
  obj.trainable_variables = list(trainable_variables)
  obj.regularization_losses = []
  return obj


def encoder_object(model, *, version: Version, vocab_file: str, do_lower_case: bool):
  """The object to save for `model` (bert_hub.encoder.build_encoder) at `version`."""
  num_layers = model.config.num_layers
  hidden = model.config.hidden_size
  dropout = version.dropout_when_training

  def encode(inputs: Dict[str, tf.Tensor], training: bool):
    # v1's defect, kept: dropout is never applied, even when re-training.
    return model(inputs, training=bool(training and dropout))

  obj = _trackable(model.variables, model.trainable_variables)
  if version.dict_api:
    @tf.function
    def call(inputs, training=False):
      out = encode(inputs, training)
      return dict(pooled_output=out["pooled_output"],
                  sequence_output=out["sequence_output"],
                  encoder_outputs=list(out["encoder_outputs"]),
                  default=out["pooled_output"])
    specs = {name: _spec(name) for name in version.input_names}
  else:
    @tf.function
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
  with _traced_as_saved():
    inference = {training: call.get_concrete_function(specs, training=training)
                 for training in (False, True)}[False]
  obj.__call__ = call

  # Legacy attributes, on every version (002's page; v3 "still provides" them).
  obj.vocab_file = tf.saved_model.Asset(vocab_file)
  obj.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")

  # The signature calls the traced `__call__` (training=False) rather than the
  # model: one graph in saved_model.pb instead of two, and no third trace.
  if version.dict_api:
    serving_names = INPUT_NAMES
    @tf.function(input_signature=[_spec(n) for n in serving_names])
    def serve(input_word_ids, input_mask, input_type_ids):
      out = inference(dict(input_word_ids=input_word_ids, input_mask=input_mask,
                           input_type_ids=input_type_ids), training=False)
      named = dict(pooled_output=out["pooled_output"],
                   sequence_output=out["sequence_output"],
                   default=out["pooled_output"])
      for i in range(num_layers):
        named[f"encoder_outputs_{i}"] = out["encoder_outputs"][i]
      return named
  else:
    @tf.function(input_signature=[_spec(n) for n in version.input_names])
    def serve(input_word_ids, input_mask, segment_ids):
      pooled_output, sequence_output = inference(
          [input_word_ids, input_mask, segment_ids], training=False)
      return dict(pooled_output=pooled_output, sequence_output=sequence_output)
  obj.serving_default = serve

  if model.mlm is not None:
    if not version.dict_api:
      raise BertHubError(
          "MLM head needs the dict API", expected="--with-mlm with --version 3",
          received=f"--version {version.number}",
          fix="drop --with-mlm, or export version 3")
    mlm = _trackable(model.mlm.variables, model.mlm.trainable_variables)

    @tf.function
    def mlm_call(inputs, training=False):
      return dict(model.mlm(inputs, training=bool(training)))
    mlm_specs = dict({n: _spec(n) for n in INPUT_NAMES},
                     masked_lm_positions=_spec("masked_lm_positions"))
    with _traced_as_saved():
      for training in (False, True):
        mlm_call.get_concrete_function(mlm_specs, training=training)
    mlm.__call__ = mlm_call
    obj.mlm = mlm
  return obj


def save(obj, path: str) -> None:
  """Writes the object as a SavedModel with its serving signature."""
  tf.saved_model.save(obj, path, signatures={"serving_default": obj.serving_default},
                      options=_SAVE_OPTIONS)


def verify_encoder(path: str, model, *, version: Version, seq_length: int = 16) -> float:
  """Reloads `path` and compares it with the in-memory `model`, twice.

  Checks the reusable `__call__` and the `serving_default` signature against the
  Keras model on a padded two-segment batch; raises ExportVerificationError if
  any output's scaled_difference exceeds VERIFY_TOLERANCE (every offending
  output listed). Returns the largest scaled difference seen.
  """
  seq_length = min(seq_length, model.config.max_position_embeddings)
  inputs = sample_inputs(model.config, batch=3, seq_length=seq_length)
  want = model(inputs, training=False)
  loaded = tf.saved_model.load(path)
  if version.dict_api:
    got = loaded(inputs)
    got_named = {"pooled_output": got["pooled_output"],
                 "sequence_output": got["sequence_output"], "default": got["default"]}
    got_named.update({f"encoder_outputs_{i}": t
                      for i, t in enumerate(got["encoder_outputs"])})
  else:
    pooled, sequence = loaded([inputs[n] for n in INPUT_NAMES])
    got_named = {"pooled_output": pooled, "sequence_output": sequence}
  feeds = dict(zip(version.input_names, (tf.constant(inputs[n]) for n in INPUT_NAMES)))
  served = loaded.signatures["serving_default"](**feeds)
  reference = {"pooled_output": want["pooled_output"],
               "sequence_output": want["sequence_output"],
               "default": want["pooled_output"]}
  reference.update({f"encoder_outputs_{i}": t
                    for i, t in enumerate(want["encoder_outputs"])})
  diffs = {}
  for name, value in got_named.items():
    diffs[f"__call__ {name}"] = scaled_difference(value, reference[name])
  for name, value in served.items():
    diffs[f"serving_default {name}"] = scaled_difference(value, reference[name])
  if model.mlm is not None:
    positions = np.tile(np.arange(3, dtype=np.int32), (3, 1))
    mlm_inputs = dict(inputs, masked_lm_positions=positions)
    diffs["mlm mlm_logits"] = scaled_difference(loaded.mlm(mlm_inputs)["mlm_logits"],
                                       model.mlm(mlm_inputs)["mlm_logits"])
  bad = {k: v for k, v in diffs.items() if not v <= VERIFY_TOLERANCE}
  if bad:
    raise ExportVerificationError(
        f"export verification failed: reloaded {path} differs from the model by "
        f"more than {VERIFY_TOLERANCE} (scaled): " +
        ", ".join(f"{k}={v:.3g}" for k, v in bad.items()))
  return max(diffs.values())
