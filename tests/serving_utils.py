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
Each child is forked from a server process (one per test process, started on
first use) that has imported tensorflow and nothing else: a fresh process
without paying TensorFlow's import (about 8 s of CPU) each time.
`run_many_in_serving_sessions` runs many signatures of many SavedModels in one
such child (one session per SavedModel): use it wherever a test module serves
more than one signature.

This file is also the server's and the child's script (`python serving_utils.py
--fork-server`, `--child ...`, `--many ...`), so at module level it imports only
the standard library and numpy.
"""
import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import traceback
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
    code, stderr = _run_child(
        ["--child", os.fspath(saved_model_dir), signature_name, inputs, outputs, info,
         str(len(requests))], timeout=_TIMEOUT_SECONDS)
    if code != 0:
      raise RuntimeError(
          f"running {signature_name!r} of {saved_model_dir} in a TF1 session "
          f"failed (exit {code}):\n{stderr[-6000:]}")
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
    code, stderr = _run_child(["--many", jobs_file, reports_file],
                              timeout=_TIMEOUT_SECONDS * 2)
    if code != 0:
      raise RuntimeError(f"running {len(jobs)} signatures in TF1 sessions failed "
                         f"(exit {code}):\n{stderr[-6000:]}")
    results = [_load_npz(spec[3], spec[4]) for spec in specs]
    if not reports:
      return results
    with open(reports_file, encoding="utf-8") as f:
      by_path = json.load(f)
    return results, [by_path[spec[0]] for spec in specs]


class _ForkServer:
  """`python serving_utils.py --fork-server`: imports tensorflow, then forks one
  child per request line (["--child" | "--many", args..., stderr file]) and
  answers with its exit code."""

  def __init__(self):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)  # The server has no Keras at all.
    self.log = tempfile.TemporaryFile("w+")  # pylint: disable=consider-using-with
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, os.path.abspath(__file__), "--fork-server"], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
    self.reply(timeout=300)  # "ready"

  def reply(self, timeout):
    ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
    line = self.proc.stdout.readline().strip() if ready else ""
    if not line:
      self.log.seek(0)
      raise RuntimeError(f"serving fork server: no answer in {timeout} s; its "
                         f"stderr:\n{self.log.read()[-6000:]}")
    return line

  def run(self, args, timeout):
    with tempfile.NamedTemporaryFile("w+", suffix=".err") as err:
      self.proc.stdin.write(json.dumps(list(args) + [err.name]) + "\n")
      self.proc.stdin.flush()
      code = int(self.reply(timeout))
      return code, err.read()

  def close(self):
    self.proc.kill()
    self.proc.wait()
    self.log.close()


_SERVER = []  # the fork server of this process, once started


def _run_child(args, *, timeout):
  """(exit code, stderr) of a child running `args` (--child / --many), forked."""
  if not _SERVER:
    _SERVER.append(_ForkServer())
    atexit.register(_SERVER[0].close)
  try:
    return _SERVER[0].run(args, timeout)
  except (RuntimeError, OSError, ValueError):  # hung or dead: a new server next time
    _SERVER.pop().close()
    raise


def _fork_server() -> int:
  import tensorflow  # noqa: F401  pylint: disable=unused-import  (what every child needs)
  print("ready", flush=True)
  for line in sys.stdin:
    *args, err = json.loads(line)
    pid = os.fork()
    if pid == 0:
      code = 1
      try:
        fd = os.open(err, os.O_WRONLY | os.O_TRUNC)
        os.dup2(fd, 2)
        os.dup2(fd, 1)  # the server's stdout is its answers
        sys.stdin.close()
        code = _dispatch(args)
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
      finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # pylint: disable=protected-access
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
  return 0


def _dispatch(args) -> int:
  if args[0] == "--many":
    return _many_child(args[1], args[2])
  _dir, _signature, _inputs, _outputs, _info, _count = args[1:7]
  return _child(_dir, _signature, _inputs, _outputs, _info, int(_count))


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


if __name__ == "__main__" and sys.argv[1:2] == ["--fork-server"]:
  sys.exit(_fork_server())

if __name__ == "__main__" and sys.argv[1:2] in (["--many"], ["--child"]):
  sys.exit(_dispatch(sys.argv[1:]))


def load_example(name):
  """The module examples/<name>.py (the examples are scripts, not a package)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"example_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
