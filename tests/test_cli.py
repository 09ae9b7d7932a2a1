"""The CLI (export/cli.py): options checked before any work, one-line errors, exit codes.

Rows of the README's "Bad input and faults" table; helpers in tests/cli_utils.py.
"""
import os
import shutil

import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.errors import BertHubError
from export import cli, sources
from tests import fixtures
from tests.cli_utils import (GOOD_VOCAB, assert_clear_error, cli_error, encoder_args,
                             mounted_tmpfs, run_export_process, tree_digest)


# ------------------------------------------------------------------ vocabularies


def vocab_file(tmp_path, content: bytes):
  path = tmp_path / "vocab.txt"
  path.write_bytes(content)
  return path




@pytest.mark.parametrize("case", ["empty", "whitespace only", "missing [CLS]",
                                  "missing [SEP]", "missing [PAD]", "missing [UNK]",
                                  "missing [MASK]", "duplicate tokens", "not UTF-8",
                                  "BOM"])
@pytest.mark.parametrize("command", ["encoder", "preprocessing"])
def test_bad_vocabulary(tmp_path, capsys, tiny, case, command):
  tokens = list(fixtures.TINY_VOCAB)
  if case == "empty":
    content, needles = b"", ("is empty", "received 0 bytes")
  elif case == "whitespace only":
    content, needles = b" \n\r\n\n", ("is empty", "5 bytes of whitespace")
  elif case.startswith("missing"):
    token = case.split()[1]
    tokens.remove(token)
    tokens.append("filler")  # the size still fits the checkpoint
    content = ("\n".join(tokens) + "\n").encode()
    needles = ("lacks special tokens", f"received no line with {token}")
  elif case == "duplicate tokens":
    tokens[-1] = "cat"
    content = ("\n".join(tokens) + "\n").encode()
    needles = ("repeats tokens", "'cat' on lines 8, 70", "remove the repeated lines")
  elif case == "not UTF-8":
    content = GOOD_VOCAB.replace("café".encode(), "café".encode("latin-1"))
    line = fixtures.TINY_VOCAB.index("café") + 1
    needles = (f"is not UTF-8 at line {line}", f"byte 0xE9 at column 4 of line {line}",
               "iconv")
  else:
    content = b"\xef\xbb\xbf" + GOOD_VOCAB
    needles = ("byte order mark", "EF BB BF", "strip it")
  vocab = vocab_file(tmp_path, content)
  if command == "encoder":
    argv = encoder_args(tiny.prefix, tmp_path / "out", "--vocab", vocab)
  else:
    argv = ["preprocessing", "--vocab", vocab, "--output", tmp_path / "out", "--lower-case"]
  cli_error(capsys, *argv, needles=needles)
  assert not os.path.exists(tmp_path / "out" / "3")


def test_vocab_size_disagrees_with_embeddings(tmp_path, capsys, tiny):
  vocab = vocab_file(tmp_path, GOOD_VOCAB + b"extra\n")
  cli_error(capsys, *encoder_args(tiny.prefix, tmp_path / "out", "--vocab", vocab),
            needles=("vocabulary does not fit the model", "expected 70 tokens",
                     "received 71 tokens"))


# The CRLF vocabulary works: see `preprocessor` (built from a CRLF file) and
# test_crlf_vocab_works below.


# ------------------------------------------------------------------ options


@pytest.mark.parametrize("seq_length", [2, 0, -1])
def test_seq_length_below_3(tmp_path, capsys, tiny, seq_length):
  cli_error(capsys, "preprocessing", "--vocab", tiny.vocab, "--output", tmp_path / "out",
            "--lower-case", "--seq-length", seq_length,
            needles=("bad --seq-length", f"received {seq_length}",
                     "an integer from 3 ([CLS] x [SEP])"))


def test_seq_length_above_max_position_embeddings(tmp_path, capsys, tiny):
  # The text-embedding export packs to --seq-length, which the encoder's
  # position embeddings must cover (tiny: max_position_embeddings=64).
  cli_error(capsys, "text-embedding", "--checkpoint", tiny.prefix, "--output",
            tmp_path / "out", "--lower-case", "--seq-length", 65,
            needles=("bad --seq-length", "expected an integer from 3 ([CLS] x [SEP]) to 64",
                     "received 65", "pass --seq-length between 3 and 64"))
  assert not os.path.exists(tmp_path / "out")
  sources.check_seq_length(512, max_positions=512)
  sources.check_seq_length(3, max_positions=512)
  with pytest.raises(BertHubError) as e:
    sources.check_seq_length(513, max_positions=512)
  assert "expected an integer from 3 ([CLS] x [SEP]) to 512; received 513" in str(e.value)
  assert "fix: pass --seq-length between 3 and 512" in str(e.value)
  with pytest.raises(BertHubError, match="received True"):
    sources.check_seq_length(True, max_positions=512)


@pytest.mark.parametrize("version", [0, 4, -1])
@pytest.mark.parametrize("command", ["encoder", "preprocessing"])
def test_version_not_1_to_3(tmp_path, capsys, tiny, command, version):
  if command == "encoder":
    argv = encoder_args(tiny.prefix, tmp_path / "out", "--version", version)
  else:
    argv = ["preprocessing", "--vocab", tiny.vocab, "--output", tmp_path / "out",
            "--version", version]
  cli_error(capsys, *argv, needles=("unknown interface version", "expected 1, 2 or 3",
                                    f"received {version}"))
  assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("case", ["a file", "under a file"])
def test_output_not_writable(tmp_path, capsys, tiny, case):
  (tmp_path / "file").write_text("not a directory")
  output = tmp_path / "file" if case == "a file" else tmp_path / "file" / "models"
  line = cli_error(capsys, *encoder_args(tiny.prefix, output))
  assert "output is not a directory" in line or "output not writable" in line
  assert (tmp_path / "file").read_text() == "not a directory"


def test_output_on_a_read_only_file_system(tmp_path, capsys, tiny):
  with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
    for output in (ro, os.path.join(ro, "models")):
      cli_error(capsys, *encoder_args(tiny.prefix, output),
                needles=("output not writable", "pass another --output"))
      cli_error(capsys, "preprocessing", "--vocab", tiny.vocab, "--output", output,
                "--lower-case", needles=("output not writable",))


def test_existing_version_is_never_replaced(tmp_path, capsys, tiny, exported):
  models = tmp_path / "models"
  shutil.copytree(exported, models / "3")
  before = tree_digest(models / "3")
  cli_error(capsys, *encoder_args(tiny.prefix, models),
            needles=("version exists", "pass --overwrite"))
  assert tree_digest(models / "3") == before


def test_unreadable_tokenizer_config(tmp_path, capsys, hf_dir):
  shutil.copytree(hf_dir, tmp_path / "hf")
  (tmp_path / "hf/tokenizer_config.json").write_text("{not json")
  cli_error(capsys, "encoder", "--checkpoint", tmp_path / "hf", "--output", tmp_path / "out",
            needles=("unreadable tokenizer_config.json", "--no-lower-case"))


# ------------------------------------------------------------------ the CLI itself


def test_debug_shows_the_traceback(tmp_path, capsys):
  with pytest.raises(BertHubError, match="vocabulary file .* not found"):
    cli.main(["--debug", "preprocessing", "--vocab", str(tmp_path / "none.txt"),
              "--output", str(tmp_path / "out")])


def test_real_process_prints_one_line_and_exits_2(tmp_path, tiny):
  vocab = vocab_file(tmp_path, b"\xef\xbb\xbf" + GOOD_VOCAB)
  argv = encoder_args(tiny.prefix, tmp_path / "out", "--vocab", vocab)
  r = run_export_process(*argv)
  assert r.returncode == 2, r.stderr
  assert r.stderr.count("\n") == 1, r.stderr  # nothing else at all
  assert_clear_error(2, r.stderr, "byte order mark")
  # --debug raises instead (test_debug_shows_the_traceback, in this process:
  # a second real process would cost its imports again, 8 s, for Python's own
  # printing of an uncaught exception).
