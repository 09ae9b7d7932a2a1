"""Can TF Serving load a SavedModel? Its op types against what the server registers.

  saved_model_op_types(path) -> set[str]
  ops_outside_allowlist(path, *, allowlist_path=None) -> list[str]
  ops_outside_core_tensorflow(path) -> list[str]
  serving_op_allowlist(path=None) -> frozenset[str]
  allowlist_versions(path=None) -> str      e.g. "tensorflow==2.12.1 tensorflow-text==2.12.1"
  core_tensorflow() -> (version, op names)  of this Python's TensorFlow alone
                                            (asked once, kept: bert_hub/cache.py)

Why an allowlist: TF Serving images build core TensorFlow at their own version
but embed TensorFlow Text 2.12.1 (tensorflow/serving#4057). A model that uses a
newer TF Text op, e.g. `TFText>RoundRobinTrim` from `text.RoundRobinTrimmer`,
loads in Python but the server refuses it: "Op type not registered"
(tensorflow/serving#2267). `export/data/serving_ops_allowlist.txt` lists every
op of tensorflow==2.12.1 + tensorflow-text==2.12.1;
`tools/gen_serving_op_allowlist.py` regenerates it. The core part is
conservative: a core op added after TF 2.12 would be reported although a newer
server image has it (measured: a tf-models-official BertEncoder saved by TF 2.20
uses none).
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import functools
import hashlib
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

from bert_hub import cache
from bert_hub.errors import BertHubError
from export.serving import files

ALLOWLIST_PATH = (pathlib.Path(__file__).resolve().parents[1] / "data" /
                  "serving_ops_allowlist.txt")


def saved_model_op_types(path) -> set[str]:
  """Every op type a SavedModel's graph uses, as TF Serving must resolve them.

  Args:
    path: a SavedModel directory (the one holding `saved_model.pb`).

  Returns:
    The `op` of every node in every MetaGraph's graph_def and in every function
    of its function library, e.g. {"MatMul", "ReadVariableOp",
    "FastWordpieceTokenizeWithOffsets", ...}. Calls of library functions (ops
    named like `__inference_call_123`) are left out: they are functions of the
    SavedModel itself, not registered ops.
  """
  op_types, function_names = set(), set()
  for meta_graph in files.read_saved_model(path).meta_graphs:
    graph = meta_graph.graph_def
    op_types.update(node.op for node in graph.node)
    for function in graph.library.function:
      function_names.add(function.signature.name)
      op_types.update(node.op for node in function.node_def)
  return op_types - function_names


@functools.lru_cache(maxsize=None)
def serving_op_allowlist(path=None) -> frozenset[str]:
  """The op names in the allowlist file (default: ALLOWLIST_PATH).

  The file has one op name per line; blank lines and lines starting with '#'
  are ignored. See `tools/gen_serving_op_allowlist.py` for how it is made.

  Raises:
    BertHubError: if there is no such file.
  """
  path = pathlib.Path(path or ALLOWLIST_PATH)
  if not path.is_file():
    raise BertHubError(
        "no op allowlist", expected=f"a file at {path}", received="nothing there",
        fix="run tools/gen_serving_op_allowlist.py (see its docstring)")
  lines = path.read_text(encoding="utf-8").splitlines()
  return frozenset(line.strip() for line in lines
                   if line.strip() and not line.lstrip().startswith("#"))


def allowlist_versions(path=None) -> str:
  """The versions an allowlist was made with, from its '# Generated with' header.

  E.g. 'tensorflow==2.12.1 tensorflow-text==2.12.1'; 'the allowlist' if the
  header does not say.
  """
  text = pathlib.Path(path or ALLOWLIST_PATH).read_text(encoding="utf-8")
  found = re.search(r"^# Generated with (\S+ \S+)", text, flags=re.M)
  return found.group(1) if found else "the allowlist"


def ops_outside_allowlist(path, *, allowlist_path=None) -> list[str]:
  """Op types of the SavedModel that a TF Serving image cannot load, sorted.

  Args:
    path: a SavedModel directory.
    allowlist_path: an allowlist file; default ALLOWLIST_PATH (core TensorFlow
      2.12.1 + TensorFlow Text 2.12.1, as embedded in TF Serving).

  Returns:
    The op types not in the allowlist, e.g. ["TFText>RoundRobinTrim"] for a
    model that uses `text.RoundRobinTrimmer`; [] if the server can load them all.
  """
  return sorted(saved_model_op_types(path) - serving_op_allowlist(allowlist_path))


# Runs in a fresh process; the private TensorFlow call is in bert_hub/_tf_private.py.
_LIST_CORE_OPS = """
import sys
from bert_hub._tf_private import registered_op_names
import tensorflow
names = registered_op_names()
assert "tensorflow_text" not in sys.modules, "an op library was loaded"
print(tensorflow.__version__)
print("\\n".join(sorted(names)))
"""


_CORE_OPS_HEADER = "bert_hub core TensorFlow ops"


def _core_ops_file() -> str:
  """The cache file of core_tensorflow() (bert_hub/cache.py): one per Python
  and TensorFlow installation (its package's path, size and time: a
  reinstall gets a file of its own)."""
  spec = importlib.util.find_spec("tensorflow")
  origin = spec.origin if spec and spec.origin else "none"
  stat = os.stat(origin) if os.path.exists(origin) else None
  key = "\0".join([os.path.realpath(sys.executable), origin,
                   f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""])
  return cache.file_path(
      f"core_ops-{hashlib.sha256(key.encode()).hexdigest()[:16]}.txt")


def _read_core_ops(path):
  """(version, names) from a kept file; None if it is missing or damaged."""
  try:
    header, version, *names = pathlib.Path(path).read_text(encoding="utf-8").split("\n")
  except (OSError, UnicodeDecodeError, ValueError):
    return None
  names = [name for name in names if name]
  if header != _CORE_OPS_HEADER or not version or not names:
    return None
  return version, frozenset(names)


@functools.lru_cache(maxsize=None)
def core_tensorflow() -> tuple[str, frozenset[str]]:
  """(version, op names) of this Python's TensorFlow without any op libraries.

  Asked in a fresh process (about 6 s): this one may have imported
  tensorflow_text (or another op library), and a loaded op library cannot be
  unloaded. The answer is kept in the cache folder (bert_hub/cache.py), so
  later processes read it instead.

  Raises:
    RuntimeError: with the child's stderr if listing the ops failed.
  """
  path = _core_ops_file()
  kept = _read_core_ops(path)
  if kept:
    return kept
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-c", _LIST_CORE_OPS], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"listing core TensorFlow ops failed:\n{result.stderr}")
  version, *names = result.stdout.split()
  text = "\n".join([_CORE_OPS_HEADER, version] + sorted(names)) + "\n"
  cache.keep(path, lambda f: f.write(text.encode("utf-8")))
  return version, frozenset(names)


def ops_outside_core_tensorflow(path) -> list[str]:
  """Op types of the SavedModel that plain `import tensorflow` does not register.

  These need an op library loaded first: in Python `import tensorflow_text`, in
  TF Serving its embedded TF Text. Compared against core_tensorflow().

  Returns:
    Sorted op types, e.g. ["FastWordpieceTokenizeWithOffsets"]; [] for a model
    that core TensorFlow runs by itself.
  """
  return sorted(saved_model_op_types(path) - core_tensorflow()[1])
