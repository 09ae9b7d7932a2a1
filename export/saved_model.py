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
import concurrent.futures
from typing import Dict

import numpy as np

from bert_hub import _keras  # noqa: F401
from bert_hub.encoder import INPUT_NAMES, bfloat16_twin, sample_inputs
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
# bfloat16 keeps 8 significant bits: the bfloat16 serving signature's outputs
# differ from float32 by about 1% in relative_difference() (BERT-base 0.9%,
# all-MiniLM-L6-v2 1.2%), single values by up to 11% of the output's largest.
# The bound checks its weights and wiring: adjacent layers' outputs differ by
# about 40%, a wrong weight by about 100%. float32 is held to VERIFY_TOLERANCE.
BFLOAT16_TOLERANCE = 0.05


def scaled_difference(got, want) -> float:
  """max|got - want| / max(1, max|want|): the error relative to the output's scale."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  if got.size == 0 and want.size == 0:
    return 0.0
  return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def relative_difference(got, want) -> float:
  """||got - want|| / ||want|| (Euclidean norms over all values)."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  norm = float(np.linalg.norm(want))
  return float(np.linalg.norm(got - want)) / norm if norm else float(np.max(np.abs(got)))


def _spec(name, rank=2, dtype=tf.int32):
  return tf.TensorSpec([None] * rank, dtype, name=name)


# The functions are traced without autograph: tf-models' layers have no
# data-dependent Python control flow, and converting them costs about a second.
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


def check_encoder_options(*, version: Version, with_mlm: bool,
                          serving_precision: str) -> None:
  """The options an encoder export accepts; raises BertHubError before any work."""
  if serving_precision not in SERVING_PRECISIONS:
    raise BertHubError(
        "unknown serving precision", expected=" or ".join(SERVING_PRECISIONS),
        received=repr(serving_precision), fix="pass float32 (default) or bfloat16")
  if with_mlm and not version.dict_api:
    raise BertHubError(
        "MLM head needs the dict API", expected="--with-mlm with --version 3",
        received=f"--version {version.number}",
        fix="drop --with-mlm, or export version 3")


def encoder_object(model, *, version: Version, vocab_file: str, do_lower_case: bool,
                   serving_precision: str = "float32"):
  """The object to save for `model` (bert_hub.encoder.build_encoder) at `version`.

  serving_precision="bfloat16" makes `serving_default` compute in bfloat16
  (bert_hub.encoder.bfloat16_twin: the same variables, float32 outputs), for
  CPUs with AVX512-BF16 or AMX; the float32 signature stays as
  `serving_float32`. `__call__` (fine-tuning, hub.KerasLayer) is float32 always.
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

  obj = _trackable(model.variables, model.trainable_variables)
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
  with _traced_as_saved():
    inference = {training: call.get_concrete_function(specs, training=training)
                 for training in (False, True)}[False]
  obj.__call__ = call

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
    twin = bfloat16_twin(model)

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
    mlm = _trackable(model.mlm.variables, model.mlm.trainable_variables)

    @tf.function(autograph=False)
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
  signatures = {"serving_default": obj.serving_default}
  if hasattr(obj, "serving_float32"):
    signatures["serving_float32"] = obj.serving_float32
  tf.saved_model.save(obj, path, signatures=signatures, options=_SAVE_OPTIONS)


def expected_outputs(model, *, seq_length: int = 16) -> dict:
  """What verify_encoder compares the reloaded export with: the in-memory model's
  outputs on a padded two-segment batch (and the MLM head's, if any).

  Computed before reloading, so that the caller can drop the model first and
  not hold the weights twice (BERT-large: 1.3 GB less at the peak).
  """
  seq_length = min(seq_length, model.config.max_position_embeddings)
  inputs = sample_inputs(model.config, batch=3, seq_length=seq_length)
  want = model(inputs, training=False)
  reference = {"pooled_output": want["pooled_output"].numpy(),
               "sequence_output": want["sequence_output"].numpy(),
               "default": want["pooled_output"].numpy()}
  reference.update({f"encoder_outputs_{i}": t.numpy()
                    for i, t in enumerate(want["encoder_outputs"])})
  expected = dict(inputs=inputs, reference=reference)
  if model.mlm is not None:
    positions = np.tile(np.arange(3, dtype=np.int32), (3, 1))
    expected["mlm_inputs"] = dict(inputs, masked_lm_positions=positions)
    expected["mlm_logits"] = model.mlm(expected["mlm_inputs"])["mlm_logits"].numpy()
  return expected


def _reloaded_call(loaded, inputs, version: Version) -> dict:
  """The reloaded `__call__`'s outputs, by output name."""
  if version.dict_api:
    got = loaded(inputs)
    got_named = {"pooled_output": got["pooled_output"],
                 "sequence_output": got["sequence_output"], "default": got["default"]}
    got_named.update({f"encoder_outputs_{i}": t
                      for i, t in enumerate(got["encoder_outputs"])})
  else:
    pooled, sequence = loaded([inputs[n] for n in INPUT_NAMES])
    got_named = {"pooled_output": pooled, "sequence_output": sequence}
  return got_named


def verify_encoder(path: str, model=None, *, version: Version, seq_length: int = 16,
                   serving_precision: str = "float32", expected=None) -> float:
  """Reloads `path` and compares it with the in-memory `model`, twice.

  Checks the reusable `__call__` and the `serving_default` signature against the
  Keras model on a padded two-segment batch; raises ExportVerificationError if
  any output's scaled_difference exceeds VERIFY_TOLERANCE (every offending
  output listed). Returns the largest scaled difference seen. With
  serving_precision="bfloat16", `serving_float32` is held to VERIFY_TOLERANCE
  and the bfloat16 `serving_default` to BFLOAT16_TOLERANCE in
  relative_difference (not in the result).
  `expected` (expected_outputs(model)) replaces `model`.
  """
  if expected is None:
    expected = expected_outputs(model, seq_length=seq_length)
  inputs, reference = expected["inputs"], expected["reference"]
  loaded = tf.saved_model.load(path)
  feeds = dict(zip(version.input_names, (tf.constant(inputs[n]) for n in INPUT_NAMES)))
  names = ["serving_default"] + (["serving_float32"] if serving_precision == "bfloat16" else [])
  # A reloaded function's first call optimizes its graph (grappler: about 0.4 s
  # for BERT-base, in C++ without the GIL): the signatures run in a second
  # thread while `__call__` runs in this one.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    signatures = pool.submit(lambda: {n: loaded.signatures[n](**feeds) for n in names})
    got_named = _reloaded_call(loaded, inputs, version)
    signature_outputs = signatures.result()
  served = signature_outputs["serving_default"]
  bfloat16 = {}
  if serving_precision == "bfloat16":
    bfloat16 = {f"serving_default {k} (bfloat16)": v for k, v in served.items()}
    served = signature_outputs["serving_float32"]
  diffs = {}
  for name, value in got_named.items():
    diffs[f"__call__ {name}"] = scaled_difference(value, reference[name])
  for name, value in served.items():
    signature = "serving_float32" if bfloat16 else "serving_default"
    diffs[f"{signature} {name}"] = scaled_difference(value, reference[name])
  if "mlm_logits" in expected:
    diffs["mlm mlm_logits"] = scaled_difference(
        loaded.mlm(expected["mlm_inputs"])["mlm_logits"], expected["mlm_logits"])
  bad = {k: v for k, v in diffs.items() if not v <= VERIFY_TOLERANCE}
  for key, value in bfloat16.items():
    diff = relative_difference(value, reference[key.split()[1]])
    if not diff <= BFLOAT16_TOLERANCE:
      bad[key] = diff
  if bad:
    raise ExportVerificationError(
        f"export verification failed: reloaded {path} differs from the model by "
        f"more than {VERIFY_TOLERANCE} (scaled; bfloat16 serving: "
        f"{BFLOAT16_TOLERANCE} relative): " +
        ", ".join(f"{k}={v:.3g}" for k, v in bad.items()))
  return max(diffs.values())
