"""bert_hub.vocab: ids exactly as FullTokenizer.load_vocab, bad files refused.

The oracle for ids is tf-models' copy of BERT's `tokenization.load_vocab`.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.errors import BertHubError
from bert_hub.vocab import read_vocab

import pytest

pytestmark = pytest.mark.eager_functions  # (tests/conftest.py) one call per model
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["un", "##aff", "##able", "the", "cafe", "日", "##s"]


def write(tmp_path, data: bytes, name="vocab.txt"):
  path = tmp_path / name
  path.write_bytes(data)
  return str(path)


def lines(tokens, ending="\n"):
  return "".join(t + ending for t in tokens).encode("utf-8")


def error_of(path) -> BertHubError:
  with pytest.raises(BertHubError) as info:
    read_vocab(path)
  return info.value


def test_ids_equal_full_tokenizer(tmp_path):
  from official.nlp.tools import tokenization
  path = write(tmp_path, lines(SPECIALS + WORDS))
  vocab = read_vocab(path)
  assert dict(tokenization.load_vocab(path)) == {
      t: i for i, t in enumerate(vocab.tokens)}
  assert vocab.size == 12
  assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id,
          vocab.mask_id) == (0, 1, 2, 3, 4)
  assert vocab.id_of("##aff") == 6


def test_stripping_and_last_line_like_full_tokenizer(tmp_path):
  from official.nlp.tools import tokenization
  # Trailing spaces/tabs are stripped; no final newline still ends a token.
  data = b"[PAD]\n[UNK] \n\t[CLS]\n[SEP]\t\n[MASK]\nlast"
  path = write(tmp_path, data)
  vocab = read_vocab(path)
  assert vocab.tokens == tuple(SPECIALS + ["last"])
  assert dict(tokenization.load_vocab(path)) == {
      t: i for i, t in enumerate(vocab.tokens)}


def test_crlf_gives_the_ids_of_lf(tmp_path):
  from official.nlp.tools import tokenization
  lf = read_vocab(write(tmp_path, lines(SPECIALS + WORDS), "lf.txt"))
  crlf_path = write(tmp_path, lines(SPECIALS + WORDS, "\r\n"), "crlf.txt")
  crlf = read_vocab(crlf_path)
  assert crlf.tokens == lf.tokens
  assert dict(tokenization.load_vocab(crlf_path)) == {
      t: i for i, t in enumerate(crlf.tokens)}


def test_crlf_vocab_tokenizes_like_lf(tmp_path):
  from bert_hub.preprocessing import create_preprocessing
  import tensorflow as tf
  lf_path = write(tmp_path, lines(SPECIALS + WORDS), "lf.txt")
  crlf_path = write(tmp_path, lines(SPECIALS + WORDS, "\r\n"), "crlf.txt")
  sentences = tf.constant(["unaffable the cafés", "the 日 x"])
  for normalization in ("faithful", "tf_text"):
    lf, crlf = (create_preprocessing(vocab_file=p, lower_case=True,
                                     default_seq_length=8, bert_pack_inputs=False,
                                     normalization=normalization)
                for p in (lf_path, crlf_path))
    assert lf.tokenize(sentences).to_list() == crlf.tokenize(sentences).to_list()
    assert lf.tokenize(sentences).to_list() == [
        [[5, 6, 7], [8], [9, 11]], [[8], [10], [1]]]


def test_write_normalized(tmp_path):
  vocab = read_vocab(write(tmp_path, lines(SPECIALS + WORDS, "\r\n")))
  dest = tmp_path / "normalized.txt"
  vocab.write_normalized(str(dest))
  assert dest.read_bytes() == lines(SPECIALS + WORDS)
  assert read_vocab(str(dest)).tokens == vocab.tokens


def test_missing_file(tmp_path):
  e = error_of(str(tmp_path / "nope.txt"))
  assert "nope.txt" in str(e) and "not found" in str(e)
  assert e.received == "no such file"
  e = error_of(str(tmp_path))
  assert e.received == "a directory"


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, data):
  e = error_of(write(tmp_path, data))
  assert "empty" in e.what


def test_not_utf8_names_the_line(tmp_path):
  data = lines(SPECIALS) + b"caf\xe9\n" + lines(WORDS)
  e = error_of(write(tmp_path, data))
  assert "line 6" in e.what
  assert "0xE9" in e.received and "column 4" in e.received
  assert "UTF-8" in e.fix


def test_byte_order_mark_refused_with_how_to_strip(tmp_path):
  e = error_of(write(tmp_path, b"\xef\xbb\xbf" + lines(SPECIALS + WORDS)))
  assert "byte order mark" in e.what
  assert "EF BB BF" in e.received
  assert "sed" in e.fix and "[3:]" in e.fix


def test_missing_special_tokens_all_listed(tmp_path):
  e = error_of(write(tmp_path, lines(["[PAD]", "[UNK]", "[SEP]"] + WORDS)))
  assert e.received == "no line with [CLS], [MASK]"


def test_duplicates_listed_with_line_numbers(tmp_path):
  tokens = SPECIALS + WORDS + ["the", "##s", "the"]
  e = error_of(write(tmp_path, lines(tokens)))
  assert "2 repeated" in e.received
  assert "'the' on lines 9, 13, 15" in e.received
  assert "'##s' on lines 12, 14" in e.received


def test_unknown_token_lookup_is_a_clear_error(tmp_path):
  vocab = read_vocab(write(tmp_path, lines(SPECIALS + WORDS)))
  with pytest.raises(BertHubError, match="not in vocabulary"):
    vocab.id_of("nope")
