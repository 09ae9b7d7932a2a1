"""The preprocessing export: text in, encoder inputs out (bert_hub/preprocessing).

  export_preprocessing(vocab=... or checkpoint=..., output_dir=..., ...)
      -> pipeline.ExportResult

The vocab and the tokenizer settings come from --vocab or from the model's
directory (--checkpoint), resolved by export/sources.py. After reloading, the
ids of the root call must equal the in-memory model's exactly.
"""
from typing import Optional

from bert_hub import _keras  # noqa: F401
from bert_hub.tokenizer_settings import TokenizerSettings
from export import pipeline, publish, sources, versions, warmup
from export.verify import Check

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order


def create_from_settings(*, vocab_file: str, tokenizer: TokenizerSettings,
                         seq_length: int, normalization: str,
                         tokenize_with_offsets: bool = False,
                         bert_pack_inputs: bool = True):
  """bert_hub.preprocessing.create_preprocessing with resolved tokenizer settings
  (bert_pack_inputs=False for the servables, which save only its tokenizer)."""
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  return preprocessing.create_preprocessing(
      vocab_file=vocab_file, lower_case=tokenizer.lower_case,
      strip_accents=tokenizer.strip_accents,
      tokenize_chinese_chars=tokenizer.tokenize_chinese_chars,
      default_seq_length=seq_length, tokenize_with_offsets=tokenize_with_offsets,
      normalization=normalization, bert_pack_inputs=bert_pack_inputs)


class PreprocessingExport(pipeline.ExportKind):
  """The preprocessing SavedModel of a vocab (see the module docstring)."""
  compared = "ids of the root call on the warmup sentences, exactly"

  def __init__(self, *, source: sources.VocabSource, seq_length: int,
               tokenize_with_offsets: bool, normalization: str, clock):
    from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
    self._signatures = preprocessing.preprocessing_signatures
    self.noun = (f"preprocessing for {source.vocab_path} ({source.tokenizer.describe()}, "
                 f"seq_length={seq_length}, normalization={normalization})")
    clock("building", self.noun)
    self.preprocessor = create_from_settings(
        vocab_file=source.vocab_path, tokenizer=source.tokenizer,
        seq_length=seq_length, normalization=normalization,
        tokenize_with_offsets=tokenize_with_offsets)
    self.sentences = tf.constant(list(warmup.SENTENCES))

  def build(self, stage, clock):
    return pipeline.Built(obj=self.preprocessor,
                          signatures=self._signatures(self.preprocessor))

  def reference(self):
    return {k: v.numpy() for k, v in self.preprocessor(self.sentences).items()}

  def checks(self, loaded, reference):
    got = loaded(self.sentences)
    return [Check(f"__call__ {key}", got[key], want, measure="exact")
            for key, want in reference.items()]

  def warmup_requests(self):
    return {"serving_default": warmup.preprocessing_requests()}


def export_preprocessing(*, output_dir: str, vocab: Optional[str] = None,
                         checkpoint: Optional[str] = None,
                         version: int = versions.LATEST, seq_length: int = 128,
                         lower_case: Optional[bool] = None,
                         tokenize_with_offsets: bool = False,
                         normalization: str = "faithful", overwrite: bool = False,
                         report: pipeline.Report = pipeline.print_report
                         ) -> pipeline.ExportResult:
  """Exports the preprocessing SavedModel of a vocab at DIR/<version>/.

  Args:
    output_dir: DIR; the export becomes DIR/<version>/.
    vocab: the WordPiece vocab.txt; or
    checkpoint: the model's directory (or checkpoint path): its vocab.txt and
      tokenizer files are used.
    version: the interface version of the encoder it accompanies (default 3).
    seq_length: T of the root call and bert_pack_inputs' default.
    lower_case: the tokenizer's do_lower_case (default: from the model's files
      or the vocab's content, bert_hub/tokenizer_settings.py).
    tokenize_with_offsets: add the tokenize_with_offsets subobject.
    normalization: "faithful" (FullTokenizer's ids) or "tf_text".
    overwrite: replace an existing DIR/<version>.
    report: called with (stage, detail) as the export goes.

  See bert_hub/preprocessing for its API (root call, tokenize,
  tokenize_with_offsets, bert_pack_inputs) and its faithful tokenization.
  """
  clock = pipeline.Clock(report)
  versions.get(version)
  sources.check_seq_length(seq_length)
  publish.check_target(output_dir, version, overwrite=overwrite)
  source = sources.vocab_source(vocab=vocab, checkpoint=checkpoint,
                                lower_case=lower_case, report=clock)
  kind = PreprocessingExport(source=source, seq_length=seq_length,
                             tokenize_with_offsets=tokenize_with_offsets,
                             normalization=normalization, clock=clock)
  return pipeline.run(kind, output_dir=output_dir, version=version,
                      overwrite=overwrite, clock=clock)
