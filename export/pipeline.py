"""The one orchestration of every export: what happens, in which order.

  run(kind, *, output_dir, version, overwrite, report) -> ExportResult

  1. check     the target DIR/<version> (before any work; kinds check their own
               options when they are made, also before any work)
  2. hash      the checkpoint files, for bert_hub.json, in a thread meanwhile
  3. stage     DIR/.<version>.partial-* (export/publish.py)
  4. build     kind.build(stage, clock) -> Built: the object and its signatures,
               traced as save() traces, so save() reuses them; then
               kind.reference(), the in-memory model run eagerly
  5. save      tf.saved_model.save into the staging directory (then
               kind.after_save(stage) may rewrite what save cannot express)
  6. verify    reload; kind.checks(loaded, reference) measured by verify.check_all
  7. warmup    kind.warmup_requests() written to assets.extra/ and each one run
               through the reloaded signature (the server refuses a version
               whose warmup fails)
  8. page      kind.files(...) -> README.md, bert_hub.json (or nothing)
  9. publish   rename into DIR/<version>: complete, or not there at all

An export kind (export/kinds/*.py) supplies only what is its own: how to
build its object, what to compare after reloading, its warmup requests and
its page. See `ExportKind`.
"""
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from export import publish, verify, warmup

Report = Callable[[str, str], None]


def print_report(stage: str, detail: str) -> None:
  print(f"[{stage}] {detail}", flush=True)


def quiet_report(stage: str, detail: str) -> None:
  del stage, detail


class Clock:
  """A report that adds the seconds since the export started."""

  def __init__(self, report: Report):
    self.start = time.perf_counter()
    self.report = report

  def __call__(self, stage: str, detail: str) -> None:
    self.report(stage, f"{detail} ({time.perf_counter() - self.start:.1f}s)")

  def elapsed(self) -> float:
    return time.perf_counter() - self.start


@dataclasses.dataclass
class ExportResult:
  path: str  # DIR/<version>
  version: int
  seconds: float
  max_diff: Optional[float] = None  # largest scaled difference after reload


@dataclasses.dataclass
class Built:
  """What a kind builds: tf.saved_model.save(obj, stage, signatures)."""
  obj: Any
  signatures: Dict[str, Any]
  temporary_files: Sequence[str] = ()  # written into the stage, removed after save


class ExportKind:
  """What one kind of export supplies to `run`. Subclasses override:

    noun                 e.g. "encoder version 3", for the report
    source_files         files to checksum for bert_hub.json (default none)
    build(stage, clock)  -> Built
    after_save(stage)    changes the written SavedModel's files before it is
                         reloaded (default nothing; e.g. signature method names)
    reference()          what the checks compare with, computed from the
                         in-memory model before it is saved, its tf.functions
                         run eagerly (default None)
    release()            drop the in-memory model before reloading (memory)
    checks(loaded, reference) -> [verify.Check]
    compared             what the checks compare, in words
    warmup_requests()    {signature name: [feeds]}
    files(model_path, verification, digests) -> {file name: text}
  """
  noun = "model"
  compared = ""
  source_files: Sequence[str] = ()

  def build(self, stage: str, clock: Clock) -> Built:
    raise NotImplementedError

  def after_save(self, stage: str) -> None:
    del stage

  def reference(self):
    return None

  def release(self) -> None:
    pass

  def checks(self, loaded, reference) -> List[verify.Check]:
    raise NotImplementedError

  def warmup_requests(self) -> Mapping[str, Sequence[Mapping]]:
    raise NotImplementedError

  def files(self, *, model_path: str, verification: verify.Verification,
            digests: Optional[list]) -> Dict[str, str]:
    del model_path, verification, digests
    return {}


def _gc_frozen(function):
  """Runs `function` with the objects that exist before it frozen for the gc.

  The export's one explicit gc.collect() (to free the model before reloading)
  and Python's automatic collections then scan only the objects the export
  makes, not TensorFlow's and Keras' 350,000: 0.25 s less per collection.
  Nothing is leaked: gc.unfreeze() gives them back to the collector. A caller
  that froze objects itself is left alone.
  """
  @functools.wraps(function)
  def wrapper(*args, **kwargs):
    if gc.get_freeze_count():
      return function(*args, **kwargs)
    gc.freeze()
    try:
      return function(*args, **kwargs)
    finally:
      gc.unfreeze()
  return wrapper


@contextlib.contextmanager
def _in_memory_reference():
  """The in-memory reference runs its tf.functions eagerly, with grappler off.

  It is computed once, on a few sentences: tracing and instantiating each
  signature's graph (the tokenizer, the length buckets, the encoder) costs
  0.2-0.5 s a function and saves nothing on so little data; op by op, the same
  Python code computes the same values (a text-embedding export's reference:
  tiny model 1.8-2.2 s -> 0.55 s, MiniLM 3.1-3.3 s -> 2.1-2.4 s; 2026-12-07). Graphs it still runs
  (concrete functions) are not optimized. The reloaded model, what TF Serving
  runs, is verified as graphs with the optimizations on (oneDNN rewrites
  included).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  before = tf.config.optimizer.get_experimental_options()
  eager_before = tf.config.functions_run_eagerly()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(eager_before)
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def _run_warmup(loaded, requests: Mapping[str, Sequence[Mapping]]) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for name, batch in requests.items():
    for feeds in batch:
      loaded.signatures[name](**{k: tf.constant(v) for k, v in feeds.items()})


@_gc_frozen
def run(kind: ExportKind, *, output_dir: str, version: int, overwrite: bool,
        clock: Clock) -> ExportResult:
  """Exports `kind` as DIR/<version>/ (see the module docstring)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_hub._tf_private import traced_as_saved  # pylint: disable=g-import-not-at-top
  from export.pages import metadata  # pylint: disable=g-import-not-at-top
  from export.saved_model import SAVE_OPTIONS  # pylint: disable=g-import-not-at-top
  publish.check_target(output_dir, version, overwrite=overwrite)
  digests = None
  if kind.source_files:
    # BERT-base: 0.4 GB, about 0.3 s; hashlib releases the GIL.
    hashing = concurrent.futures.ThreadPoolExecutor(1)
    digests = hashing.submit(metadata.file_digests, kind.source_files)
    hashing.shutdown(wait=False)  # the thread ends with its one task
  model_path = publish.version_dir(output_dir, version)
  with publish.staged(output_dir, version, overwrite=overwrite) as stage:
    os.makedirs(stage)
    clock("tracing", kind.noun)
    # Everything traced as save() traces (its cache key includes the save
    # context): save() then reuses these traces instead of tracing every
    # tf.function with an input_signature again (the tokenizer alone takes
    # seconds).
    with traced_as_saved(SAVE_OPTIONS):
      built = kind.build(stage, clock)
    with _in_memory_reference():
      reference = kind.reference()
    clock("writing", stage)
    tf.saved_model.save(built.obj, stage, signatures=built.signatures,
                        options=SAVE_OPTIONS)
    for path in built.temporary_files:
      os.remove(path)  # the SavedModel has its copy in assets/
    kind.after_save(stage)
    del built
    kind.release()
    gc.collect()  # Keras layers hold reference cycles
    clock("verifying", f"reloading; {kind.compared}")
    loaded = tf.saved_model.load(stage)
    verification = verify.check_all(stage, kind.checks(loaded, reference),
                                    compared=kind.compared)
    requests = kind.warmup_requests()
    warmup.write(stage, requests, output_dir=output_dir, report=clock)
    _run_warmup(loaded, requests)
    del loaded
    files = kind.files(model_path=model_path, verification=verification,
                       digests=digests.result() if digests else None)
    if files:
      clock("model page", ", ".join(files))
    for name, text in files.items():
      with open(os.path.join(stage, name), "w", encoding="utf-8") as f:
        f.write(text)
  clock("done", f"{model_path}: largest difference after reload "
        f"{verification.max_diff:.2g} (tolerance {verification.tolerance:g})")
  return ExportResult(path=model_path, version=version, seconds=clock.elapsed(),
                      max_diff=verification.max_diff)
