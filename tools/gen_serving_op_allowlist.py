"""Writes export/data/serving_ops_allowlist.txt: every op a TF Serving image can load.

TF Serving images build core TensorFlow at the image's own version but embed an
older TensorFlow Text: 2.12.1 when this was written (tensorflow/serving#4057
proposes 2.18.1). A SavedModel that uses a TF Text op added later, e.g.
`TFText>RoundRobinTrim` from `text.RoundRobinTrimmer` (absent from TF Text
2.12.1, present in 2.20.1), loads fine in Python but fails in the server with
"Op type not registered" (tensorflow/serving#2267).
`export.serving.ops.ops_outside_allowlist` checks SavedModels against this list.

This script lists every op registered in the running process, first with core
TensorFlow alone, then after `import tensorflow_text` (which loads all of TF
Text's op libraries), and writes them as two sorted sections under a '#' header
that records the versions and the command. It must run in a side venv that has
exactly the versions embedded in TF Serving, NOT in the project's .venv:

  python3.11 -m venv /tmp/tf212venv
  /tmp/tf212venv/bin/pip install tensorflow==2.12.1 tensorflow-text==2.12.1
  /tmp/tf212venv/bin/python tools/gen_serving_op_allowlist.py \\
      --output export/data/serving_ops_allowlist.txt

Without --output the list goes to stdout. The script refuses other versions
unless --tensorflow-version/--tensorflow-text-version say which ones to expect
(e.g. when TF Serving updates its embedded TF Text).
"""
import argparse
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXPECTED_TENSORFLOW = "2.12.1"
EXPECTED_TENSORFLOW_TEXT = "2.12.1"
OUTPUT_DEFAULT = "export/data/serving_ops_allowlist.txt"


def registered_op_names() -> set[str]:
  """Names of all ops registered in this process (the C API's global op list)."""
  from tensorflow.core.framework import op_def_pb2
  from tensorflow.python.client import pywrap_tf_session as c_api
  buf = c_api.TF_GetAllOpList()
  try:
    op_list = op_def_pb2.OpList()
    op_list.ParseFromString(c_api.TF_GetBuffer(buf))
  finally:
    c_api.TF_DeleteBuffer(buf)
  return {op.name for op in op_list.op}


def render(*, core_ops, text_ops, tf_version, text_version, command) -> str:
  lines = [
      "# Ops a TF Serving image can load: core TensorFlow plus the TensorFlow Text",
      "# it embeds (tensorflow/serving#2267, #4057). One op name per line; lines",
      "# starting with '#' are comments. Read by export/serving/ops.py.",
      f"# Generated with tensorflow=={tf_version} tensorflow-text=={text_version}"
      f" (Python {platform.python_version()}) by:",
      f"#   {command}",
      "# Regenerate: see the docstring of tools/gen_serving_op_allowlist.py.",
      f"# {len(core_ops)} core TensorFlow ops + {len(text_ops)} TensorFlow Text ops"
      f" = {len(core_ops) + len(text_ops)}.",
      "",
      f"# core TensorFlow {tf_version} ({len(core_ops)} ops)",
      *sorted(core_ops),
      "",
      f"# registered by `import tensorflow_text` {text_version} ({len(text_ops)} ops)",
      *sorted(text_ops),
  ]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--output", help="file to write (default: stdout); "
                      f"the committed list is {OUTPUT_DEFAULT}")
  parser.add_argument("--tensorflow-version", default=EXPECTED_TENSORFLOW,
                      help="version this venv must have (default %(default)s)")
  parser.add_argument("--tensorflow-text-version", default=EXPECTED_TENSORFLOW_TEXT,
                      help="version this venv must have (default %(default)s)")
  args = parser.parse_args(argv)

  import tensorflow as tf
  core_ops = registered_op_names()  # Before tensorflow_text registers its ops.
  import tensorflow_text as text
  all_ops = registered_op_names()

  found = (tf.__version__, text.__version__)
  wanted = (args.tensorflow_version, args.tensorflow_text_version)
  if found != wanted:
    print(f"error: this venv has tensorflow=={found[0]} tensorflow-text=={found[1]}, "
          f"expected tensorflow=={wanted[0]} tensorflow-text=={wanted[1]}; "
          "run in the side venv described in this script's docstring, or pass "
          "--tensorflow-version/--tensorflow-text-version", file=sys.stderr)
    return 2

  command = "python tools/gen_serving_op_allowlist.py" + (
      f" --output {args.output}" if args.output else "")
  content = render(core_ops=core_ops, text_ops=all_ops - core_ops,
                   tf_version=found[0], text_version=found[1], command=command)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(content)
    print(f"wrote {args.output}: {len(core_ops)} core + "
          f"{len(all_ops - core_ops)} TF Text ops", file=sys.stderr)
  else:
    sys.stdout.write(content)
  return 0


if __name__ == "__main__":
  sys.exit(main())
