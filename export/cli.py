"""bert-hub-export: BERT checkpoints to TF Hub-style SavedModels (DIR/<version>/).

A thin shell over export/lib.py (and export/serving_cli.py for the serving
tools): parse, delegate, exit code; every default and choice comes from the
module that owns it. Errors in
the input print one line `error: ...` (what was expected, what was received,
how to fix it) and exit 2; --debug shows the traceback instead.

  bert-hub-export encoder --checkpoint CKPT --output DIR [--vocab VOCAB]
      [--config CONFIG] [--version 1|2|3] [--with-mlm] [--lower-case|--no-lower-case]
      [--checkpoint-format tf1|tf2|hf|hf_h5] [--overwrite] [--publisher P] [--name N]
      [--language en] [--dataset TEXT] [--whole-word-masking|--no-whole-word-masking]
  bert-hub-export preprocessing (--vocab VOCAB | --checkpoint DIR) --output DIR [--version 3]
      [--seq-length 128] [--lower-case|--no-lower-case] [--tokenize-with-offsets]
      [--normalization faithful|tf_text] [--overwrite]
  bert-hub-export text-embedding --checkpoint CKPT --output DIR [--vocab VOCAB]
      [--config CONFIG] [--seq-length S] [--version 1] [--lower-case|--no-lower-case]
      [--normalization faithful|tf_text] [--checkpoint-format tf1|tf2|hf|hf_h5] [--overwrite]
      [--pooling pooler|cls|mean|max] [--normalize]   (not for sentence-transformers dirs)
  bert-hub-export text-classifier --checkpoint CKPT --output DIR [--labels A,B,...]
      [--vocab VOCAB] [--config CONFIG] [--seq-length 128] [--version 1]
      [--lower-case|--no-lower-case] [--normalization faithful|tf_text]
      [--checkpoint-format tf1|tf2|hf|hf_h5] [--overwrite]
  bert-hub-export batch-predict --model DIR/<v> --input GLOB --output PREFIX
      [--signature NAME] [--text-field F [--id-field F]] [--batch-size 64]
      [Beam pipeline options: --runner R --direct_num_workers N ...]   (.[beam] extra)
  bert-hub-export inspect DIR/<version>
  bert-hub-export serving-config --model NAME=DIR [--model ...] --output CONFIG_DIR
"""
import argparse
import os
import sys

# TensorFlow's C++ log prints lines such as "failed call to cuInit" (CUDA libraries
# without a GPU) on stderr; the CLI's contract is one `error:` line. Its real
# failures still surface as Python exceptions. --debug or the user's own
# TF_CPP_MIN_LOG_LEVEL keep the log.
if "--debug" not in sys.argv[1:]:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bert_hub import _keras  # noqa: F401  pylint: disable=g-import-not-at-top,wrong-import-position
from bert_hub.errors import BertHubError, ExportVerificationError  # pylint: disable=wrong-import-position
from export import lib  # pylint: disable=wrong-import-position

EXIT_BAD_INPUT = 2


def _add_lower_case(p):
  g = p.add_mutually_exclusive_group()
  g.add_argument("--lower-case", dest="lower_case", action="store_true", default=None,
                 help="the tokenizer lower-cases (uncased models); default: from the "
                 "model's tokenizer files, else from its vocab's content")
  g.add_argument("--no-lower-case", dest="lower_case", action="store_false",
                 help="the tokenizer keeps case (cased models)")


def _add_checkpoint(p, *, required=True):
  from bert_hub.checkpoints import FORMATS  # pylint: disable=g-import-not-at-top
  p.add_argument("--checkpoint", required=required, metavar="CKPT",
                 help="TF1/TF2 checkpoint prefix, or Hugging Face directory or .safetensors")
  p.add_argument("--vocab", metavar="VOCAB",
                 help="the checkpoint's WordPiece vocab.txt (default: vocab.txt beside it)")
  p.add_argument("--config", metavar="CONFIG",
                 help="bert_config.json, HF config.json or encoder YAML "
                 "(default: the config beside the checkpoint)")
  p.add_argument("--checkpoint-format", choices=FORMATS,
                 help="override format detection")


def _add_output(p, *, version_help: str, default_version: int):
  p.add_argument("--output", required=True, metavar="DIR",
                 help="models folder; the export becomes DIR/<version>/")
  p.add_argument("--version", type=int, default=default_version, metavar="N",
                 help=version_help)
  p.add_argument("--overwrite", action="store_true",
                 help="replace an existing DIR/<version>")
  _add_lower_case(p)


def _add_serving_precision(p, bfloat16_help: str):
  from export import saved_model  # pylint: disable=g-import-not-at-top
  p.add_argument("--serving-precision", choices=saved_model.SERVING_PRECISIONS,
                 default=saved_model.SERVING_PRECISIONS[0],
                 help=f"bfloat16: {bfloat16_help}")


def _add_text(p, *, default_seq_length: int, seq_length_help: str):
  from bert_hub.preprocessing import NORMALIZATIONS  # pylint: disable=g-import-not-at-top
  p.add_argument("--seq-length", type=int, default=default_seq_length, help=seq_length_help)
  p.add_argument("--normalization", default=NORMALIZATIONS[0], choices=NORMALIZATIONS,
                 help="faithful: ids exactly as BERT's FullTokenizer (default); "
                 "tf_text: TF Text's NFKC case folding, as tf-models' exporter")


def _encoder(args) -> int:
  lib.export_encoder(checkpoint=args.checkpoint, output_dir=args.output,
                     vocab=args.vocab, config=args.config, version=args.version,
                     with_mlm=args.with_mlm, lower_case=args.lower_case,
                     checkpoint_format=args.checkpoint_format, overwrite=args.overwrite,
                     publisher=args.publisher, name=args.name, language=args.language,
                     dataset=args.dataset, whole_word_masking=args.whole_word_masking,
                     serving_precision=args.serving_precision)
  return 0


def _preprocessing(args) -> int:
  lib.export_preprocessing(vocab=args.vocab, checkpoint=args.checkpoint,
                           output_dir=args.output, version=args.version,
                           seq_length=args.seq_length, lower_case=args.lower_case,
                           tokenize_with_offsets=args.tokenize_with_offsets,
                           normalization=args.normalization, overwrite=args.overwrite)
  return 0


def _text_embedding(args) -> int:
  lib.export_text_embedding(checkpoint=args.checkpoint, output_dir=args.output,
                            vocab=args.vocab, config=args.config,
                            seq_length=args.seq_length, version=args.version,
                            lower_case=args.lower_case, normalization=args.normalization,
                            checkpoint_format=args.checkpoint_format,
                            pooling=args.pooling, normalize=args.normalize,
                            overwrite=args.overwrite,
                            serving_precision=args.serving_precision)
  return 0


def _text_classifier(args) -> int:
  lib.export_text_classifier(checkpoint=args.checkpoint, output_dir=args.output,
                             labels=args.labels, vocab=args.vocab, config=args.config,
                             seq_length=args.seq_length, version=args.version,
                             lower_case=args.lower_case,
                             normalization=args.normalization,
                             checkpoint_format=args.checkpoint_format,
                             overwrite=args.overwrite,
                             serving_precision=args.serving_precision)
  return 0


def _batch_predict(args) -> int:
  from export import beam  # pylint: disable=g-import-not-at-top  (the beam extra)
  beam.batch_predict(model=args.model, input_pattern=args.input, output_prefix=args.output,
                     signature=args.signature, text_field=args.text_field,
                     id_field=args.id_field, max_batch_size=args.batch_size,
                     pipeline_args=args.pipeline_args)
  return 0


def _add_batch_predict(sub):
  p = sub.add_parser(
      "batch-predict", help="run a text servable over text or JSON-lines files with "
      "Apache Beam, to Parquet (pip install .[beam]); other options go to Beam "
      "(--runner, --direct_num_workers N, Dataflow/Flink/Spark options)")
  p.add_argument("--model", required=True, metavar="DIR/<v>",
                 help="a text-embedding or text-classifier export")
  p.add_argument("--input", required=True, metavar="GLOB", help="input files")
  p.add_argument("--output", required=True, metavar="PREFIX",
                 help="writes PREFIX-*.parquet and bad lines to PREFIX-errors-*.jsonl")
  p.add_argument("--signature", default="serving_default",
                 help="a signature taking one batch of strings (default serving_default)")
  p.add_argument("--text-field", metavar="F", help="JSON lines: the text's field "
                 "(default: each line is the text, its id FILE:LINE)")
  p.add_argument("--id-field", metavar="F", help="JSON lines: the id's field "
                 "(default FILE:LINE)")
  p.add_argument("--batch-size", type=int, default=64, help="largest batch (default 64)")
  p.set_defaults(func=_batch_predict, pipeline_options=True)


def build_parser() -> argparse.ArgumentParser:
  from export import saved_model, serving_cli, versions  # pylint: disable=g-import-not-at-top
  from export.kinds import text_embedding  # pylint: disable=g-import-not-at-top
  from export.pages import naming  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog="bert-hub-export", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--debug", action="store_true", help="show tracebacks")
  sub = parser.add_subparsers(dest="command", required=True)
  interface_version = dict(
      default_version=versions.LATEST,
      version_help=f"interface version {', '.join(map(str, versions.VERSIONS))} "
      f"(default {versions.LATEST}: dict API)")

  p = sub.add_parser("encoder", help="export a BERT encoder SavedModel")
  _add_checkpoint(p)
  p.add_argument("--with-mlm", action="store_true",
                 help="also export the masked-LM head as the `mlm` subobject (version 3)")
  p.add_argument("--serving-precision", choices=saved_model.SERVING_PRECISIONS,
                 default=saved_model.SERVING_PRECISIONS[0],
                 help="bfloat16: serving_default computes in bfloat16 (float32 outputs; "
                 "faster on CPUs with AVX512-BF16/AMX), float32 kept as serving_float32; "
                 "__call__ (hub.KerasLayer, fine-tuning) stays float32")
  page = p.add_argument_group(
      "model page", "facts the checkpoint cannot tell, for DIR/<version>/README.md "
      "(the handle <publisher>/<name>/<version>) and bert_hub.json")
  page.add_argument("--publisher", default=naming.DEFAULT_PUBLISHER,
                    help=f"default: {naming.DEFAULT_PUBLISHER}")
  page.add_argument("--name", help="default: built the TF Hub way from the config, "
                    "e.g. bert_en_uncased_L-12_H-768_A-12")
  page.add_argument("--language", default=naming.DEFAULT_LANGUAGE,
                    help="language code of the pre-training text "
                    f"(default: {naming.DEFAULT_LANGUAGE})")
  page.add_argument("--dataset", help="the pre-training data, e.g. 'Wikipedia and "
                    "BooksCorpus' (default: not stated; the page says so)")
  page.add_argument("--whole-word-masking", action=argparse.BooleanOptionalAction,
                    default=None, help="pre-trained with whole-word masking (adds "
                    "_wwm to the name) or not (default: not stated)")
  _add_output(p, **interface_version)
  p.set_defaults(func=_encoder)

  p = sub.add_parser("preprocessing", help="export the text preprocessing SavedModel")
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument("--vocab", metavar="VOCAB", help="WordPiece vocab.txt")
  source.add_argument("--checkpoint", metavar="DIR",
                      help="the model's directory: its vocab.txt and tokenizer files")
  _add_text(p, default_seq_length=128,
            seq_length_help="seq_length of the root call and bert_pack_inputs' default")
  p.add_argument("--tokenize-with-offsets", action="store_true",
                 help="add the tokenize_with_offsets subobject")
  _add_output(p, **interface_version)
  p.set_defaults(func=_preprocessing)

  p = sub.add_parser(
      "text-embedding", help="export a sentences-to-embeddings SavedModel "
      "(preprocessing + encoder in one request, for TF Serving)")
  _add_checkpoint(p)
  _add_text(p, default_seq_length=None,
            seq_length_help="tokens per input, 3 to max_position_embeddings (default: "
            "a sentence-transformers model's max_seq_length, else "
            "max_position_embeddings; requests compute on their own lengths)")
  _add_serving_precision(p, "every signature computes in bfloat16 (float32 outputs; "
                         "faster on CPUs with AVX512-BF16/AMX), serving_default in "
                         "float32 kept as serving_float32")
  p.add_argument("--pooling", choices=text_embedding.POOLINGS, default=None,
                 help="the embedding of a checkpoint that does not define its own: "
                 "pooler (default: the encoder's pooled_output), or cls, mean or max "
                 "over the tokens; a sentence-transformers directory (modules.json) "
                 "exports its own pooling, Dense and Normalize modules instead")
  p.add_argument("--normalize", action="store_const", const=True, default=None,
                 help="L2-normalize the embedding (checkpoints without modules.json)")
  _add_output(p, default_version=text_embedding.DEFAULT_VERSION,
              version_help="model version directory, an integer >= 1 (default "
              f"{text_embedding.DEFAULT_VERSION})")
  p.set_defaults(func=_text_embedding)

  from export.kinds import text_classifier  # pylint: disable=g-import-not-at-top
  p = sub.add_parser(
      "text-classifier", help="export a fine-tuned classifier or cross-encoder "
      "(sentences in; labels, probabilities or scores out; :predict and :classify)")
  _add_checkpoint(p)
  p.add_argument("--labels", metavar="A,B,...",
                 help="label names in the order of the head's outputs (default: "
                 "config.json id2label; required for TF1 run_classifier.py checkpoints)")
  _add_text(p, default_seq_length=None,
            seq_length_help="tokens per input, 3 to max_position_embeddings (default: "
            "max_position_embeddings; requests compute on their own lengths)")
  _add_serving_precision(p, "the encoder computes in bfloat16 in every signature "
                         "(float32 outputs; faster on CPUs with AVX512-BF16/AMX), "
                         "serving_default in float32 kept as serving_float32")
  _add_output(p, default_version=text_classifier.DEFAULT_VERSION,
              version_help="model version directory, an integer >= 1 (default "
              f"{text_classifier.DEFAULT_VERSION})")
  p.set_defaults(func=_text_classifier)

  serving_cli.add_subcommands(sub)
  _add_batch_predict(sub)
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args, rest = parser.parse_known_args(argv)
  if rest and not getattr(args, "pipeline_options", False):
    parser.error(f"unrecognized arguments: {' '.join(rest)}")
  args.pipeline_args = rest  # batch-predict: Beam's pipeline options
  try:
    return args.func(args)
  except BertHubError as e:
    if args.debug:
      raise
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except ExportVerificationError as e:  # our bug, not the user's: exit 1
    if args.debug:
      raise
    print(f"error: {e}; nothing was published; please report this with --debug output",
          file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("error: interrupted; nothing was left behind", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
