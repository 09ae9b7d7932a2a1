"""bert_hub/tokenizer_settings.py: the tokenizer settings come from the model.

Oracles: Hugging Face's BertTokenizerFast loaded from the same directory (what
the model was trained and is used with), and the real MiniLM package files.
"""
import json
import os
import shutil

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub import tokenizer_settings
from bert_hub.errors import BertHubError
from bert_hub.preprocessing import create_preprocessing
from bert_hub.vocab import read_vocab
from export import cli, lib
from tests import fixtures
from tests.cli_utils import assert_clear_error

import tensorflow as tf  # pylint: disable=wrong-import-order

# Real text with capitals, accents, punctuation and CJK.
SENTENCES = [
    "The Quick Brown Fox jumps over the Lazy Dog.",
    "Hello, World! TensorFlow Serving answers REST and gRPC.",
    "Café Müller in Zürich serves Crème Brûlée.",
    "Ελληνικά: Η Αθήνα είναι η πρωτεύουσα.",
    "北京大学 and 東京 are Cities.",
    "",
]


def _resolve(folder, vocab_name="vocab.txt", lower_case=None):
  lines = []
  settings = tokenizer_settings.resolve(
      lower_case=lower_case, vocab=read_vocab(os.path.join(folder, vocab_name)),
      folders=[folder], report=lambda stage, detail: lines.append(detail))
  return settings, lines


def _copy_minilm(dest, *, drop=(), **tokenizer_config):
  """The MiniLM model files (no weights) in dest, some dropped or edited."""
  src = fixtures.minilm_dir()
  os.makedirs(dest)
  for name in ("vocab.txt", "tokenizer_config.json", "tokenizer.json",
               "special_tokens_map.json", "config.json", "sentence_bert_config.json"):
    if name not in drop:
      shutil.copy(os.path.join(src, name), dest / name)
  if tokenizer_config:
    path = dest / "tokenizer_config.json"
    data = json.loads(path.read_text())
    data.update(tokenizer_config)
    path.write_text(json.dumps(data))
  return dest


def _hf_ids(folder, texts):
  from transformers import BertTokenizerFast  # pylint: disable=g-import-not-at-top
  tokenizer = BertTokenizerFast.from_pretrained(str(folder))
  return [tokenizer(t, truncation=True, max_length=128)["input_ids"] for t in texts]


def _our_ids(model, texts):
  """The unpadded ids of the root call; model: an export's path or a preprocessor."""
  if isinstance(model, str):
    model = tf.saved_model.load(model)
  out = model(tf.constant(texts))
  ids, mask = out["input_word_ids"].numpy(), out["input_mask"].numpy()
  return [list(row[m == 1]) for row, m in zip(ids, mask)]


@pytest.mark.slow
def test_minilm_vocab_without_casing_flag_gives_hugging_face_ids(tmp_path):
  """The issue's case: `preprocessing --vocab <minilm>/vocab.txt` with no flag."""
  vocab = os.path.join(fixtures.minilm_dir(), "vocab.txt")
  result = lib.export_preprocessing(vocab=vocab, output_dir=str(tmp_path / "pre"),
                                    report=lib.quiet_report)
  assert _our_ids(result.path, SENTENCES) == _hf_ids(fixtures.minilm_dir(), SENTENCES)


def test_minilm_files_say_lower_case_and_where():
  settings, lines = _resolve(fixtures.minilm_dir())
  assert settings.lower_case is True
  assert settings.strip_accents is None and settings.tokenize_chinese_chars is True
  assert settings.sources["lower_case"].endswith("tokenizer_config.json")
  assert len(lines) == 1 and "do_lower_case=True from" in lines[0]


def test_renamed_vocab_without_tokenizer_files_is_uncased_by_content(tmp_path):
  folder = _copy_minilm(tmp_path / "m", drop=("tokenizer_config.json", "tokenizer.json"))
  os.rename(folder / "vocab.txt", folder / "words.txt")
  settings, lines = _resolve(folder, "words.txt")
  assert settings.lower_case is True
  assert settings.sources["lower_case"] == "the vocab's content"
  # One line says how it decided: 2 of ~28,000 tokens with letters are capitalised.
  assert len(lines) == 1 and "hold an upper-case letter" in lines[0]
  assert "--no-lower-case" in lines[0]


def test_cased_vocab_by_content(tmp_path):
  words = read_vocab(os.path.join(fixtures.minilm_dir(), "vocab.txt")).tokens
  cased = list(words) + [t.capitalize() for t in words if t.isalpha() and len(t) > 2][:5000]
  folder = tmp_path / "cased"
  fixtures.write_vocab(folder, cased)
  settings, _ = _resolve(folder)
  assert settings.lower_case is False
  # The contradiction: a cased vocab with do_lower_case: true.
  (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
  with pytest.raises(BertHubError, match="contradicts the vocab") as e:
    _resolve(folder)
  assert "tokenizer_config.json" in str(e.value) and "hold an upper-case" in str(e.value)


def test_contradicting_sources_are_one_line_cli_error(tmp_path, capsys):
  folder = _copy_minilm(tmp_path / "m", do_lower_case=False)  # tokenizer.json says True
  capsys.readouterr()
  rc = cli.main(["preprocessing", "--checkpoint", str(folder), "--output",
                 str(tmp_path / "out")])
  line = assert_clear_error(rc, capsys.readouterr().err,
                            "tokenizer files disagree", "tokenizer_config.json",
                            "tokenizer.json")
  assert "False" in line and "True" in line
  assert not os.path.exists(tmp_path / "out" / "3")


def test_the_user_flag_wins_over_the_files_and_says_so(tmp_path):
  folder = _copy_minilm(tmp_path / "m", drop=("tokenizer.json",))
  with pytest.raises(BertHubError, match="contradicts the vocab"):
    _resolve(folder, lower_case=False)  # MiniLM's vocab has no capitals
  small = tmp_path / "small"
  fixtures.write_vocab(small)
  (small / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
  settings, lines = _resolve(small, lower_case=False)  # too small to contradict
  assert settings.lower_case is False
  assert settings.sources["lower_case"] == "passed by the user"
  assert any("overriding" in line for line in lines)


@pytest.mark.parametrize("setting,value,needle", [
    ("never_split", ["[unused0]", "hello"], "never_split"),
    ("do_basic_tokenize", False, "do_basic_tokenize"),
])
def test_settings_the_graph_cannot_reproduce_are_refused_by_name(tmp_path, setting, value,
                                                                 needle):
  folder = _copy_minilm(tmp_path / "m", **{setting: value})
  with pytest.raises(BertHubError, match=needle):
    _resolve(folder)


def test_a_tokenizer_that_is_not_bert_is_refused(tmp_path):
  folder = _copy_minilm(tmp_path / "m")
  data = json.loads((folder / "tokenizer.json").read_text())
  data["normalizer"] = {"type": "NFKC"}
  (folder / "tokenizer.json").write_text(json.dumps(data))
  with pytest.raises(BertHubError, match="BertNormalizer"):
    _resolve(folder)


def test_sentence_transformers_lower_casing_of_a_cased_tokenizer(tmp_path):
  """sentence_bert_config do_lower_case: text.lower() before a case-keeping tokenizer."""
  folder = _copy_minilm(tmp_path / "m", drop=("tokenizer.json",), do_lower_case=False)
  (folder / "sentence_bert_config.json").write_text(json.dumps(
      {"max_seq_length": 128, "do_lower_case": True}))
  small = tmp_path / "small"  # MiniLM's vocab would contradict a cased tokenizer
  shutil.copytree(folder, small)
  fixtures.write_vocab(small)
  settings, _ = _resolve(small)
  assert settings.lower_case is True and settings.strip_accents is False


@pytest.mark.slow
def test_strip_accents_false_from_the_files_equals_hugging_face(tmp_path):
  """tokenizer_config strip_accents: false with lower-casing: accents are kept."""
  folder = _copy_minilm(tmp_path / "m", drop=("tokenizer.json",), strip_accents=False)
  accented_words = ["café", "müller", "crème", "brûlée", "française", "naïve",
                    "ελληνικά", "αθήνα"]  # MiniLM's vocab has none: add them
  words = read_vocab(folder / "vocab.txt").tokens
  fixtures.write_vocab(folder, list(words) + accented_words)
  settings, _ = _resolve(folder)
  assert settings.lower_case is True and settings.strip_accents is False
  result = lib.export_preprocessing(checkpoint=str(folder), output_dir=str(tmp_path / "p"),
                                    report=lib.quiet_report)
  accented = ["Café Müller", "crème brûlée à la française", "Ελληνικά Αθήνα", "naïve"]
  ours = _our_ids(result.path, accented)
  assert ours == _hf_ids(folder, accented)
  ids = {w: len(words) + i for i, w in enumerate(accented_words)}
  assert ours[0][1:3] == [ids["café"], ids["müller"]]  # kept whole, accents and all
  # The same vocab with FullTokenizer's settings (what an export of the vocab
  # alone with --lower-case builds; in memory: exports are tested above).
  default = _our_ids(create_preprocessing(
      vocab_file=str(folder / "vocab.txt"), lower_case=True, bert_pack_inputs=False),
                         accented)
  assert default[0][1:3] != ours[0][1:3]  # FullTokenizer strips: "cafe", "muller"


@pytest.mark.slow
def test_model_page_and_metadata_say_where_the_casing_came_from(minilm_demo):
  # The demo's encoder: lib.export_encoder(checkpoint=<MiniLM>) with the
  # default options, made once per run (tests/conftest.py).
  path = os.path.join(minilm_demo["output"], "minilm_l6_encoder", "3")
  with open(os.path.join(path, "bert_hub.json"), encoding="utf-8") as f:
    meta = json.load(f)
  assert meta["tokenizer"]["lower_case"] is True
  assert meta["tokenizer"]["sources"]["lower_case"].endswith("tokenizer_config.json")
  with open(os.path.join(path, "README.md"), encoding="utf-8") as f:
    page = f.read()
  assert "`do_lower_case=True` (" in page and "tokenizer_config.json)" in page
  assert np.asarray(tf.saved_model.load(path).do_lower_case.numpy())
