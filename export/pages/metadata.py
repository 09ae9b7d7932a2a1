"""The parts of bert_hub.json every export shares, and writing nothing else.

Every export with a page writes `bert_hub.json` beside its SavedModel: the
machine-readable record. Each kind adds its own keys to `common(...)`:

  bert_hub_metadata   the file's format number (METADATA_FORMAT)
  kind                "encoder", "text-embedding", ...
  checkpoint          path, format, and size and SHA-256 of each file read
  packages            versions of the stack that wrote it
  serving_precision   "float32", or "bfloat16": the signatures TF Serving calls
                      compute in bfloat16 (--serving-precision)
  verification        what was compared after reload, and the largest difference
  exported_at         UTC time
"""
import datetime
import hashlib
import importlib.metadata
import json
import os
from typing import Optional, Sequence

PAGE_FILE = "README.md"
METADATA_FILE = "bert_hub.json"
METADATA_FORMAT = 1  # bump when bert_hub.json changes incompatibly
PACKAGES = ("tensorflow", "tensorflow-text", "tf-keras", "tensorflow-hub",
            "tf-models-official", "bert-hub")


def package_versions(names: Sequence[str] = PACKAGES) -> dict:
  """Installed versions of `names` (None for a package not installed)."""
  out = {}
  for name in names:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def file_digest(path: str) -> dict:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return dict(path=os.path.abspath(path), bytes=os.path.getsize(path),
              sha256=h.hexdigest())


def file_digests(paths) -> list:
  """[file_digest(path) for each path]."""
  return [file_digest(path) for path in paths]


def common(*, kind: str, source, verification: dict, serving_precision: str = "float32",
           packages: Optional[dict] = None, digests: Optional[list] = None) -> dict:
  """The keys every bert_hub.json has; `source` is a checkpoints.Weights or None."""
  out = {"bert_hub_metadata": METADATA_FORMAT, "kind": kind,
         "serving_precision": serving_precision}
  if source is not None:
    out["checkpoint"] = {
        "path": os.path.abspath(source.source),
        "format": source.format,
        # as stored (bfloat16, float16 ...); the SavedModel's weights are float32
        "dtype": getattr(source, "dtype", "float32"),
        "pooler": getattr(source, "has_pooler", True),  # False: no pooled_output
        "files": file_digests(source.files) if digests is None else digests,
    }
  out["packages"] = package_versions() if packages is None else packages
  out["verification"] = dict(verification)
  out["exported_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
  return out


def precision_section(serving_precision: str) -> str:
  """The page's words on --serving-precision bfloat16 ("" for float32): every kind
  keeps serving_default in float32 as FLOAT32_SIGNATURE, and its object API."""
  if serving_precision == "float32":
    return ""
  from export.saved_model import FLOAT32_SIGNATURE  # pylint: disable=g-import-not-at-top
  return (f"\n## Serving precision\n\nExported with `--serving-precision "
          f"{serving_precision}`: the signatures TF Serving calls compute the encoder in "
          f"{serving_precision} (float32 inputs and outputs), its projections on "
          f"{serving_precision} copies of their weights stored beside the float32 ones. "
          f"`{FLOAT32_SIGNATURE}` is `serving_default` computed in float32, and the "
          f"Python object API (fine-tuning) stays float32.\n")


def dumps(meta: dict) -> str:
  return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
