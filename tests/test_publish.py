"""Publishing (export/publish.py): DIR/<version> appears complete or not at all.

SIGKILL at each point of an export, racing exports, a full disk, a file size
limit: rows of the README's "Bad input and faults" table.
"""
import glob
import os
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
                             mounted_tmpfs, run_export_process, subprocess_env,
                             tree_digest)


# ------------------------------------------------------------------ faults: SIGKILL


def big_checkpoint(folder):
  """A TF1 checkpoint of 25 MB, so that writing its variables takes a while."""
  vocab = fixtures.TINY_VOCAB + [f"w{i}" for i in range(20000 - len(fixtures.TINY_VOCAB))]
  config = fixtures.tiny_config(vocab_size=len(vocab), hidden_size=256,
                                intermediate_size=512)
  prefix, _ = fixtures.write_tf1_checkpoint(folder, config, with_mlm=False)
  fixtures.write_vocab(folder, vocab)
  return prefix


def kill_while_writing_variables(models, prefix):
  """Exports `prefix` as DIR/2 in a process; SIGKILLs it once it is caught (frozen
  with SIGSTOP) with a half-written variables file. Returns what it was writing,
  or None if the window (about 40 ms) was missed."""
  proc = subprocess.Popen(
      [sys.executable, "-m", "export"] + encoder_args(prefix, str(models), "--version", "2"),
      cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  pattern = str(models / ".2.partial-*/variables/variables_temp/*.tempstate*")

  def size(path):
    try:
      return os.path.getsize(path)
    except OSError:  # renamed meanwhile
      return 0
  try:
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
      if any(size(p) for p in glob.glob(pattern)):
        proc.send_signal(signal.SIGSTOP)  # freeze it mid-write, look, then kill
        return [os.path.relpath(p, models) for p in glob.glob(pattern)] or None
      time.sleep(0.0005)
    return None
  finally:
    proc.kill()
    proc.wait()


@pytest.mark.slow  # a subprocess export or two (about 15 s)
def test_sigkill_while_writing_variables(tmp_path, tiny, exported):
  """SIGKILL lands while TensorFlow writes variables/: no DIR/2, DIR/3 intact."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  prefix = big_checkpoint(tmp_path / "big")
  for _ in range(3):  # a busy machine may deschedule us past the window; retry
    caught = kill_while_writing_variables(models, prefix)
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


@pytest.mark.slow  # a subprocess export or two (about 15 s)
def test_sigkill_before_rename(tmp_path, tiny, exported):
  """Killed with a complete, verified staging directory: it never becomes DIR/2."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  r = run_export_process(*encoder_args(tiny.prefix, models, "--version", "2"),
                         driver="kill-before-rename")
  assert r.returncode == -signal.SIGKILL, r.stderr
  (stale,) = hidden_entries(models)
  assert stale.startswith(".2.partial-")
  assert os.path.exists(models / stale / "saved_model.pb")  # complete, but not published
  assert not os.path.exists(models / "2")
  assert tree_digest(models / "3") == before
  lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(models), version=2,
                     lower_case=True, report=lib.quiet_report)
  assert sorted(os.listdir(models)) == ["2", "3"]


@pytest.mark.slow  # a subprocess export or two (about 15 s)
def test_sigkill_between_the_renames_of_overwrite(tmp_path, tiny, exported, capsys):
  """--overwrite set DIR/3 aside and died: the next export puts it back."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  other = copy_checkpoint(tiny, tmp_path / "other",
                          arrays=fixtures.tf1_arrays(tiny.config, seed=1, with_mlm=False))
  argv = encoder_args(other, models, "--overwrite")
  r = run_export_process(*argv, driver="kill-between-renames")
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


@pytest.mark.slow  # a subprocess export or two (about 15 s)
def test_sigkill_after_the_renames_of_overwrite(tmp_path, tiny, exported):
  """The new DIR/3 is in place, the old copy not yet deleted: the next export deletes it."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  other = copy_checkpoint(tiny, tmp_path / "other",
                          arrays=fixtures.tf1_arrays(tiny.config, seed=1, with_mlm=False))
  r = run_export_process(*encoder_args(other, models, "--overwrite"),
                         driver="kill-after-renames")
  assert r.returncode == -signal.SIGKILL, r.stderr
  assert tree_digest(models / "3") != before  # the new one
  assert_loads(str(models / "3"))
  (old,) = hidden_entries(models)
  assert old.startswith(".3.old-")
  lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(models), version=1,
                     lower_case=True, report=lib.quiet_report)
  assert sorted(os.listdir(models)) == ["1", "3"]


# ------------------------------------------------------------------ faults: races


@pytest.mark.slow  # a subprocess export or two (about 15 s)
def test_two_exports_to_the_same_version(tmp_path, tiny):
  """Both stage and verify, then race to rename: one wins, one gets a clear error."""
  models = tmp_path / "models"
  barrier = tmp_path / "barrier"
  barrier.mkdir()
  argv = encoder_args(tiny.prefix, models)
  procs = [subprocess.Popen(
      [sys.executable, "-c", DRIVER, f"barrier={barrier}:2"] + [str(a) for a in argv],
      cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for _ in range(2)]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  for p in procs:
    p.stdout.close()
    p.stderr.close()
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


def test_file_size_limit(tmp_path, tiny, exported):
  """RLIMIT_FSIZE (ulimit -f): writes fail with EFBIG; the same clean failure."""
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")

  limited = ("import resource, runpy, sys; "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10)); "
             "sys.argv[0] = 'bert-hub-export'; runpy.run_module('export', run_name='__main__')")
  r = subprocess.run([sys.executable, "-c", limited] + [str(a) for a in encoder_args(
      tiny.prefix, models, "--version", "2")], cwd=REPO, env=subprocess_env(),
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 2, r.stderr
  (line,) = error_lines(r.stderr)
  assert_clear_error(2, line, "file size limit", "File too large", "ulimit -f")
  assert "Traceback" not in r.stderr
  assert os.listdir(models) == ["3"]
  assert tree_digest(models / "3") == before
