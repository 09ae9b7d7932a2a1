"""Reliability: every bad input meets a clear error; no export is half-written or lost.

One test (or parametrized test) per row of the README's "Bad input and faults"
table. CLI tests call `export.cli.main` in-process and require exit code 2 and
exactly one stderr line `error: ...` naming what was expected, what was received
and the fix, with no traceback; a few run `python -m export` as a real process.
Faults (SIGKILL, racing exports, a full disk) run exports in subprocesses or on
size-limited file systems (tmpfs; the tests run as root, as in CI).
"""
import contextlib
import glob
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.encoder import sample_inputs
from bert_hub.errors import BertHubError
from export import cli, lib, publish
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A TF1 checkpoint folder (bert_model.ckpt.*, bert_config.json, vocab.txt)."""
  root = tmp_path_factory.mktemp("reliability")
  config = fixtures.tiny_config()
  prefix, arrays = fixtures.write_tf1_checkpoint(root / "tf1", config, with_mlm=False)
  fixtures.write_vocab(root / "tf1")
  return types.SimpleNamespace(root=root, config=config, prefix=prefix, arrays=arrays,
                               folder=root / "tf1", vocab=str(root / "tf1/vocab.txt"))


@pytest.fixture(scope="module")
def exported(tiny):
  """`tiny` exported as DIR/3 (the "previous version" the fault tests keep safe)."""
  result = lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(tiny.root / "models"),
                              lower_case=True, report=lib.quiet_report)
  return result.path


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("hf")
  fixtures.write_hf_checkpoint(folder, fixtures.tiny_config(), pretraining=False)
  fixtures.write_vocab(folder)
  return folder


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


# ------------------------------------------------------------------ configs


def config_error(tmp_path, capsys, tiny, config_json, *needles, name="bert_config.json"):
  path = tmp_path / name
  path.write_text(config_json if isinstance(config_json, str) else json.dumps(config_json))
  return cli_error(capsys, *encoder_args(tiny.prefix, tmp_path / "out",
                                         "--config", path), needles=needles)


def test_config_missing_keys(tmp_path, capsys, tiny):
  data = fixtures.bert_config_json(tiny.config)
  del data["hidden_size"], data["num_attention_heads"]
  config_error(tmp_path, capsys, tiny, data, "incomplete bert_config.json",
               "received no hidden_size, num_attention_heads", "add the missing keys")


@pytest.mark.parametrize("name,change,needle", [
    ("bert_config.json", dict(hidden_size="16"), "hidden_size='16' (a positive integer)"),
    ("bert_config.json", dict(num_hidden_layers=2.0), "num_layers=2.0"),
    ("bert_config.json", dict(num_attention_heads=None), "num_heads=None"),
    ("bert_config.json", dict(hidden_dropout_prob="0.1"), "hidden_dropout='0.1'"),
    ("bert_config.json", dict(initializer_range="0.02"), "initializer_range='0.02'"),
    ("config.json", dict(model_type="bert", layer_norm_eps="1e-12"),
     "layer_norm_eps='1e-12' (a positive number)"),
    ("bert_config.json", dict(hidden_act=5), "unknown activation"),
    ("config.json", dict(model_type=["bert"]), 'received "model_type": ["bert"]'),
])
def test_config_wrong_types(tmp_path, capsys, tiny, name, change, needle):
  data = dict(fixtures.bert_config_json(tiny.config), **change)
  config_error(tmp_path, capsys, tiny, data, needle, name=name)


@pytest.mark.parametrize("text,needle", [
    ("[1, 2]", "holding a list"),
    ("encoder: 5\n", "received encoder: 5"),
    ("encoder:\n  type: bert\n  bert:\n", "received bert: None"),
    ("{", "valid YAML"),
])
def test_config_yaml_of_the_wrong_shape(tmp_path, capsys, tiny, text, needle):
  config_error(tmp_path, capsys, tiny, text, needle, name="encoder.yaml")


def test_config_hidden_size_not_divisible_by_heads(tmp_path, capsys, tiny):
  data = dict(fixtures.bert_config_json(tiny.config), num_attention_heads=5)
  config_error(tmp_path, capsys, tiny, data, "hidden_size divisible by the number of "
               "attention heads", "hidden_size=16, heads=5 (remainder 1)")


@pytest.mark.parametrize("name,act", [("bert_config.json", "gelu_new"),
                                      ("config.json", "gelu_newest")])
def test_config_unknown_activation(tmp_path, capsys, tiny, name, act):
  data = dict(fixtures.bert_config_json(tiny.config), hidden_act=act)
  if name == "config.json":
    data["model_type"] = "bert"
  config_error(tmp_path, capsys, tiny, data, "unknown activation", f"received '{act}'",
               name=name)


@pytest.mark.parametrize("change,needle", [
    (dict(num_hidden_layers=3), "the checkpoint has 2 layers (config: num_layers=3)"),
    (dict(hidden_size=32), "hidden size 16 (config: hidden_size=32)"),
    (dict(intermediate_size=24), "of the wrong shape"),
])
def test_config_that_disagrees_with_the_checkpoint(tmp_path, capsys, tiny, change, needle):
  data = dict(fixtures.bert_config_json(tiny.config), **change)
  config_error(tmp_path, capsys, tiny, data, needle)


# ------------------------------------------------------------------ vocabularies


def vocab_file(tmp_path, content: bytes):
  path = tmp_path / "vocab.txt"
  path.write_bytes(content)
  return path


GOOD_VOCAB = ("\n".join(fixtures.TINY_VOCAB) + "\n").encode()


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
  lib.check_seq_length(512, max_positions=512)
  lib.check_seq_length(3, max_positions=512)
  with pytest.raises(BertHubError) as e:
    lib.check_seq_length(513, max_positions=512)
  assert "expected an integer from 3 ([CLS] x [SEP]) to 512; received 513" in str(e.value)
  assert "fix: pass --seq-length between 3 and 512" in str(e.value)
  with pytest.raises(BertHubError, match="received True"):
    lib.check_seq_length(True, max_positions=512)


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
  r = run_export_process("--debug", *argv)
  assert r.returncode == 1
  assert "Traceback (most recent call last)" in r.stderr
  assert "bert_hub.errors.BertHubError: vocabulary file" in r.stderr


# ------------------------------------------------------------------ text into preprocessing


@pytest.fixture(scope="module")
def preprocessor(tmp_path_factory):
  """The preprocessing SavedModel (seq_length 16), exported from a CRLF vocab.txt,
  reloaded; with FullTokenizer on the LF vocab as the reference."""
  from official.nlp.tools import tokenization
  root = tmp_path_factory.mktemp("pre")
  crlf = root / "crlf/vocab.txt"
  crlf.parent.mkdir()
  crlf.write_bytes(GOOD_VOCAB.replace(b"\n", b"\r\n"))
  result = lib.export_preprocessing(vocab=str(crlf), output_dir=str(root / "out"),
                                    seq_length=16, lower_case=True,
                                    report=lib.quiet_report)
  reference = tokenization.FullTokenizer(fixtures.write_vocab(root / "lf"),
                                         do_lower_case=True)
  return types.SimpleNamespace(path=result.path, model=tf.saved_model.load(result.path),
                               reference=reference)


ID = {t: i for i, t in enumerate(fixtures.TINY_VOCAB)}
CLS, SEP, PAD = ID["[CLS]"], ID["[SEP]"], ID["[PAD]"]


def tokenize(pre, texts):
  return pre.model.tokenize(tf.constant(texts, tf.string))


def pack(pre, texts):
  return {k: v.numpy() for k, v in pre.model(tf.constant(texts, tf.string)).items()}


def reference_ids(pre, text: bytes):
  from official.nlp.tools import tokenization
  return pre.reference.convert_tokens_to_ids(
      pre.reference.tokenize(tokenization.convert_to_unicode(text)))


def test_crlf_vocab_works(preprocessor):
  with open(os.path.join(preprocessor.path, "assets", "vocab.txt"), "rb") as f:
    assert f.read() == GOOD_VOCAB  # stored with "\n" endings
  special = {k: int(v) for k, v in
             preprocessor.model.tokenize.get_special_tokens_dict().items()}
  assert special["vocab_size"] == len(fixtures.TINY_VOCAB)
  assert special["start_of_sequence_id"] == CLS and special["padding_id"] == PAD
  ids = tokenize(preprocessor, ["Hello world, the cat."]).flat_values.numpy().tolist()
  assert ids == [ID[t] for t in ("hello", "world", ",", "the", "cat", ".")]


@pytest.mark.parametrize("text", ["", " ", " \t\r\n\u3000\u00a0\u2028 "])
def test_empty_and_whitespace_only_text(preprocessor, text):
  tokens = tokenize(preprocessor, [text, "hello"])
  assert tokens.row_lengths().numpy().tolist() == [0, 1]
  out = pack(preprocessor, [text, "hello"])
  assert out["input_word_ids"][0].tolist() == [CLS, SEP] + [PAD] * 14
  assert out["input_mask"][0].tolist() == [1, 1] + [0] * 14
  assert out["input_word_ids"][1, :3].tolist() == [CLS, ID["hello"], SEP]


def test_one_megabyte_string(preprocessor):
  text = "hello world " * (2 ** 20 // 12 + 1)
  assert len(text.encode()) >= 2 ** 20
  words = text.split()
  tokens = tokenize(preprocessor, [text])
  assert tokens.row_lengths().numpy().tolist() == [len(words)]  # every word kept
  flat = tokens.flat_values.numpy()
  assert flat.tolist()[:4] == [ID["hello"], ID["world"]] * 2
  assert flat.size == len(words) and set(flat.tolist()) == {ID["hello"], ID["world"]}
  out = pack(preprocessor, [text])  # truncated by seq_length only
  assert out["input_word_ids"][0].tolist() == (
      [CLS] + [ID["hello"], ID["world"]] * 7 + [SEP])
  assert out["input_mask"][0].tolist() == [1] * 16
  # One 1 MB word (over 200 characters) is one [UNK], as in FullTokenizer.
  assert tokenize(preprocessor, ["x" * 2 ** 20]).flat_values.numpy().tolist() == [ID["[UNK]"]]


@pytest.mark.parametrize("text", [
    b"hello \xff\xfe world", b"hel\xfflo world", b"hello \xc3 world the cat",
    b"\x80hello world", b"hello world\xe2\x82", b"caf\xc3\xa9 \xed\xa0\x80 cat",
])
def test_invalid_utf8_keeps_the_rest_of_the_text(preprocessor, text):
  ids = tokenize(preprocessor, [text]).flat_values.numpy().tolist()
  assert ids == reference_ids(preprocessor, text)  # bytes.decode("utf-8", "ignore")
  assert ID["[UNK]"] not in ids and len(ids) >= 2
  assert ids[-1] == ID[text.decode("utf-8", "ignore").split()[-1]]


@pytest.mark.parametrize("text", [b"hello\x00 world", b"hel\x00lo world", b"\x00hello world",
                                  b"hello world\x00", b"hello \x00\x00\x00 cat sat"])
def test_nul_bytes_keep_the_rest_of_the_text(preprocessor, text):
  ids = tokenize(preprocessor, [text]).flat_values.numpy().tolist()
  assert ids == reference_ids(preprocessor, text)
  want = text.replace(b"\x00", b"").decode().split()
  assert ids == [ID[w] for w in want]
  out = pack(preprocessor, [text])
  assert out["input_word_ids"][0, :len(want) + 2].tolist() == (
      [CLS] + [ID[w] for w in want] + [SEP])


def test_empty_batch(preprocessor):
  empty = tf.constant([], tf.string)
  out = preprocessor.model(empty)
  assert {k: v.shape.as_list() for k, v in out.items()} == {
      "input_word_ids": [0, 16], "input_mask": [0, 16], "input_type_ids": [0, 16]}
  assert tokenize(preprocessor, empty).shape.as_list()[0] == 0
  served = preprocessor.model.signatures["serving_default"](sentences=empty)
  assert all(v.shape.as_list() == [0, 16] for v in served.values())
  packed = preprocessor.model.bert_pack_inputs([tokenize(preprocessor, empty)] * 2)
  assert packed["input_word_ids"].shape.as_list() == [0, 16]


# ------------------------------------------------------------------ ids into the encoder


@pytest.fixture(scope="module")
def encoders(tiny, exported):
  """The Python model and the reloaded export, with the same weights."""
  from bert_hub.encoder import load_encoder
  return dict(python=load_encoder(tiny.prefix), saved_model=tf.saved_model.load(exported))


@pytest.mark.parametrize("kind", ["python", "saved_model"])
@pytest.mark.parametrize("bad_id", [len(fixtures.TINY_VOCAB), 10 ** 6, -1])
def test_word_ids_out_of_range_raise_on_cpu(encoders, kind, bad_id):
  inputs = sample_inputs(fixtures.tiny_config(), batch=2, seq_length=8)
  inputs["input_word_ids"][1, 3] = bad_id
  with tf.device("/CPU:0"), pytest.raises(tf.errors.InvalidArgumentError,
                                          match=r"indices\[.*\] = %d is not in \[0, %d\)"
                                          % (bad_id, len(fixtures.TINY_VOCAB))):
    encoders[kind](inputs)


def type_embeddings(model):
  (var,) = [v for v in model.variables if "type_embeddings" in v.name]
  return var


@pytest.mark.parametrize("kind", ["python", "saved_model"])
def test_type_ids_out_of_range_get_a_zero_type_embedding(encoders, kind):
  model = encoders[kind]
  inputs = sample_inputs(fixtures.tiny_config(), batch=2, seq_length=8)
  inputs["input_type_ids"][:] = 0
  table = type_embeddings(model)
  saved = table.numpy()
  try:
    table.assign(np.stack([np.zeros_like(saved[0]), saved[1]]))  # row 0 := zeros
    with tf.device("/CPU:0"):
      want = model(inputs)["sequence_output"].numpy()
      for bad in (2, 7, -1):
        odd = {k: v.copy() for k, v in inputs.items()}
        odd["input_type_ids"][:, 2:5] = bad
        got = model(odd)["sequence_output"].numpy()  # no error, like type id 0 here
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
  finally:
    table.assign(saved)


@pytest.mark.parametrize("kind", ["python", "saved_model"])
def test_sequence_longer_than_max_position_embeddings_raises(encoders, kind):
  inputs = sample_inputs(fixtures.tiny_config(), batch=1, seq_length=65)  # max 64
  # InvalidArgumentError when run; ValueError when the length is static in a trace.
  with tf.device("/CPU:0"), pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                                          match="position_embedding"):
    encoders[kind](inputs)


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
