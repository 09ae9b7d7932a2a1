"""Text into the preprocessing export: odd input meets defined behaviour.

Rows of the README's "Bad input and faults" table; the oracle is FullTokenizer.
"""
import os
import types

import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from export import lib
from tests import fixtures
from tests.cli_utils import GOOD_VOCAB

import tensorflow as tf  # pylint: disable=wrong-import-order


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
