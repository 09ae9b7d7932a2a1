"""bert-hub-export: BERT checkpoints to TF Hub-style SavedModels (DIR/<version>/).

A thin shell over export/lib.py: parse, validate, delegate, exit code. Errors in
the input print one line `error: ...` (what was expected, what was received,
how to fix it) and exit 2; --debug shows the traceback instead.

  bert-hub-export encoder --checkpoint CKPT --output DIR [--vocab VOCAB]
      [--config CONFIG] [--version 1|2|3] [--with-mlm] [--lower-case|--no-lower-case]
      [--checkpoint-format tf1|tf2|hf] [--overwrite] [--publisher P] [--name N]
      [--language en] [--dataset TEXT] [--whole-word-masking|--no-whole-word-masking]
  bert-hub-export preprocessing --vocab VOCAB --output DIR [--version 3]
      [--seq-length 128] [--lower-case|--no-lower-case] [--tokenize-with-offsets]
      [--normalization faithful|tf_text] [--overwrite]
  bert-hub-export text-embedding --checkpoint CKPT --output DIR [--vocab VOCAB]
      [--config CONFIG] [--seq-length 128] [--version 1] [--lower-case|--no-lower-case]
      [--normalization faithful|tf_text] [--checkpoint-format tf1|tf2|hf] [--overwrite]
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
from bert_hub.errors import BertHubError, ExportVerificationError

EXIT_BAD_INPUT = 2


def _add_lower_case(p):
  g = p.add_mutually_exclusive_group()
  g.add_argument("--lower-case", dest="lower_case", action="store_true", default=None,
                 help="the tokenizer lower-cases (uncased models)")
  g.add_argument("--no-lower-case", dest="lower_case", action="store_false",
                 help="the tokenizer keeps case (cased models)")


def _add_checkpoint(p):
  p.add_argument("--checkpoint", required=True, metavar="CKPT",
                 help="TF1/TF2 checkpoint prefix, or Hugging Face directory or .safetensors")
  p.add_argument("--vocab", metavar="VOCAB",
                 help="the checkpoint's WordPiece vocab.txt (default: vocab.txt beside it)")
  p.add_argument("--config", metavar="CONFIG",
                 help="bert_config.json, HF config.json or encoder YAML "
                 "(default: the config beside the checkpoint)")


def _add_common(p):
  p.add_argument("--output", required=True, metavar="DIR",
                 help="models folder; the export becomes DIR/<version>/")
  p.add_argument("--version", type=int, default=3, choices=None, metavar="N",
                 help="interface version 1, 2 or 3 (default 3: dict API)")
  p.add_argument("--overwrite", action="store_true",
                 help="replace an existing DIR/<version>")
  _add_lower_case(p)


def _encoder(args) -> int:
  from export import lib  # pylint: disable=g-import-not-at-top
  lib.export_encoder(checkpoint=args.checkpoint, output_dir=args.output,
                     vocab=args.vocab, config=args.config, version=args.version,
                     with_mlm=args.with_mlm, lower_case=args.lower_case,
                     checkpoint_format=args.checkpoint_format, overwrite=args.overwrite,
                     publisher=args.publisher, name=args.name, language=args.language,
                     dataset=args.dataset, whole_word_masking=args.whole_word_masking,
                     serving_precision=args.serving_precision)
  return 0


def _preprocessing(args) -> int:
  from export import lib  # pylint: disable=g-import-not-at-top
  lib.export_preprocessing(vocab=args.vocab, output_dir=args.output,
                           version=args.version, seq_length=args.seq_length,
                           lower_case=args.lower_case,
                           tokenize_with_offsets=args.tokenize_with_offsets,
                           normalization=args.normalization, overwrite=args.overwrite)
  return 0


def _text_embedding(args) -> int:
  from export import lib  # pylint: disable=g-import-not-at-top
  lib.export_text_embedding(checkpoint=args.checkpoint, output_dir=args.output,
                            vocab=args.vocab, config=args.config,
                            seq_length=args.seq_length, version=args.version,
                            lower_case=args.lower_case, normalization=args.normalization,
                            checkpoint_format=args.checkpoint_format,
                            overwrite=args.overwrite)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="bert-hub-export", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--debug", action="store_true", help="show tracebacks")
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser("encoder", help="export a BERT encoder SavedModel")
  _add_checkpoint(p)
  p.add_argument("--with-mlm", action="store_true",
                 help="also export the masked-LM head as the `mlm` subobject (version 3)")
  p.add_argument("--serving-precision", choices=("float32", "bfloat16"), default="float32",
                 help="bfloat16: serving_default computes in bfloat16 (float32 outputs; "
                 "faster on CPUs with AVX512-BF16/AMX), float32 kept as serving_float32; "
                 "__call__ (hub.KerasLayer, fine-tuning) stays float32")
  p.add_argument("--checkpoint-format", choices=("tf1", "tf2", "hf"),
                 help="override format detection")
  page = p.add_argument_group(
      "model page", "facts the checkpoint cannot tell, for DIR/<version>/README.md "
      "(the handle <publisher>/<name>/<version>) and bert_hub.json")
  page.add_argument("--publisher", default="bert-hub", help="default: bert-hub")
  page.add_argument("--name", help="default: built the TF Hub way from the config, "
                    "e.g. bert_en_uncased_L-12_H-768_A-12")
  page.add_argument("--language", default="en",
                    help="language code of the pre-training text (default: en)")
  page.add_argument("--dataset", help="the pre-training data, e.g. 'Wikipedia and "
                    "BooksCorpus' (default: not stated; the page says so)")
  page.add_argument("--whole-word-masking", action=argparse.BooleanOptionalAction,
                    default=None, help="pre-trained with whole-word masking (adds "
                    "_wwm to the name) or not (default: not stated)")
  _add_common(p)
  p.set_defaults(func=_encoder)

  p = sub.add_parser("preprocessing", help="export the text preprocessing SavedModel")
  p.add_argument("--vocab", required=True, metavar="VOCAB", help="WordPiece vocab.txt")
  p.add_argument("--seq-length", type=int, default=128,
                 help="seq_length of the root call and bert_pack_inputs' default")
  p.add_argument("--tokenize-with-offsets", action="store_true",
                 help="add the tokenize_with_offsets subobject")
  p.add_argument("--normalization", default="faithful", choices=("faithful", "tf_text"),
                 help="faithful: ids exactly as BERT's FullTokenizer (default); "
                 "tf_text: TF Text's NFKC case folding, as tf-models' exporter")
  _add_common(p)
  p.set_defaults(func=_preprocessing)

  p = sub.add_parser(
      "text-embedding", help="export a sentences-to-embeddings SavedModel "
      "(preprocessing + encoder in one request, for TF Serving)")
  _add_checkpoint(p)
  p.add_argument("--seq-length", type=int, default=128,
                 help="tokens per input, 3 to max_position_embeddings (default 128)")
  p.add_argument("--normalization", default="faithful", choices=("faithful", "tf_text"),
                 help="faithful: ids exactly as BERT's FullTokenizer (default); "
                 "tf_text: TF Text's NFKC case folding")
  p.add_argument("--checkpoint-format", choices=("tf1", "tf2", "hf"),
                 help="override format detection")
  p.add_argument("--output", required=True, metavar="DIR",
                 help="models folder; the export becomes DIR/<version>/")
  p.add_argument("--version", type=int, default=1, metavar="N",
                 help="model version directory, an integer >= 1 (default 1)")
  p.add_argument("--overwrite", action="store_true",
                 help="replace an existing DIR/<version>")
  _add_lower_case(p)
  p.set_defaults(func=_text_embedding)

  for module in ("export.serving_cli",):
    try:
      __import__(module, fromlist=["add_subcommands"]).add_subcommands(sub)
    except ImportError:
      pass
  return parser


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
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
