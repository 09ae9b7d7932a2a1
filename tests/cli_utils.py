"""What the bad-input and fault tests share: one-line CLI errors, processes, tmpfs.

The README's "Bad input and faults" table has one test per row, in the test
module of the code that owns the row (test_checkpoints, test_config, test_cli
(options and vocabularies), test_preprocessing_inputs, test_encoder_inputs,
test_publish).
CLI tests call `export.cli.main` in-process and require exit code 2 and exactly
one stderr line `error: ...` naming what was expected, what was received and
the fix, with no traceback; a few run `python -m export` as a real process.
Faults (SIGKILL, racing exports, a full disk) run exports in subprocesses or on
size-limited file systems (tmpfs; the tests run as root, as in CI).
"""
import contextlib
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.encoder import sample_inputs
from export import cli
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD_VOCAB = ("\n".join(fixtures.TINY_VOCAB) + "\n").encode()


# ------------------------------------------------------------------ helpers


def assert_clear_error(rc, err, *needles):
  """Exit 2 and exactly one stderr line `error: ...expected...received...fix...`."""
  assert "Traceback" not in err, err
  lines = err.rstrip("\n").split("\n")
  assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
  line = lines[0]
  assert line.startswith("error: "), line
  assert rc == cli.EXIT_BAD_INPUT, (rc, line)
  for part in (": expected ", "; received ", "; fix: "):
    assert part in line, f"{part!r} missing from {line}"
  for needle in needles:
    assert needle in line, f"{needle!r} missing from {line}"
  return line


def run_cli(capsys, *argv):
  capsys.readouterr()  # drop what earlier steps printed
  rc = cli.main([str(a) for a in argv])
  return rc, capsys.readouterr().err


def cli_error(capsys, *argv, needles=()):
  rc, err = run_cli(capsys, *argv)
  return assert_clear_error(rc, err, *needles)


def tree_digest(path):
  """A digest of every file name and byte under `path`."""
  h = hashlib.sha256()
  for dirpath, dirnames, filenames in sorted(os.walk(path)):
    dirnames.sort()
    for name in sorted(filenames):
      full = os.path.join(dirpath, name)
      h.update(os.path.relpath(full, path).encode())
      with open(full, "rb") as f:
        h.update(f.read())
  return h.hexdigest()


def assert_loads(path, config=fixtures.tiny_config()):
  """The encoder SavedModel at `path` loads and runs."""
  serve = tf.saved_model.load(path).signatures["serving_default"]
  inputs = sample_inputs(config, batch=2, seq_length=8)
  inputs["segment_ids"] = inputs["input_type_ids"]  # the name in versions 1 and 2
  out = serve(**{k: tf.constant(inputs[k])
                 for k in serve.structured_input_signature[1]})
  assert all(np.all(np.isfinite(v.numpy())) for v in out.values())


def hidden_entries(folder):
  return sorted(n for n in os.listdir(folder) if n.startswith("."))


def subprocess_env():
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("TF_USE_LEGACY_KERAS", None)  # the CLI sets it itself
  return env


def run_export_process(*argv, driver=None, timeout=300):
  """`python -m export ARGV` (or the fault-injecting DRIVER) as a real process."""
  cmd = ([sys.executable, "-m", "export"] if driver is None
         else [sys.executable, "-c", DRIVER, driver])
  return subprocess.run(cmd + [str(a) for a in argv], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
  """Our `error:` lines; TensorFlow's C++ logging may add its own lines (cuInit)."""
  return [line for line in stderr.splitlines() if line.startswith("error: ")]


# Runs `bert-hub-export ARGS` with a fault injected at a named point:
#   python -c DRIVER POINT ARGS...
# kill-before-rename: SIGKILL once the export is written and verified (the staging
#   directory is complete), before it is renamed into place.
# kill-between-renames: --overwrite; SIGKILL after DIR/<v> was set aside as
#   .<v>.old-*, before the new one took its place.
# kill-after-renames: --overwrite; SIGKILL after the new DIR/<v> is in place,
#   before the set-aside old one was deleted.
# barrier=DIR:N: wait before renaming until N processes are ready (files in DIR).
DRIVER = r"""
import os, signal, sys, time
import bert_hub
from export import cli, publish

point = sys.argv[1]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
move = publish._move_into_place
if point == "kill-before-rename":
  publish._move_into_place = lambda *a, **k: die()
elif point in ("kill-between-renames", "kill-after-renames"):
  real_rename = os.rename
  def rename(src, dst):
    real_rename(src, dst)
    if point == "kill-between-renames" and ".old-" in os.path.basename(dst):
      die()
    if point == "kill-after-renames" and ".partial-" in os.path.basename(src):
      die()
  publish.os.rename = rename
elif point.startswith("barrier="):
  folder, n = point[len("barrier="):].rsplit(":", 1)
  def wait_then_move(*a, **k):
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.time() + 120
    while len(os.listdir(folder)) < int(n) and time.time() < deadline:
      time.sleep(0.01)
    return move(*a, **k)
  publish._move_into_place = wait_then_move
sys.exit(cli.main(sys.argv[2:]))
"""


@contextlib.contextmanager
def mounted_tmpfs(path, options):
  """A tmpfs at `path` (we run as root, as CI does); skips if mounting is refused."""
  os.makedirs(path, exist_ok=True)
  r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                     capture_output=True, text=True)
  if r.returncode:
    pytest.skip(f"cannot mount a tmpfs here (mount -t tmpfs -o {options}: "
                f"{r.stderr.strip() or r.returncode}); needs root")
  try:
    yield str(path)
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


def copy_checkpoint(tiny, dest, arrays=None, config_json=None, vocab_tokens=None):
  """A variant of `tiny` in `dest`: other arrays, config or vocab."""
  os.makedirs(dest, exist_ok=True)
  prefix = fixtures.write_tf1_arrays(str(dest / "bert_model.ckpt"),
                                     arrays if arrays is not None else tiny.arrays)
  with open(dest / "bert_config.json", "w") as f:
    json.dump(config_json or fixtures.bert_config_json(tiny.config), f)
  fixtures.write_vocab(dest, vocab_tokens)
  return prefix


def encoder_args(prefix, output, *extra):
  return ["encoder", "--checkpoint", prefix, "--output", output, "--lower-case", *extra]
