"""The text-embedding servable: raw sentences in, BERT embeddings out, in one request.

For the most common request to a BERT server: the client sends strings and gets
vectors back, with no tokenizer on its side and no second round trip through a
preprocessing model. The SavedModel holds the preprocessing model
(bert_hub/preprocessing.py, faithful to BERT's FullTokenizer) and the encoder's
variables, and runs both in one graph.

Signatures (TF Serving), B = batch, S = seq_length, H = hidden size:
  serving_default
    inputs:  sentences         string [B]
    outputs: pooled_output     float32 [B, H]     the encoder's pooled_output
             sequence_output   float32 [B, S, H]  the last layer, per token
             input_mask        int32 [B, S]       1 on tokens, 0 on padding
                                                  (for mean pooling over tokens)
  pairs
    inputs:  sentences, second_sentences   string [B] each (the same B)
    outputs: as serving_default, for [CLS] sentence [SEP] second_sentence [SEP]
             (input_type_ids 0 then 1), trimmed round-robin to S tokens.
  TF Serving signatures cannot have optional inputs, hence two signatures.

Object API (tf.saved_model.load, hub.KerasLayer, Keras 3's TFSMLayer with
call_endpoint="__call__"):
  obj(sentences)                              -> dict as serving_default
  obj.embed_pairs(sentences, second_sentences) -> dict as pairs
  obj.preprocessor   the preprocessing model (tokenize, bert_pack_inputs, ...)
  obj.vocab_file     tf.saved_model.Asset, the checkpoint's vocabulary
  obj.variables, obj.trainable_variables, obj.regularization_losses: the
      encoder's (there is no dropout: inference only)

Every op is registered by core TensorFlow or by TF Text 2.12.1, so the TF
Serving images load it (checked by the tests against
export/data/serving_ops_allowlist.txt).

  export_text_embedding(checkpoint=..., output_dir=..., ...) -> lib.ExportResult
"""
from typing import Optional

import numpy as np

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from bert_hub.errors import BertHubError, ExportVerificationError
from export import lib, publish, warmup

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

OUTPUT_NAMES = ("pooled_output", "sequence_output", "input_mask")
PAIRS_SIGNATURE = "pairs"
DEFAULT_VERSION = 1


def _sentences_spec(name):
  return tf.TensorSpec([None], tf.string, name=name)


def text_embedding_object(model, preprocessor, *, seq_length: int):
  """The object to save, and its signatures.

  Args:
    model: the encoder (bert_hub.encoder.build_encoder), weights assigned.
    preprocessor: bert_hub.preprocessing.create_preprocessing(...) for the
      checkpoint's vocab, with default_seq_length=seq_length.
    seq_length: S, the length both signatures pack to.

  Returns:
    (obj, signatures) for tf.saved_model.save(obj, path, signatures=signatures).
  """
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  special = {k: int(v) for k, v in
             preprocessor.tokenize.get_special_tokens_dict().items()}
  pack_ids = {k: special[k] for k in
              ("start_of_sequence_id", "end_of_segment_id", "padding_id")}

  def encode(inputs):
    out = model(inputs, training=False)
    return dict(pooled_output=out["pooled_output"],
                sequence_output=out["sequence_output"],
                input_mask=inputs["input_mask"])

  @tf.function(input_signature=[_sentences_spec("sentences")])
  def embed(sentences):
    return encode(preprocessor(sentences))

  @tf.function(input_signature=[_sentences_spec("sentences"),
                                _sentences_spec("second_sentences")])
  def embed_pairs(sentences, second_sentences):
    check = tf.debugging.assert_equal(
        tf.size(sentences), tf.size(second_sentences),
        message="pairs: sentences and second_sentences must have the same batch size")
    with tf.control_dependencies([check]):
      segments = [preprocessor.tokenize(sentences),
                  preprocessor.tokenize(second_sentences)]
    return encode(preprocessing.pack_inputs(segments, seq_length, **pack_ids))

  obj = tf.train.Checkpoint()
  obj.variables = list(model.variables)
  obj.trainable_variables = list(model.trainable_variables)
  obj.regularization_losses = []
  obj.preprocessor = preprocessor
  obj.vocab_file = preprocessor.vocab_file
  obj.__call__ = embed
  obj.embed_pairs = embed_pairs
  signatures = {"serving_default": embed.get_concrete_function(),
                PAIRS_SIGNATURE: embed_pairs.get_concrete_function()}
  return obj, signatures


def reference_outputs(model, preprocessor, sentences, second_sentences=None,
                      *, seq_length: int) -> dict:
  """What the export must compute, from the in-memory preprocessing and encoder."""
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  sentences = tf.constant(sentences, tf.string)
  if second_sentences is None:
    inputs = preprocessor(sentences)
  else:
    special = {k: int(v) for k, v in
               preprocessor.tokenize.get_special_tokens_dict().items()}
    inputs = preprocessing.pack_inputs(
        [preprocessor.tokenize(sentences),
         preprocessor.tokenize(tf.constant(second_sentences, tf.string))],
        seq_length, start_of_sequence_id=special["start_of_sequence_id"],
        end_of_segment_id=special["end_of_segment_id"],
        padding_id=special["padding_id"])
  out = model(inputs, training=False)
  return {"pooled_output": out["pooled_output"].numpy(),
          "sequence_output": out["sequence_output"].numpy(),
          "input_mask": inputs["input_mask"].numpy()}


def verify_text_embedding(path: str, model, preprocessor, *, seq_length: int,
                          requests=None) -> float:
  """Reloads `path`; both signatures must match the in-memory models.

  Floats within saved_model.VERIFY_TOLERANCE (saved_model.scaled_difference),
  input_mask exactly, on the warmup sentences (a long one is truncated to
  seq_length, one is empty). `requests` ({signature: [feeds]}, default the
  warmup requests) are also run through the reloaded signatures: the server
  refuses a version whose warmup fails. Raises ExportVerificationError listing
  every difference; returns the largest scaled difference.
  """
  from export.saved_model import VERIFY_TOLERANCE, scaled_difference  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(path)
  sentences = list(warmup.SENTENCES) + [" ".join(["hello world"] * seq_length)]
  second = list(warmup.SECOND_SENTENCES) + ["a short second segment"]
  cases = [("serving_default", dict(sentences=sentences), (sentences,)),
           (PAIRS_SIGNATURE, dict(sentences=sentences, second_sentences=second),
            (sentences, second))]
  diffs, problems = {}, []
  for name, feeds, args in cases:
    got = loaded.signatures[name](**{k: tf.constant(v) for k, v in feeds.items()})
    want = reference_outputs(model, preprocessor, *args, seq_length=seq_length)
    if sorted(got) != sorted(OUTPUT_NAMES):
      problems.append(f"{name} outputs {sorted(got)}, expected {sorted(OUTPUT_NAMES)}")
      continue
    if not np.array_equal(got["input_mask"].numpy(), want["input_mask"]):
      problems.append(f"{name} input_mask differs")
    for key in ("pooled_output", "sequence_output"):
      diffs[f"{name} {key}"] = scaled_difference(got[key], want[key])
  problems += [f"{k}={v:.3g}" for k, v in diffs.items() if not v <= VERIFY_TOLERANCE]
  for name, batch in (requests or warmup.text_embedding_requests()).items():
    for feeds in batch:
      loaded.signatures[name](**{k: tf.constant(v) for k, v in feeds.items()})
  if problems:
    raise ExportVerificationError(
        f"export verification failed: reloaded {path} differs from the in-memory "
        f"preprocessing + encoder (tolerance {VERIFY_TOLERANCE}, scaled): "
        + ", ".join(problems))
  return max(diffs.values())


def export_text_embedding(*, checkpoint: str, output_dir: str,
                          vocab: Optional[str] = None, config=None,
                          seq_length: int = 128, version: int = DEFAULT_VERSION,
                          lower_case: Optional[bool] = None,
                          normalization: str = "faithful",
                          checkpoint_format: Optional[str] = None,
                          overwrite: bool = False,
                          report: lib.Report = lib.print_report) -> lib.ExportResult:
  """Exports a checkpoint as a text-embedding SavedModel at DIR/<version>/.

  Args:
    checkpoint: a TF1 or TF2 checkpoint prefix, or a Hugging Face model
      directory or .safetensors file.
    output_dir: DIR; the export becomes DIR/<version>/.
    vocab: the checkpoint's WordPiece vocab.txt (default: vocab.txt beside the
      checkpoint); its size must be the config's vocab_size.
    config: a config path or BertConfig (default: the config beside the checkpoint).
    seq_length: S, from 3 to max_position_embeddings.
    version: the model version directory, an integer >= 1 (default 1). There is
      one interface; bump the version when re-exporting for a running server.
    lower_case: the tokenizer's do_lower_case (default: see lib.resolve_lower_case).
    normalization: "faithful" (FullTokenizer's ids) or "tf_text".
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    overwrite: replace an existing DIR/<version>.
    report: called with (stage, detail) as the export goes.
  """
  from bert_hub import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top

  clock = lib._Clock(report)  # pylint: disable=protected-access
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise BertHubError(
        "bad --version", expected="a model version number, an integer >= 1",
        received=repr(version), fix="pass --version 1 (then 2, 3, ... for re-exports)")
  config, vocab_path, _ = lib.resolve_config_and_vocab(
      checkpoint=checkpoint, vocab=vocab, config=config,
      checkpoint_format=checkpoint_format)
  lib.check_seq_length(seq_length, max_positions=config.max_position_embeddings)
  publish.check_target(output_dir, version, overwrite=overwrite)
  lower = lib.resolve_lower_case(lower_case, vocab=vocab_path, checkpoint=checkpoint,
                                 report=clock)

  clock("reading", f"{checkpoint} ({config.describe()})")
  model = encoder_lib.load_encoder(checkpoint, config,
                                   checkpoint_format=checkpoint_format)
  clock("building", f"preprocessing for {vocab_path} (lower_case={lower}, "
        f"seq_length={seq_length}, normalization={normalization})")
  preprocessor = preprocessing.create_preprocessing(
      vocab_file=vocab_path, lower_case=lower, default_seq_length=seq_length,
      normalization=normalization)

  with publish.staged(output_dir, version, overwrite=overwrite) as stage:
    clock("tracing", "serving_default (sentences) and pairs "
          "(sentences, second_sentences)")
    obj, signatures = text_embedding_object(model, preprocessor, seq_length=seq_length)
    clock("writing", stage)
    tf.saved_model.save(obj, stage, signatures=signatures)
    requests = warmup.text_embedding_requests()
    warmup.write(stage, requests, output_dir=output_dir, report=clock)
    clock("verifying", "reloading; both signatures vs the in-memory preprocessing "
          "+ encoder; running the warmup requests")
    max_diff = verify_text_embedding(stage, model, preprocessor, seq_length=seq_length,
                                     requests=requests)
  from export.saved_model import VERIFY_TOLERANCE  # pylint: disable=g-import-not-at-top
  clock("done", f"{publish.version_dir(output_dir, version)}: largest difference "
        f"after reload {max_diff:.2g} (tolerance {VERIFY_TOLERANCE:g})")
  return lib.ExportResult(path=publish.version_dir(output_dir, version),
                          version=version, seconds=clock.elapsed(), max_diff=max_diff)
