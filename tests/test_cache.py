"""bert_hub/cache.py: where kept files go, and that they appear complete or not at all."""
import os

from bert_hub import cache


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv("BERT_HUB_CACHE", raising=False)
  monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert cache.file_path("x") == str(tmp_path / "home" / ".cache" / "bert_hub" / "x")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert cache.file_path("x") == str(tmp_path / "xdg" / "bert_hub" / "x")
  monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path / "mine"))
  assert cache.file_path("x") == str(tmp_path / "mine" / "x")


def test_keep_writes_the_whole_file_under_its_name(tmp_path):
  path = str(tmp_path / "new" / "kept.bin")
  assert cache.keep(path, lambda f: f.write(b"all of it"))
  assert os.listdir(tmp_path / "new") == ["kept.bin"]
  with open(path, "rb") as f:
    assert f.read() == b"all of it"


def test_a_failed_write_leaves_nothing(tmp_path):
  path = str(tmp_path / "kept.bin")

  def fail(f):
    f.write(b"half")
    raise OSError("disk full")
  assert not cache.keep(path, fail)
  assert os.listdir(tmp_path) == []


def test_an_unwritable_folder_is_not_an_error(tmp_path):
  (tmp_path / "file").write_text("x")  # a file where the folder would be
  assert not cache.keep(str(tmp_path / "file" / "kept.bin"), lambda f: f.write(b"x"))
  assert os.listdir(tmp_path) == ["file"]
