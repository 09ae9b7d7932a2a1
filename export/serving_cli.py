"""The `inspect` and `serving-config` subcommands of bert-hub-export.

Thin: parse, delegate to export/serving/ (inspect.py, server_config.py), print.
`export/cli.py` calls `add_subcommands(subparsers)`; each subcommand sets
`func(args) -> int`, and cli.py prints its errors and picks the exit code.

  bert-hub-export inspect models/bert_en_uncased/3
  bert-hub-export serving-config --model bert=models/bert_en_uncased \\
      --model preprocess=models/bert_en_uncased_preprocess --output serving/
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import argparse
import sys


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
  """Prints the report of export/serving/inspect.py on args.path."""
  from export.serving import inspect  # pylint: disable=g-import-not-at-top
  sys.stdout.write(inspect.inspect_saved_model(args.path))
  return 0


def run_serving_config(args) -> int:
  """Writes models.config (and batching parameters); prints them and the command."""
  from export.serving import server_config  # pylint: disable=g-import-not-at-top
  written = server_config.write_serving_config(
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

