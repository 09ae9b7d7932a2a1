"""The encoder export: a BERT checkpoint as a TF Hub-style encoder at DIR/<version>/.

  export_encoder(checkpoint=..., output_dir=..., ...) -> pipeline.ExportResult

The path from checkpoint to SavedModel:
  sources.model_source (config, vocab, tokenizer settings)
  -> checkpoints.read_weights (tf1 | tf2 | hf -> canonical arrays, strict)
  -> encoder.build_encoder + assign_weights (tf-models BertEncoderV2, tf_keras)
  -> saved_model.encoder_object (the version's API: versions.py)
  -> pipeline.run: save, reload and compare (__call__ and every signature,
     the MLM head), warmup, model page (pages/encoder_page.py), publish.
"""
import concurrent.futures
import os
from typing import Optional

import numpy as np

from bert_hub import _keras  # noqa: F401
from bert_hub import encoder as encoder_lib
from bert_hub.encoder import INPUT_NAMES, sample_inputs
from bert_hub.errors import BertHubError
from export import pipeline, publish, saved_model, sources, versions, warmup
from export.pages import encoder_page, naming
from export.verify import Check, output_check

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

# The batch the reloaded export is compared on: padded, two segments.
_VERIFY_BATCH, _VERIFY_SEQ_LENGTH = 3, 16


def expected_outputs(model: encoder_lib.Encoder, *,
                     seq_length: int = _VERIFY_SEQ_LENGTH) -> dict:
  """The in-memory model's outputs on a padded two-segment batch (and the MLM
  head's, if any), by the names of serving_default.

  Computed before reloading, so that the caller can drop the model first and
  not hold the weights twice (BERT-large: 1.3 GB less at the peak).
  """
  seq_length = min(seq_length, model.config.max_position_embeddings)
  inputs = sample_inputs(model.config, batch=_VERIFY_BATCH, seq_length=seq_length)
  want = model(inputs, training=False)
  reference = {"pooled_output": want["pooled_output"].numpy(),
               "sequence_output": want["sequence_output"].numpy(),
               "default": want["pooled_output"].numpy()}
  reference.update({f"encoder_outputs_{i}": t.numpy()
                    for i, t in enumerate(want["encoder_outputs"])})
  expected = dict(inputs=inputs, reference=reference)
  if model.mlm is not None:
    positions = np.tile(np.arange(3, dtype=np.int32), (_VERIFY_BATCH, 1))
    expected["mlm_inputs"] = dict(inputs, masked_lm_positions=positions)
    expected["mlm_logits"] = model.mlm(expected["mlm_inputs"])["mlm_logits"].numpy()
  return expected


def _reloaded_call(loaded, inputs, version: versions.Version) -> dict:
  """The reloaded `__call__`'s outputs, by output name."""
  if version.dict_api:
    got = loaded(inputs)
    named = {"pooled_output": got["pooled_output"],
             "sequence_output": got["sequence_output"], "default": got["default"]}
    named.update({f"encoder_outputs_{i}": t for i, t in enumerate(got["encoder_outputs"])})
    return named
  pooled, sequence = loaded([inputs[n] for n in INPUT_NAMES])
  return {"pooled_output": pooled, "sequence_output": sequence}


def encoder_checks(loaded, expected, *, version: versions.Version,
                   serving_precision: str = "float32") -> list:
  """Checks of a reloaded encoder export against expected_outputs().

  `__call__` and every signature, float32 within VERIFY_TOLERANCE (scaled);
  with serving_precision="bfloat16", serving_default (bfloat16) within
  BFLOAT16_TOLERANCE (relative) and serving_float32 as float32.
  """
  inputs, reference = expected["inputs"], expected["reference"]
  feeds = dict(zip(version.input_names, (tf.constant(inputs[n]) for n in INPUT_NAMES)))
  names = ["serving_default"] + (
      [saved_model.FLOAT32_SIGNATURE] if serving_precision == "bfloat16" else [])
  # A reloaded function's first call optimizes its graph (grappler: about 0.4 s
  # for BERT-base, in C++ without the GIL): the signatures run in a second
  # thread while `__call__` runs in this one.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    signatures = pool.submit(lambda: {n: loaded.signatures[n](**feeds) for n in names})
    called = _reloaded_call(loaded, inputs, version)
    served = signatures.result()
  checks = [Check(f"__call__ {k}", v, reference[k]) for k, v in called.items()]
  for name, outputs in served.items():
    bfloat16 = serving_precision == "bfloat16" and name == "serving_default"
    checks += [output_check(f"{name} {key}", value, reference[key], bfloat16=bfloat16)
               for key, value in outputs.items()]
  if "mlm_logits" in expected:
    checks.append(Check("mlm mlm_logits",
                        loaded.mlm(expected["mlm_inputs"])["mlm_logits"],
                        expected["mlm_logits"]))
  return checks


def no_pooler_error(path: str) -> BertHubError:
  """The one-line refusal of an export that needs pooled_output, for a checkpoint
  without pooler weights (pooled_output is never made up)."""
  return BertHubError(
      f"no pooler weights in {path}",
      expected="pooler.dense.weight and pooler.dense.bias (an encoder export serves "
      "pooled_output, the pooler's output)",
      received="a checkpoint without a pooler (e.g. BertForMaskedLM or "
      "add_pooling_layer=False)",
      fix="export `bert-hub-export text-embedding --pooling mean` (or cls), which "
      "needs no pooler, or use a checkpoint that has one")


class EncoderExport(pipeline.ExportKind):
  """An encoder export of one interface version (see the module docstring)."""
  compared = ("reloaded __call__ and serving_default vs the in-memory model on a "
              "padded two-segment batch")

  def __init__(self, *, source: sources.ModelSource, version: versions.Version,
               with_mlm: bool, serving_precision: str, page: dict, clock):
    self.source, self.version = source, version
    self.with_mlm, self.serving_precision, self.page = with_mlm, serving_precision, page
    self.noun = f"version {version.number} interface"
    clock("reading", f"{source.checkpoint} ({source.config.describe()})")
    weights = encoder_lib.read_weights(source.checkpoint, source.config,
                                       checkpoint_format=source.checkpoint_format,
                                       with_mlm=with_mlm)
    self.source_files = weights.files
    if not weights.has_pooler:
      raise no_pooler_error(weights.source)
    clock("building", f"tf-models BertEncoderV2 from {weights.format} weights")
    self.model = encoder_lib.build_encoder(source.config, with_mlm=with_mlm,
                                           random_init=False)
    encoder_lib.assign_weights(self.model, weights)
    self.weights_source = self.model.source

  def build(self, stage, clock):
    vocab_copy = os.path.join(stage, "vocab.txt")  # the Asset's source
    self.source.vocab.write_normalized(vocab_copy)
    obj = saved_model.encoder_object(
        self.model, version=self.version, vocab_file=vocab_copy,
        do_lower_case=self.source.tokenizer.lower_case,
        serving_precision=self.serving_precision)
    return pipeline.Built(obj=obj, signatures=saved_model.signatures(obj),
                          temporary_files=[vocab_copy])

  def reference(self):
    return expected_outputs(self.model)

  def release(self):
    del self.model  # not held twice while the export is reloaded

  def checks(self, loaded, reference):
    return encoder_checks(loaded, reference, version=self.version,
                          serving_precision=self.serving_precision)

  def warmup_requests(self):
    return {"serving_default": warmup.encoder_requests(self.source.config, self.version)}

  def files(self, *, model_path, verification, digests):
    return encoder_page.files(
        config=self.source.config, version=self.version.number,
        lower_case=self.source.tokenizer.lower_case, tokenizer=self.source.tokenizer,
        source=self.weights_source, verification=verification.to_dict(),
        model_path=model_path, serving_precision=self.serving_precision,
        digests=digests, **self.page)


def export_encoder(*, checkpoint: str, output_dir: str, vocab: Optional[str] = None,
                   config=None, version: int = versions.LATEST, with_mlm: bool = False,
                   lower_case: Optional[bool] = None,
                   checkpoint_format: Optional[str] = None, overwrite: bool = False,
                   publisher: str = naming.DEFAULT_PUBLISHER, name: Optional[str] = None,
                   language: str = naming.DEFAULT_LANGUAGE, dataset: Optional[str] = None,
                   whole_word_masking: Optional[bool] = None,
                   serving_precision: str = "float32",
                   report: pipeline.Report = pipeline.print_report
                   ) -> pipeline.ExportResult:
  """Exports a BERT checkpoint as an encoder SavedModel at DIR/<version>/.

  Beside the SavedModel, DIR/<version>/ gets its model page README.md and
  bert_hub.json (export/pages/encoder_page.py).

  Args:
    checkpoint: a TF1 or TF2 checkpoint prefix, or a Hugging Face model
      directory or .safetensors file.
    output_dir: DIR; the export becomes DIR/<version>/.
    vocab: the WordPiece vocab.txt (default: vocab.txt beside the checkpoint).
    config: a config path or BertConfig (default: the config beside the checkpoint).
    version: the interface version, 1, 2 or 3 (see versions.py).
    with_mlm: also export the `mlm` subobject (version 3 only).
    lower_case: the tokenizer's do_lower_case (default: from the model's files
      or its vocab, bert_hub/tokenizer_settings.py).
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    overwrite: replace an existing DIR/<version>.
    publisher, name: the page's handle <publisher>/<name>/<version> (name
      default: naming.tfhub_name, e.g. bert_en_uncased_L-12_H-768_A-12).
    language, dataset, whole_word_masking: facts the checkpoint cannot tell,
      stated on the page; dataset and whole_word_masking None = not stated.
    serving_precision: "bfloat16" makes `serving_default` compute in bfloat16
      (float32 outputs; about 1.7x the float32 speed at batch 32 and 1.3x at
      batch 1 on an AVX512-BF16 CPU, see benchmarks/README.md) and keeps
      float32 as `serving_float32`; `__call__` stays float32.
    report: called with (stage, detail) as the export goes.
  """
  clock = pipeline.Clock(report)
  spec = versions.get(version)
  saved_model.check_encoder_options(version=spec, with_mlm=with_mlm,
                                    serving_precision=serving_precision)
  naming.check_facts(publisher=publisher, name=name, language=language, dataset=dataset)
  publish.check_target(output_dir, version, overwrite=overwrite)
  source = sources.model_source(checkpoint=checkpoint, vocab=vocab, config=config,
                                checkpoint_format=checkpoint_format,
                                lower_case=lower_case, report=clock)
  if name is None:
    name = naming.tfhub_name(source.config, language=language,
                             cased=not source.tokenizer.lower_case,
                             whole_word_masking=whole_word_masking)
  kind = EncoderExport(
      source=source, version=spec, with_mlm=with_mlm,
      serving_precision=serving_precision, clock=clock,
      page=dict(publisher=publisher, name=name, language=language, dataset=dataset,
                whole_word_masking=whole_word_masking))
  return pipeline.run(kind, output_dir=output_dir, version=version,
                      overwrite=overwrite, clock=clock)
