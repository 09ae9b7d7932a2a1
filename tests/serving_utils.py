"""Runs a SavedModel signature the way TF Serving does, in a fresh process.

TF Serving does not call tf.functions: it loads the SavedModel's "serve"
MetaGraph into a TF1-style session (restoring variables and running the init
op), looks up a SignatureDef, feeds the tensors named by the signature's inputs
and fetches those named by its outputs. Its process has core TensorFlow and the
embedded TF Text ops registered, and nothing else: no Python objects of ours.

`run_signature_in_serving_session` reproduces that with `tf.compat.v1` graph mode
in a child process that imports neither bert_hub nor the test's modules, and
imports tensorflow_text only if the model uses an op that core TensorFlow does
not register. Arrays go in and out through .npz files in a temp directory.
`run_many_in_serving_sessions` runs many signatures of many SavedModels in one
such child (one session per SavedModel): use it wherever a test module serves
more than one signature.

This file is also the child's script (`python serving_utils.py --child ...`), so
at module level it imports only the standard library and numpy.
"""
import json
import os
import subprocess
import sys
import tempfile
from typing import Mapping, Sequence

import numpy as np

_TIMEOUT_SECONDS = 600


def _save_npz(path, requests: Sequence[Mapping[str, np.ndarray]]):
  arrays = {}
  for i, request in enumerate(requests):
    for name, value in request.items():
      arrays[f"{i}:{name}"] = np.asarray(value)
  np.savez(path, **arrays)


def _load_npz(path, count: int) -> list[dict[str, np.ndarray]]:
  requests = [{} for _ in range(count)]
  with np.load(path, allow_pickle=True) as data:  # String tensors are object arrays.
    for key in data.files:
      i, name = key.split(":", 1)
      requests[int(i)][name] = data[key]
  return requests


def run_signature_in_serving_session(saved_model_dir, feeds, signature_name="serving_default",
                                     *, report: dict | None = None):
  """Runs `signature_name` of a SavedModel in a fresh TF1 session, like TF Serving.

  Args:
    saved_model_dir: the SavedModel directory (holding saved_model.pb).
    feeds: input name -> np.ndarray (keys as in the SignatureDef), or a list
      of such dicts to run one after another in the same session (as the
      server replays warmup requests).
    signature_name: the SignatureDef to run.
    report: if given, filled with what the child did:
      {"imported_tensorflow_text": bool, "ops_not_in_core": [...]}.

  Returns:
    Output name -> np.ndarray (strings as bytes objects); a list of such dicts
    if `feeds` was a list.

  Raises:
    RuntimeError: with the child's stderr if loading or running failed.
  """
  many = isinstance(feeds, (list, tuple))
  requests = list(feeds) if many else [feeds]
  with tempfile.TemporaryDirectory(prefix="serving_session_") as tmp:
    inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
    info = os.path.join(tmp, "report.json")
    _save_npz(inputs, requests)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)  # The server has no Keras at all.
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child",
         os.fspath(saved_model_dir), signature_name, inputs, outputs, info,
         str(len(requests))],
        env=env, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS,
        check=False)
    if result.returncode != 0:
      raise RuntimeError(
          f"running {signature_name!r} of {saved_model_dir} in a TF1 session "
          f"failed (exit {result.returncode}):\n{result.stderr[-6000:]}")
    results = _load_npz(outputs, len(requests))
    if report is not None:
      with open(info, encoding="utf-8") as f:
        report.update(json.load(f))
  return results if many else results[0]


def run_many_in_serving_sessions(jobs, *, reports=False):
  """Runs many (saved_model_dir, signature_name, [feeds, ...]) in ONE fresh process.

  As run_signature_in_serving_session runs each, except that all jobs share
  one child process, and the jobs on one SavedModel share one session (as TF
  Serving serves every signature of a version from one session). One process
  start and one load per model instead of one per signature: the test suite's
  serving checks cost seconds, not minutes. The SavedModels that need no op
  outside core TensorFlow are loaded first, BEFORE tensorflow_text is imported
  (only if some model needs it), so each one's report is what
  run_signature_in_serving_session(report=) says for it alone.

  Returns one list of output dicts per job, in the order of `jobs`; with
  reports=True, (those lists, [report per job]), a report being
  {"imported_tensorflow_text": bool, "ops_not_in_core": [...]}.
  """
  with tempfile.TemporaryDirectory(prefix="serving_sessions_") as tmp:
    specs = []
    for i, (path, signature, requests) in enumerate(jobs):
      inputs, outputs = os.path.join(tmp, f"in{i}.npz"), os.path.join(tmp, f"out{i}.npz")
      _save_npz(inputs, requests)
      specs.append([os.fspath(path), signature, inputs, outputs, len(requests)])
    jobs_file, reports_file = (os.path.join(tmp, "jobs.json"),
                               os.path.join(tmp, "reports.json"))
    with open(jobs_file, "w", encoding="utf-8") as f:
      json.dump(specs, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)  # The server has no Keras at all.
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--many", jobs_file, reports_file],
        env=env, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS * 2,
        check=False)
    if result.returncode != 0:
      raise RuntimeError(f"running {len(jobs)} signatures in TF1 sessions failed "
                         f"(exit {result.returncode}):\n{result.stderr[-6000:]}")
    results = [_load_npz(spec[3], spec[4]) for spec in specs]
    if not reports:
      return results
    with open(reports_file, encoding="utf-8") as f:
      by_path = json.load(f)
    return results, [by_path[spec[0]] for spec in specs]


def _ops_not_in_core(saved_model_dir) -> list:
  """Op types of the SavedModel that core TensorFlow does not register."""
  from tensorflow.core.protobuf import saved_model_pb2
  from tensorflow.python.framework import op_def_registry

  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  op_types, functions = set(), set()
  for meta_graph in saved_model.meta_graphs:
    op_types.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      functions.add(function.signature.name)
      op_types.update(node.op for node in function.node_def)
  return sorted(op for op in op_types - functions if op_def_registry.get(op) is None)


def _run_in_session(sess, meta_graph, signature_name, requests) -> list:
  signature = meta_graph.signature_def[signature_name]
  fetches = {name: info.name for name, info in signature.outputs.items()}
  results = []
  for request in requests:
    if set(request) != set(signature.inputs):
      raise ValueError(f"feeds {sorted(request)} do not match the signature's "
                       f"inputs {sorted(signature.inputs)}")
    feed_dict = {signature.inputs[name].name: value for name, value in request.items()}
    results.append(sess.run(fetches, feed_dict=feed_dict))
  return results


def _child(saved_model_dir, signature_name, inputs, outputs, info, count) -> int:
  """The child process: TensorFlow alone, as in the model server."""
  import tensorflow as tf
  not_in_core = _ops_not_in_core(saved_model_dir)
  if not_in_core:
    import tensorflow_text  # noqa: F401  (the server has TF Text ops registered)
  requests = _load_npz(inputs, count)
  with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], saved_model_dir)
    results = _run_in_session(sess, meta_graph, signature_name, requests)
  _save_npz(outputs, results)
  with open(info, "w", encoding="utf-8") as f:
    json.dump({"imported_tensorflow_text": bool(not_in_core),
               "ops_not_in_core": not_in_core}, f)
  return 0


def _many_child(jobs_file, reports_file) -> int:
  """run_many_in_serving_sessions' child: one session per SavedModel, those
  without ops outside core TensorFlow first (before tensorflow_text loads)."""
  import tensorflow as tf
  with open(jobs_file, encoding="utf-8") as f:
    specs = json.load(f)
  paths = list(dict.fromkeys(spec[0] for spec in specs))  # first-seen order
  not_in_core = {path: _ops_not_in_core(path) for path in paths}
  paths.sort(key=lambda path: bool(not_in_core[path]))  # stable
  reports, imported = {}, False
  for path in paths:
    if not_in_core[path] and not imported:
      import tensorflow_text  # noqa: F401  (the server has TF Text ops registered)
      imported = True
    reports[path] = {"imported_tensorflow_text": imported,
                     "ops_not_in_core": not_in_core[path]}
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
      meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
      for _, signature, inputs, outputs, count in (s for s in specs if s[0] == path):
        _save_npz(outputs, _run_in_session(sess, meta_graph, signature,
                                           _load_npz(inputs, count)))
  with open(reports_file, "w", encoding="utf-8") as f:
    json.dump(reports, f)
  return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--many"]:
  sys.exit(_many_child(sys.argv[2], sys.argv[3]))

if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
  _dir, _signature, _inputs, _outputs, _info, _count = sys.argv[2:8]
  sys.exit(_child(_dir, _signature, _inputs, _outputs, _info, int(_count)))


def load_example(name):
  """The module examples/<name>.py (the examples are scripts, not a package)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"example_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
