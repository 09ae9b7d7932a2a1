"""bert_hub/preprocessing/unicode_tables.py: the tables kept on disk between processes.

The independent reference is the computation itself (`_computed_arrays`, what
a process without the kept file runs, made once here); the tests of the kept
file count the computations `_arrays()` asks for (`computations`: a copy of it
stands in). The tables' content is tested against FullTokenizer in
test_tokenization_parity / test_preprocessing_fuzz.
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import os

import numpy as np
import pytest

from bert_hub.preprocessing import unicode_tables


@pytest.fixture(scope="module")
def computed():
  return unicode_tables._computed_arrays()  # pylint: disable=protected-access


@pytest.fixture
def computations(monkeypatch, computed):
  """How many times _arrays() computed the tables: the computation (1.5-3 s
  each) is replaced by a copy of `computed`, counted."""
  calls = []

  def compute():
    calls.append(1)
    return {name: array.copy() for name, array in computed.items()}
  monkeypatch.setattr(unicode_tables, "_computed_arrays", compute)
  return calls


def _fresh_arrays(monkeypatch, cache_dir):
  """_arrays() as a new process with BERT_HUB_CACHE=cache_dir runs it."""
  monkeypatch.setenv("BERT_HUB_CACHE", str(cache_dir))
  unicode_tables._arrays.cache_clear()  # pylint: disable=protected-access
  try:
    return unicode_tables._arrays()  # pylint: disable=protected-access
  finally:
    unicode_tables._arrays.cache_clear()  # pylint: disable=protected-access


def _assert_equal(got, want):
  assert set(got) == set(want)
  for name in want:
    assert got[name].dtype == want[name].dtype, name
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_kept_file_is_written_once_and_read_back_equal(monkeypatch, tmp_path, computed,
                                                      computations):
  first = _fresh_arrays(monkeypatch, tmp_path)
  files = os.listdir(tmp_path)
  assert len(files) == 1 and files[0].startswith("unicode_tables-"), files
  _assert_equal(first, computed)
  stamp = os.stat(tmp_path / files[0]).st_mtime_ns
  second = _fresh_arrays(monkeypatch, tmp_path)  # read, not written again
  assert os.stat(tmp_path / files[0]).st_mtime_ns == stamp
  assert os.listdir(tmp_path) == files
  _assert_equal(second, computed)
  assert len(computations) == 1  # the second process read the file


@pytest.mark.parametrize("damage", ["truncated", "other arrays"])
def test_a_damaged_kept_file_is_computed_again(monkeypatch, tmp_path, computed,
                                               computations, damage):
  monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path))
  path = unicode_tables._cache_path()  # pylint: disable=protected-access
  if damage == "truncated":
    with open(path, "wb") as f:
      f.write(b"PK\x03\x04 not a whole zip file")
  else:
    np.savez(path, flags=computed["flags"])
  _assert_equal(_fresh_arrays(monkeypatch, tmp_path), computed)
  assert len(computations) == 1
  with np.load(path) as kept:  # replaced by the whole tables
    assert set(kept.files) == set(computed)


def test_an_unwritable_cache_still_gives_the_tables(monkeypatch, tmp_path, computed,
                                                    computations):
  blocker = tmp_path / "file"  # a file where the cache folder would be
  blocker.write_text("x")
  _assert_equal(_fresh_arrays(monkeypatch, blocker / "cache"), computed)
  assert os.listdir(tmp_path) == ["file"] and len(computations) == 1


def test_the_file_name_follows_python_and_the_source(monkeypatch, tmp_path):
  monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path))
  name = unicode_tables._cache_path()  # pylint: disable=protected-access
  monkeypatch.setattr(unicode_tables.sys, "version", "3.11.0 (other build)")
  assert unicode_tables._cache_path() != name  # pylint: disable=protected-access
