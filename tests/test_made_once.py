"""tests/conftest.py: made_once (a shared export made by one worker, waited for by
the others, never forever) and graph_optimization (grappler off in the test
process, but for modules marked optimized_graphs: tests/test_projections.py
checks that side)."""
import subprocess
import sys
import time

import pytest

from tests import conftest


def test_made_once_makes_once_and_reuses(tmp_path):
  calls = []

  def make(path):
    path.mkdir()
    calls.append(path)

  first = conftest.made_once(tmp_path, "thing", make)
  again = conftest.made_once(tmp_path, "thing", make)
  assert first == again == tmp_path / "thing" and len(calls) == 1


def test_a_lock_held_too_long_fails_the_waiter_with_one_line(tmp_path, monkeypatch):
  """Another process holds the lock (a worker hung while making the export)."""
  lock = tmp_path / "thing.lock"
  holder = subprocess.Popen([sys.executable, "-c", (
      "import filelock, sys, time\n"
      f"l = filelock.FileLock({str(lock)!r}); l.acquire(); print('held', flush=True)\n"
      "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.setattr(conftest, "MADE_ONCE_TIMEOUT", 0.5)
    start = time.perf_counter()
    with pytest.raises(pytest.fail.Exception, match="thing: another worker held its lock "
                       "for over 0.5 s"):
      conftest.made_once(tmp_path, "thing", lambda path: pytest.fail("must not make it"))
    assert time.perf_counter() - start < 10
  finally:
    holder.kill()
    holder.wait()
  # The holder gone, the lock is free again: the export is made.
  assert conftest.made_once(tmp_path, "thing", lambda path: path.mkdir()).is_dir()


def test_grappler_is_off_in_modules_not_marked(graph_optimization):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert not graph_optimization
  assert tf.config.optimizer.get_experimental_options()["disable_meta_optimizer"]


def test_functions_are_traced_in_modules_not_marked():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert not tf.config.functions_run_eagerly()


def test_every_module_named_in_the_order_exists():
  """tests/conftest.py SLOWEST_FIRST names test modules of this folder, once each."""
  import pathlib  # pylint: disable=g-import-not-at-top
  here = pathlib.Path(__file__).parent
  assert len(set(conftest.SLOWEST_FIRST)) == len(conftest.SLOWEST_FIRST)
  assert [name for name in conftest.SLOWEST_FIRST if not (here / name).is_file()] == []
