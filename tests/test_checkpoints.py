"""Checkpoint readers (bert_hub/checkpoints): every bad checkpoint is one clear error.

Rows of the README's "Bad input and faults" table; helpers in tests/cli_utils.py.
"""
import json
import os
import pickle
import shutil

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from tests import fixtures
from tests.cli_utils import cli_error, copy_checkpoint, encoder_args


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("damage", ["truncated data file", "truncated index"])
def test_truncated_tf_checkpoint(tmp_path, capsys, tiny, damage):
  prefix = copy_checkpoint(tiny, tmp_path / "ckpt")
  path = prefix + (".data-00000-of-00001" if damage == "truncated data file" else ".index")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  cli_error(capsys, *encoder_args(prefix, tmp_path / "out"),
            needles=("unreadable checkpoint", "truncated", "copy the checkpoint again"))
  assert not os.path.exists(tmp_path / "out" / "3")


def test_truncated_safetensors(tmp_path, capsys, hf_dir):
  shutil.copytree(hf_dir, tmp_path / "hf")
  path = tmp_path / "hf/model.safetensors"
  path.write_bytes(path.read_bytes()[:2000])
  cli_error(capsys, *encoder_args(tmp_path / "hf", tmp_path / "out"),
            needles=("unreadable safetensors", "copy the file again"))


def test_missing_index(tmp_path, capsys, tiny):
  prefix = copy_checkpoint(tiny, tmp_path / "ckpt")
  os.remove(prefix + ".index")
  for given in (prefix, prefix + ".data-00000-of-00001"):
    cli_error(capsys, *encoder_args(given, tmp_path / "out"),
              needles=("checkpoint index missing", "bert_model.ckpt.index",
                       "copy the .index file too"))


@pytest.mark.parametrize("kind,wanted,actual", [
    ("tf1", "tf2", "tf1"), ("tf1", "hf", "tf1"), ("hf", "tf1", "hf")])
def test_wrong_checkpoint_format(tmp_path, capsys, tiny, hf_dir, kind, wanted, actual):
  checkpoint = tiny.prefix if kind == "tf1" else hf_dir
  cli_error(capsys, *encoder_args(checkpoint, tmp_path / "out",
                                  "--checkpoint-format", wanted),
            needles=(f"expected a {wanted} checkpoint", f"which is a {actual} checkpoint",
                     f"pass --checkpoint-format {actual}"))


@pytest.mark.parametrize("problem", ["missing", "unused", "wrong shape"])
def test_checkpoint_variables_missing_unused_or_mis_shaped(tmp_path, capsys, tiny, problem):
  arrays = dict(tiny.arrays)
  if problem == "missing":
    del arrays["bert/encoder/layer_1/output/dense/bias"]
    needle = "1 missing: bert/encoder/layer_1/output/dense/bias"
  elif problem == "unused":
    arrays["bert/encoder/layer_0/attention/self/extra"] = np.zeros(3, np.float32)
    needle = "1 unused: bert/encoder/layer_0/attention/self/extra"
  else:
    arrays["bert/pooler/dense/bias"] = np.zeros(7, np.float32)
    needle = "bert/pooler/dense/bias (expected [16], received [7])"
  prefix = copy_checkpoint(tiny, tmp_path / "ckpt", arrays=arrays)
  cli_error(capsys, *encoder_args(prefix, tmp_path / "out"),
            needles=("does not fit the encoder", needle, "pass the config that belongs"))
  assert not os.path.exists(tmp_path / "out" / "3")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, capsys, tiny, value):
  arrays = {k: v.copy() for k, v in tiny.arrays.items()}
  arrays["bert/encoder/layer_0/intermediate/dense/kernel"][3, 5] = value
  prefix = copy_checkpoint(tiny, tmp_path / "ckpt", arrays=arrays)
  cli_error(capsys, *encoder_args(prefix, tmp_path / "out"),
            needles=("non-finite weights", "NaN or Inf in 1: "
                     "transformer/layer_0/intermediate/kernel", "export a healthy one"))
  assert not os.path.exists(tmp_path / "out" / "3")


@pytest.mark.parametrize("given", ["directory", "file"])
def test_pytorch_model_bin_is_refused_unopened(tmp_path, capsys, tiny, given):
  folder = tmp_path / "hf"
  folder.mkdir()
  (folder / "config.json").write_text(json.dumps(
      dict(fixtures.bert_config_json(tiny.config), model_type="bert")))
  fixtures.write_vocab(folder)
  marker = tmp_path / "pwned"

  class Evil:  # creates `marker` if the file is ever unpickled
    def __reduce__(self):
      return (open, (str(marker), "w"))
  (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
  checkpoint = folder if given == "directory" else folder / "pytorch_model.bin"
  cli_error(capsys, *encoder_args(checkpoint, tmp_path / "out"),
            needles=("pickled checkpoint refused", "received pytorch_model.bin",
                     "safe_serialization=True"))
  assert not marker.exists()
