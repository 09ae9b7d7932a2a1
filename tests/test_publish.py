"""Publishing (export/publish.py): DIR/<version> appears complete or not at all.

SIGKILL at each point of an export, racing exports, a full disk, a file size
limit: rows of the README's "Bad input and faults" table.
"""
import glob
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.errors import BertHubError
from export import cli, lib, publish
from tests import fixtures
from tests.cli_utils import (DRIVER, REPO, assert_clear_error, assert_loads, cli_error,
                             copy_checkpoint, encoder_args, error_lines, hidden_entries,
                             mounted_tmpfs, subprocess_env, tree_digest)


# ------------------------------------------------------------------ export processes
#
# Each fault needs its own process to kill, but not its own `import tensorflow`
# (about 10 s each): ONE server process imports bert_hub, export and TensorFlow,
# without running any TensorFlow op (no eager context, so forking is safe), and
# forks a child per export. A child is a real process running `bert-hub-export
# ARGS`: as `python -m export` (mode "cli"), or under tests/cli_utils.py's
# fault-injecting DRIVER, exec'd unchanged (mode "driver"), or with
# RLIMIT_FSIZE set first (mode "fsize"). Its stdout and stderr go to files; the
# server reports its pid and, when asked, its exit status (negative: the signal).

FORK_SERVER = r"""
import json, os, resource, runpy, sys, traceback
proto = os.fdopen(os.dup(1), "w", buffering=1)  # replies; libraries' prints go nowhere
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
import bert_hub
from export import cli, lib, publish  # noqa: F401  (what an export imports)
import tensorflow as tf
import tf_keras  # noqa: F401
from tensorflow.python.eager import context
assert context.context_safe() is None, "no TensorFlow op may run before a fork"
driver = sys.argv[1]


def child(mode, argv, out, err):
  os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
  os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
  os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
  os.close(proto.fileno())
  code = 1
  try:
    if mode == "driver":  # python -c DRIVER POINT ARGS...
      sys.argv = ["-c", *argv]
      exec(compile(driver, "<driver>", "exec"), {"__name__": "__main__"})
    else:  # python -m export ARGS...
      if mode == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
      sys.argv = ["bert-hub-export", *argv]
      runpy.run_module("export", run_name="__main__")
    code = 0
  except SystemExit as e:  # as the interpreter ends on it
    if e.code is None or isinstance(e.code, int):
      code = e.code or 0
    else:
      print(e.code, file=sys.stderr)
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


print("ready", file=proto)
for line in sys.stdin:
  command = json.loads(line)
  if command[0] == "start":
    pid = os.fork()
    if pid == 0:
      child(*command[1:])
    print(pid, file=proto)
  else:  # ["wait", pid]
    _, status = os.waitpid(command[1], 0)
    print(os.waitstatus_to_exitcode(status), file=proto)
"""


class ForkServer:
  """The server above, as this module's fixture `forks`."""

  def __init__(self, folder):
    self.folder = folder
    self.count = 0
    self.outputs = {}  # pid -> (stdout file, stderr file)
    self.log = open(folder / "server.err", "w+")  # pylint: disable=consider-using-with
    self.proc = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER, DRIVER], cwd=REPO, env=subprocess_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
    self._reply("ready", timeout=300)

  def _reply(self, expected=None, timeout=300):
    ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
    line = self.proc.stdout.readline().strip() if ready else ""
    if not line or (expected and line != expected):
      self.log.seek(0)
      raise RuntimeError(f"fork server: {line!r}; stderr:\n{self.log.read()[-6000:]}")
    return line

  def _send(self, *command):
    self.proc.stdin.write(json.dumps(command) + "\n")
    self.proc.stdin.flush()

  def start(self, *argv, mode="cli"):
    """Starts `bert-hub-export ARGV` (mode "driver": ARGV = POINT, ARGS...); its pid."""
    self.count += 1
    out, err = (str(self.folder / f"{self.count}.{n}") for n in ("out", "err"))
    self._send("start", mode, [str(a) for a in argv], out, err)
    pid = int(self._reply())
    self.outputs[pid] = (out, err)
    return pid

  def wait(self, pid, timeout=300):
    """subprocess.CompletedProcess of the child `pid`, once it has ended."""
    self._send("wait", pid)
    try:
      code = int(self._reply(timeout=timeout))
    except RuntimeError:  # a hung export: end it, take the server's reply, and fail
      os.kill(pid, signal.SIGKILL)
      self._reply(timeout=60)
      raise AssertionError(f"bert-hub-export (pid {pid}) ran over {timeout} s") from None
    out, err = self.outputs.pop(pid)
    with open(out, encoding="utf-8") as o, open(err, encoding="utf-8") as e:
      return subprocess.CompletedProcess([pid], code, o.read(), e.read())

  def run(self, *argv, mode="cli", timeout=300):
    return self.wait(self.start(*argv, mode=mode), timeout=timeout)

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=60)
    self.proc.stdout.close()
    self.log.close()


@pytest.fixture(scope="module")
def forks(tmp_path_factory):
  server = ForkServer(tmp_path_factory.mktemp("forks"))
  yield server
  server.close()


# ------------------------------------------------------------------ faults: SIGKILL


def big_checkpoint(folder):
  """A TF1 checkpoint of 25 MB, so that writing its variables takes a while."""
  vocab = fixtures.TINY_VOCAB + [f"w{i}" for i in range(20000 - len(fixtures.TINY_VOCAB))]
  config = fixtures.tiny_config(vocab_size=len(vocab), hidden_size=256,
                                intermediate_size=512)
  prefix, _ = fixtures.write_tf1_checkpoint(folder, config, with_mlm=False)
  fixtures.write_vocab(folder, vocab)
  return prefix


def kill_while_writing_variables(forks, models, prefix):
  """Exports `prefix` as DIR/2 in a process; SIGKILLs it once it is caught (frozen
  with SIGSTOP) with a half-written variables file. Returns what it was writing,
  or None if the window (about 40 ms) was missed."""
  pid = forks.start(*encoder_args(prefix, str(models), "--version", "2"))
  pattern = str(models / ".2.partial-*/variables/variables_temp/*.tempstate*")

  def size(path):
    try:
      return os.path.getsize(path)
    except OSError:  # renamed meanwhile
      return 0

  def running():
    try:
      with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # not yet a zombie
    except OSError:
      return False
  try:
    deadline = time.time() + 300
    while running() and time.time() < deadline:
      if any(size(p) for p in glob.glob(pattern)):
        os.kill(pid, signal.SIGSTOP)  # freeze it mid-write, look, then kill
        return [os.path.relpath(p, models) for p in glob.glob(pattern)] or None
      time.sleep(0.0005)
    return None
  finally:
    try:
      os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    forks.wait(pid)


@pytest.mark.slow  # an export in a process, and one here
def test_sigkill_while_writing_variables(tmp_path, tiny, exported, forks):
  """SIGKILL lands while TensorFlow writes variables/: no DIR/2, DIR/3 intact."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  prefix = big_checkpoint(tmp_path / "big")
  for _ in range(3):  # a busy machine may deschedule us past the window; retry
    caught = kill_while_writing_variables(forks, models, prefix)
    if caught:
      break
    shutil.rmtree(models / "2", ignore_errors=True)  # if the missed export finished
  assert caught, "the process was never caught writing its variables"
  # What the killed process left: a partial staging directory, nothing else.
  assert sorted(os.listdir(models)) == sorted(["3", caught[0].split(os.sep)[0]])
  assert not os.path.exists(models / "2")
  assert tree_digest(models / "3") == before
  assert_loads(str(models / "3"))
  # The next export into DIR removes the stale staging directory and succeeds.
  lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(models), version=2,
                     lower_case=True, report=lib.quiet_report)
  assert sorted(os.listdir(models)) == ["2", "3"]
  assert_loads(str(models / "2"))


@pytest.mark.slow  # an export in a process, and one here
def test_sigkill_before_rename(tmp_path, tiny, exported, forks):
  """Killed with a complete, verified staging directory: it never becomes DIR/2."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  r = forks.run("kill-before-rename", *encoder_args(tiny.prefix, models, "--version", "2"),
                mode="driver")
  assert r.returncode == -signal.SIGKILL, r.stderr
  (stale,) = hidden_entries(models)
  assert stale.startswith(".2.partial-")
  assert os.path.exists(models / stale / "saved_model.pb")  # complete, but not published
  assert not os.path.exists(models / "2")
  assert tree_digest(models / "3") == before
  lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(models), version=2,
                     lower_case=True, report=lib.quiet_report)
  assert sorted(os.listdir(models)) == ["2", "3"]


@pytest.mark.slow  # an export in a process, and one here
def test_sigkill_between_the_renames_of_overwrite(tmp_path, tiny, exported, capsys, forks):
  """--overwrite set DIR/3 aside and died: the next export puts it back."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  other = copy_checkpoint(tiny, tmp_path / "other",
                          arrays=fixtures.tf1_arrays(tiny.config, seed=1, with_mlm=False))
  argv = encoder_args(other, models, "--overwrite")
  r = forks.run("kill-between-renames", *argv, mode="driver")
  assert r.returncode == -signal.SIGKILL, r.stderr
  assert not os.path.exists(models / "3")
  old = [n for n in hidden_entries(models) if n.startswith(".3.old-")]
  assert len(old) == 1 and tree_digest(models / old[0]) == before
  # The next export restores DIR/3 first; without --overwrite it then refuses.
  cli_error(capsys, *encoder_args(other, models),
            needles=("version exists", "already there"))
  assert os.listdir(models) == ["3"] and tree_digest(models / "3") == before
  assert_loads(str(models / "3"))
  # Run again with --overwrite: now it replaces it.
  assert cli.main([str(a) for a in argv]) == 0
  assert os.listdir(models) == ["3"] and tree_digest(models / "3") != before
  assert_loads(str(models / "3"))


@pytest.mark.slow  # an export in a process, and one here
def test_sigkill_after_the_renames_of_overwrite(tmp_path, tiny, exported, forks):
  """The new DIR/3 is in place, the old copy not yet deleted: the next export deletes it."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  other = copy_checkpoint(tiny, tmp_path / "other",
                          arrays=fixtures.tf1_arrays(tiny.config, seed=1, with_mlm=False))
  r = forks.run("kill-after-renames", *encoder_args(other, models, "--overwrite"),
                mode="driver")
  assert r.returncode == -signal.SIGKILL, r.stderr
  assert tree_digest(models / "3") != before  # the new one
  assert_loads(str(models / "3"))
  (old,) = hidden_entries(models)
  assert old.startswith(".3.old-")
  lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(models), version=1,
                     lower_case=True, report=lib.quiet_report)
  assert sorted(os.listdir(models)) == ["1", "3"]


# ------------------------------------------------------------------ faults: races


@pytest.mark.slow  # an export in a process, and one here
def test_two_exports_to_the_same_version(tmp_path, tiny, forks):
  """Both stage and verify, then race to rename: one wins, one gets a clear error."""
  models = tmp_path / "models"
  barrier = tmp_path / "barrier"
  barrier.mkdir()
  argv = encoder_args(tiny.prefix, models)
  pids = [forks.start(f"barrier={barrier}:2", *argv, mode="driver") for _ in range(2)]
  results = [(r.returncode, r.stderr) for r in (forks.wait(pid) for pid in pids)]
  assert len(os.listdir(barrier)) == 2, "both exports reached the rename"
  assert sorted(rc for rc, _ in results) == [0, 2], results
  (loser_err,) = [err for rc, err in results if rc == 2]
  assert "Traceback" not in loser_err
  (line,) = error_lines(loser_err)
  assert_clear_error(2, line, "version exists", "created by another export meanwhile")
  assert os.listdir(models) == ["3"]  # no staging directory left behind
  assert_loads(str(models / "3"))


def test_racing_renames_in_process(tmp_path):
  """The same race without processes: the inner export renames first and wins."""
  with pytest.raises(BertHubError, match="created by another export meanwhile"):
    with publish.staged(str(tmp_path), 3) as first:
      os.makedirs(first)
      open(os.path.join(first, "first"), "w").close()
      with publish.staged(str(tmp_path), 3) as second:
        os.makedirs(second)
        open(os.path.join(second, "second"), "w").close()
  assert os.listdir(tmp_path) == ["3"]
  assert os.listdir(tmp_path / "3") == ["second"]


# ------------------------------------------------------------------ faults: full disk


def fill(mount, leave):
  """Fills the file system at `mount` until `leave` bytes are free."""
  st = os.statvfs(mount)
  free = st.f_bavail * st.f_frsize
  with open(os.path.join(mount, "filler"), "wb") as f:
    f.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("leave,where", [(16 << 10, "/variables/"),
                                         (256 << 10, "/saved_model.pb")])
def test_disk_full(tmp_path, capsys, tiny, exported, leave, where):
  with mounted_tmpfs(tmp_path / "small", "size=4m") as mount:
    models = os.path.join(mount, "models")
    shutil.copytree(exported, os.path.join(models, "3"))
    before = tree_digest(os.path.join(models, "3"))
    fill(mount, leave)
    line = cli_error(capsys, *encoder_args(tiny.prefix, models, "--version", "2"),
                     needles=("disk full", "No space left on device",
                              "nothing was left behind"))
    assert where in line  # the file being written when the space ran out
    assert os.listdir(models) == ["3"]
    assert tree_digest(os.path.join(models, "3")) == before
    assert_loads(os.path.join(models, "3"))


def test_file_size_limit(tmp_path, tiny, exported, forks):
  """RLIMIT_FSIZE (ulimit -f): writes fail with EFBIG; the same clean failure."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")

  # RLIMIT_FSIZE 64 KiB, then `python -m export ARGS` (the fork server's "fsize").
  r = forks.run(*encoder_args(tiny.prefix, models, "--version", "2"), mode="fsize")
  assert r.returncode == 2, r.stderr
  (line,) = error_lines(r.stderr)
  assert_clear_error(2, line, "file size limit", "File too large", "ulimit -f")
  assert "Traceback" not in r.stderr
  assert os.listdir(models) == ["3"]
  assert tree_digest(models / "3") == before
