"""Bulk inference on Apache Beam (export/beam.py, `bert-hub-export batch-predict`).

The pipeline runs on the DirectRunner in 2 worker processes over a few thousand
lines in several files, with bad lines among them; the Parquet output is
compared, id by id, with the servable's serving_default called here directly.
Needs the beam extra (`pip install .[beam]`, part of `.[test]`); skipped with
the reason when apache_beam is missing.
"""
import functools
import glob
import importlib.util
import json
import os

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)

# Whether Beam is there is asked without importing it: every xdist worker
# collects this module, and apache_beam with export/beam.py costs about 3 s of
# imports, which only the worker that runs these tests should pay (`beam_lib`).
for _module, _install in (("apache_beam", "'.[beam]'"), ("pyarrow", "pyarrow")):
  if importlib.util.find_spec(_module) is None:
    pytest.skip(f"{_module} not installed: pip install {_install} (make test installs it)",
                allow_module_level=True)

import tensorflow as tf  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order
import tensorflow_text  # noqa: F401,E402  pylint: disable=wrong-import-position,unused-import

from export import cli  # noqa: E402  pylint: disable=wrong-import-position
from tests import fixtures  # noqa: E402  pylint: disable=wrong-import-position

WORDS = [w for w in fixtures.TINY_VOCAB[5:] if not w.startswith("##")]


@pytest.fixture(scope="module")
def beam_lib():
  """export/beam.py, imported by the first test that needs it."""
  from export import beam  # pylint: disable=g-import-not-at-top
  return beam


@pytest.fixture(scope="module")
def servable(tmp_path_factory, run_shared):
  """(a fresh directory, the tiny text-embedding servable DIR/1).

  The servable (the tiny TF1 checkpoint, seq_length 16, lower_case) is made once
  per run (tests/fixtures.py, tiny_text_embedding; tests/test_keras3.py uses it too).
  """
  return tmp_path_factory.mktemp("beam"), fixtures.tiny_text_embedding(run_shared)["path"]


def _sentences(rng, n):
  return [" ".join(rng.choice(WORDS, size=rng.integers(0, 9))) for _ in range(n)]


@functools.lru_cache(maxsize=None)
def _loaded(path):
  """The servable as this process loads it: once per module (the tests only call it)."""
  return tf.saved_model.load(path)


def _serve(path, texts):
  fn = _loaded(path).signatures["serving_default"]
  return np.concatenate([fn(sentences=tf.constant(texts[i:i + 256]))["embedding"].numpy()
                         for i in range(0, len(texts), 256)])


def _read_parquet(prefix):
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  files = sorted(glob.glob(prefix + "-*.parquet"))
  assert files
  return pa.concat_tables([pq.read_table(f) for f in files]).to_pydict()


def _errors(prefix):
  out = []
  for path in sorted(glob.glob(prefix + "-errors-*.jsonl")):
    with open(path, encoding="utf-8") as f:
      out += [json.loads(line) for line in f if line.strip()]
  return out


@pytest.mark.slow
def test_text_lines_on_two_workers(servable, capsys):
  root, path = servable
  rng = np.random.default_rng(0)
  inputs = root / "text"
  inputs.mkdir()
  expected, bad = {}, set()
  for f in range(3):
    lines = [s.encode() for s in _sentences(rng, 1000)]
    for i in (17, 501):  # not UTF-8
      lines[i] = b"caf\xe9 " + lines[i]
      bad.add(f"{inputs}/part{f}.txt:{i + 1}")
    (inputs / f"part{f}.txt").write_bytes(b"\n".join(lines) + b"\n")
    for i, line in enumerate(lines):
      if f"{inputs}/part{f}.txt:{i + 1}" not in bad:
        expected[f"{inputs}/part{f}.txt:{i + 1}"] = line.decode()
  prefix = str(root / "out" / "emb")
  capsys.readouterr()
  rc = cli.main(["batch-predict", "--model", path, "--input", str(inputs / "*.txt"),
                 "--output", prefix, "--batch-size", "32",
                 "--direct_num_workers", "2"])
  assert rc == 0
  printed = capsys.readouterr().out
  assert f"{len(expected) + len(bad)} lines read, {len(expected)} predicted, " \
         f"{len(bad)} bad" in printed
  got = _read_parquet(prefix)
  assert sorted(got) == ["embedding", "id", "text"]
  assert len(got["id"]) == len(set(got["id"])) == len(expected)  # every id exactly once
  assert set(got["id"]) == set(expected)
  order = sorted(range(len(got["id"])), key=lambda i: got["id"][i])
  ids = [got["id"][i] for i in order]
  assert [got["text"][i] for i in order] == [expected[i] for i in ids]
  want = _serve(path, [expected[i] for i in ids])
  np.testing.assert_allclose(np.array([got["embedding"][i] for i in order]), want,
                             rtol=0, atol=1e-5)
  errors = _errors(prefix)
  assert {e["id"] for e in errors} == bad
  assert all("not UTF-8" in e["error"] for e in errors)


@pytest.mark.slow
def test_json_lines_with_fields_and_bad_lines(servable, beam_lib):
  root, path = servable
  rng = np.random.default_rng(1)
  texts = _sentences(rng, 200)
  lines = [json.dumps({"key": f"k{i}", "body": t}) for i, t in enumerate(texts)]
  lines[5], lines[9], lines[11] = "{not json", json.dumps({"key": "x"}), json.dumps([1])
  (root / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
  prefix = str(root / "json_out" / "pred")
  result = beam_lib.batch_predict(model=path, input_pattern=str(root / "in.jsonl"),
                                  output_prefix=prefix, text_field="body", id_field="key",
                                  report=lambda *_: None)
  assert result.counters == {"lines_read": 200, "predicted": 197, "bad_lines": 3}
  got = _read_parquet(prefix)
  good = {f"k{i}": t for i, t in enumerate(texts) if i not in (5, 9, 11)}
  assert sorted(got["id"]) == sorted(good)
  want = dict(zip(good, _serve(path, list(good.values()))))
  for key, value in zip(got["id"], got["embedding"]):
    np.testing.assert_allclose(value, want[key], rtol=0, atol=1e-5)
  errors = {e["id"]: e["error"] for e in _errors(prefix)}
  in_file = str(root / "in.jsonl")
  assert errors.keys() == {f"{in_file}:6", f"{in_file}:10", f"{in_file}:12"}
  assert "not JSON" in errors[f"{in_file}:6"]
  assert "no string field 'body'" in errors[f"{in_file}:10"]


def test_a_failing_element_does_not_fail_its_batch(beam_lib):
  class Model:  # a signature that refuses one text, as a real one may
    def __init__(self):
      self.signatures = {"serving_default": self.serve}

    @staticmethod
    def serve(sentences):
      if b"BAD" in sentences.numpy().tolist():
        raise tf.errors.InvalidArgumentError(None, None, "refused BAD")
      return {"n": tf.strings.length(sentences)}

  handler = beam_lib.TextServableHandler("unused")
  results = handler.run_inference(["ab", "BAD", "abcd"], Model())
  assert [r.example for r in results] == ["ab", "BAD", "abcd"]
  assert [r.inference.get("n") for r in results] == [2, None, 4]
  assert "refused BAD" in results[1].inference[beam_lib.ERROR_KEY]


def test_signature_that_does_not_take_strings_is_one_line_error(tmp_path, capsys, exported):
  from tests.cli_utils import cli_error  # pylint: disable=g-import-not-at-top
  (tmp_path / "a.txt").write_text("hello\n")
  cli_error(capsys, "batch-predict", "--model", exported, "--input", tmp_path / "a.txt",
            "--output", tmp_path / "out",
            needles=("does not take one batch of strings", "input_word_ids",
                     "--signature"))


def test_unknown_options_are_still_refused_elsewhere(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["inspect", "x", "--direct_num_workers", "2"])
  assert e.value.code == 2
  assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.slow
def test_no_input_files_is_one_line_error(servable, capsys, tmp_path):
  from tests.cli_utils import cli_error  # pylint: disable=g-import-not-at-top
  _, path = servable
  cli_error(capsys, "batch-predict", "--model", path, "--input",
            tmp_path / "nowhere" / "*.txt", "--output", tmp_path / "out",
            needles=("no input files", "nowhere", "check the --input glob"))
  assert not os.path.exists(tmp_path / "out")
