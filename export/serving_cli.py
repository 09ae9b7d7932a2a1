"""The `inspect` and `serving-config` subcommands of bert-hub-export.

Thin: parse, delegate to export/serving.py, print. `export/cli.py` calls
`add_subcommands(subparsers)`; each subcommand sets `func(args) -> int`.

  bert-hub-export inspect models/bert_en_uncased/3
  bert-hub-export serving-config --model bert=models/bert_en_uncased \\
      --model preprocess=models/bert_en_uncased_preprocess --output serving/
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import argparse
import sys

from bert_hub.errors import BertHubError


def _model_arg(text: str) -> tuple[str, str]:
  name, sep, path = text.partition("=")
  if not sep or not name or not path:
    raise argparse.ArgumentTypeError(
        f"expected NAME=DIR, e.g. bert=models/bert_en_uncased; received {text!r}")
  return name, path


def _version_policy_arg(text: str):
  if text in ("latest", "all"):
    return text
  kind, sep, numbers = text.partition(":")
  try:
    if kind == "specific" and sep and numbers:
      return [int(n) for n in numbers.split(",")]
  except ValueError:
    pass
  raise argparse.ArgumentTypeError(
      f"expected latest, all or specific:1,3; received {text!r}")


def run_inspect(args) -> int:
  from export import serving
  sys.stdout.write(serving.inspect_saved_model(args.path))
  return 0


def run_serving_config(args) -> int:
  from export import serving
  written = serving.write_serving_config(
      models=args.model, path=args.output, version_policy=args.version_policy,
      batching=args.batching, num_batch_threads=args.num_batch_threads)
  print(f"wrote {written.models_config}")
  if written.batching_parameters:
    print(f"wrote {written.batching_parameters}")
  print("start the server with:\n  " + " \\\n    ".join(written.command))
  return 0


def add_subcommands(subparsers) -> None:
  """Adds `inspect` and `serving-config` to an argparse subparsers object."""
  inspect = subparsers.add_parser(
      "inspect", help="describe a SavedModel: signatures, objects, variables, ops",
      description="Describe a SavedModel from its files (no op libraries needed): "
      "signatures with dtypes and shapes, top-level objects, variables, and ops "
      "that core TensorFlow or a TF Serving image cannot load.")
  inspect.add_argument("path", help="SavedModel directory (holding saved_model.pb)")
  inspect.set_defaults(func=run_inspect)

  config = subparsers.add_parser(
      "serving-config", help="write models.config and batching_parameters.txt "
      "for tensorflow_model_server",
      description="Write a TF Serving models.config (and batching parameters) for "
      "one or more exported models, and print the server command line.")
  config.add_argument("--model", action="append", required=True, type=_model_arg,
                      metavar="NAME=DIR",
                      help="model name and base directory holding version dirs "
                      "1/, 2/, ...; repeat for several models")
  config.add_argument("--output", required=True, metavar="DIR",
                      help="directory to write models.config into")
  config.add_argument("--version-policy", default="latest", type=_version_policy_arg,
                      metavar="latest|all|specific:1,3",
                      help="versions to serve (default: %(default)s)")
  config.add_argument("--no-batching", dest="batching", action="store_false",
                      help="do not write batching_parameters.txt")
  config.add_argument("--num-batch-threads", type=int, default=None, metavar="N",
                      help="batch threads = the server's CPU cores "
                      "(default: this machine's)")
  config.set_defaults(func=run_serving_config)


def main(argv=None) -> int:
  """Standalone entry point, for use until export/cli.py wires the subcommands in."""
  parser = argparse.ArgumentParser(prog="bert-hub-serving", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_subcommands(parser.add_subparsers(dest="command", required=True))
  args = parser.parse_args(argv)
  try:
    return args.func(args)
  except BertHubError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
