"""What bert_hub computes once per machine and keeps between processes.

  path = cache.file_path("unicode_tables-<key>.npz")
  cache.keep(path, lambda f: np.savez(f, **arrays))   # complete or not there

The folder is $BERT_HUB_CACHE, else $XDG_CACHE_HOME/bert_hub, else
~/.cache/bert_hub; anything in it may be deleted at any time. Kept there: the
faithful tokenizer's Unicode tables (bert_hub/preprocessing/unicode_tables.py)
and the op names of core TensorFlow (export/serving/ops.py). A file's name
holds what its content depends on, so a reader either finds the right file or
none; readers treat a damaged file as a missing one.
"""
import os
from typing import BinaryIO, Callable


def file_path(name: str) -> str:
  """The path of `name` in the cache folder (which may not exist yet)."""
  root = os.environ.get("BERT_HUB_CACHE") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bert_hub")
  return os.path.join(root, name)


def keep(path: str, write: Callable[[BinaryIO], None]) -> bool:
  """Writes a cache file: `write(f)` into a temporary name, then renamed, so
  that processes that race read a complete file or none.

  Returns:
    Whether it was kept; False if the folder cannot be written (a read-only
    home, say): the caller computes again next time, nothing fails.
  """
  temporary = f"{path}.{os.getpid()}.tmp"
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(temporary, "wb") as f:
      write(f)
    os.replace(temporary, path)
  except OSError:
    try:
      os.remove(temporary)
    except OSError:
      pass
    return False
  return True
