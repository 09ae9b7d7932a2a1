"""Parity with BERT's FullTokenizer, sentence by sentence: 100% equal ids.

The oracle is `official.nlp.tools.tokenization.FullTokenizer` (tf-models' copy
of google-research/bert's tokenization.py) with max_input_chars_per_word=200,
google-research/bert's value (the fork raised it to 400).

Corpus: the English of Python's pydoc topics (`pydoc_data.topics.topics`), cut
into sentences by `benchmarks.preprocessing.pydoc_sentences` (paragraphs at
blank lines, whitespace runs to one space, then a cut after . ! ? followed by
whitespace and a capital, quote or parenthesis; about 4,300 sentences), plus
HAND_SET below: the characters where tokenizers usually disagree.

Ids come from the SavedModel's `tokenize` after save and reload, flattened
over words, for (a) the uncased MiniLM vocab with lower_case=True (the model
tests/fixtures.py saves once per run, which other modules check too) and (b) a
cased vocab built here (MiniLM's plus capitalized and upper-case forms and the
characters of HAND_SET) with lower_case=False.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.preprocessing import create_preprocessing
from bert_hub.preprocessing import preprocessing_signatures

import os

from benchmarks.preprocessing import minilm_dir
from benchmarks.preprocessing import pydoc_sentences
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from tests import fixtures

HAND_SET = [
    # Accented Latin: precomposed, decomposed, upper case, ligatures.
    "Café crème brûlée à la mode", "Cafe\u0301 e\u0301te\u0301", "ÉCOLE ÀÖÜ",
    "Straße STRASSE ß ẞ", "ﬁne ﬂow œuvre Æsir", "İstanbul ıi İ", "Ångström Å",
    "Dvořák Łódź Ørsted naïve façade", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
    # Greek and Cyrillic, including the final sigma rule of str.lower().
    "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ΑΣ' Σα", "Ἀθῆναι ᾅδης ΐ", "Москва ЁЛКА ёлка Їжак",
    # Chinese, Japanese, Korean.
    "我爱北京天安门。", "東京は日本の首都です。カタカナ ｶﾀｶﾅ",
    "한국어 텍스트 처리", "𠀋𪚲 CJK extension B",
    # Emoji and symbols.
    "emoji 😀👍🏽 👨‍👩‍👧 🇩🇪 done", "€100 £5 ¥3 © ® ™ ° ± × ÷",
    # Punctuation, ASCII and Unicode.
    "Hello, world! (really?) [yes] {no} <ok> \"quoted\" 'single' `tick`",
    "a–b—c … «guillemets» “curly” ‘single’ ¿qué? ¡sí! · • ‰ † ‡ § ¶",
    "$^`|~@#%&*_+=\\/", "e.g. U.S.A. 3.14 1,000 don't can't",
    # Whitespace variants.
    "no\u00a0break thin\u2009space ideographic\u3000space",
    "tab\tnew\nline\r\nreturn  double", "\u2028line\u2029para\u0085nel",
    "   leading and trailing   ", "",
    # Control and format characters.
    "nul\x00byte", "soft\u00adhyphen", "zero\u200bwidth", "bom\ufeffhere",
    "bell\x07\x1b[0m", "lrm\u200etext\u200f", "replacement \ufffd char",
    # Long words.
    "x" * 200, "x" * 201, "y" * 800 + " z", "é" * 250, "日" * 300,
    "supercalifragilisticexpialidocious" * 7,
    # Invalid UTF-8 (FullTokenizer decodes bytes with errors="ignore").
    b"abc\xffdef", b"\xe2\x82 trunc\xe2", b"\xc0\x80overlong", b"\xed\xa0\x80sur",
    b"\xf4\x90\x80\x80big", b"\x80\x80\x80", b"caf\xc3\xa9 ok",
]


def full_tokenizer(vocab, lower_case):
  from official.nlp.tools import tokenization
  tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=lower_case)
  tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 200
  return tokenizer


def mismatches(model, tokenizer, texts):
  """[(text, ours, FullTokenizer's)] for every text whose ids differ."""
  found = []
  for i in range(0, len(texts), 512):
    batch = texts[i:i + 512]
    ours = model.tokenize(tf.constant(batch)).merge_dims(1, 2).to_list()
    for text, got in zip(batch, ours):
      want = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
      if got != want:
        found.append((text, got, want))
  return found


def saved(vocab, lower_case, path):
  obj = create_preprocessing(vocab_file=vocab, lower_case=lower_case)
  tf.saved_model.save(obj, str(path), signatures=preprocessing_signatures(obj))
  return hub.load(str(path))


@pytest.fixture(scope="module")
def uncased(run_shared):
  """The uncased MiniLM model (lower_case=True, faithful), saved and reloaded."""
  assert fixtures.MINILM_PREPROCESSING["lower_case"] is True
  assert "normalization" not in fixtures.MINILM_PREPROCESSING  # faithful
  return hub.load(fixtures.saved_minilm_preprocessing(run_shared))


@pytest.fixture(scope="module")
def corpus():
  sentences = pydoc_sentences()
  assert len(sentences) >= 1500
  return sentences


@pytest.fixture(scope="module")
def cased_vocab(tmp_path_factory):
  """MiniLM's tokens, their Capitalized and UPPER forms, HAND_SET's chars."""
  with open(os.path.join(minilm_dir(), "vocab.txt"), encoding="utf-8") as f:
    uncased = f.read().split("\n")[:-1]
  tokens, seen = [], set()
  for token in uncased + [t.capitalize() for t in uncased if t.isalpha()] + [
      t.upper() for t in uncased if t.isalpha()] + sorted(
          {c for text in HAND_SET if isinstance(text, str) for c in text
           if not c.isspace()}):
    if token not in seen:
      seen.add(token)
      tokens.append(token)
  path = tmp_path_factory.mktemp("cased") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return str(path)


@pytest.mark.slow
def test_uncased_minilm(corpus, uncased):
  vocab = os.path.join(minilm_dir(), "vocab.txt")
  tokenizer = full_tokenizer(vocab, True)
  assert mismatches(uncased, tokenizer, corpus + HAND_SET) == []


@pytest.mark.slow
def test_cased_vocab(corpus, cased_vocab, tmp_path):
  model = saved(cased_vocab, False, tmp_path)
  tokenizer = full_tokenizer(cased_vocab, False)
  assert mismatches(model, tokenizer, corpus + HAND_SET) == []
  # The vocab really is cased: capitals get their own ids.
  assert model.tokenize(tf.constant(["The the"])).to_list()[0][0] != (
      model.tokenize(tf.constant(["The the"])).to_list()[0][1])


@pytest.mark.slow
def test_hand_set_exercises_the_hard_cases(uncased, run_shared):
  """HAND_SET hits what NFKC case folding (TF Text's lower_case) changes.

  Both MiniLM models (lower_case=True) are the ones saved once per run; the
  whole set goes through each in one batch (each row's ids do not depend on
  the others', tests/test_preprocessing_model.py).
  """
  settings = fixtures.MINILM_TF_TEXT_PREPROCESSING
  assert settings["lower_case"] is True and settings["normalization"] == "tf_text"
  tf_text = hub.load(fixtures.saved_minilm_tf_text_preprocessing(run_shared))
  batch = tf.constant(HAND_SET)
  faithful_ids = uncased.tokenize(batch).to_list()
  tf_text_ids = tf_text.tokenize(batch).to_list()
  assert len(faithful_ids) == len(tf_text_ids) == len(HAND_SET)
  differing = [t for t, a, b in zip(HAND_SET, faithful_ids, tf_text_ids)
               if a != b]
  assert len(differing) >= 8, differing
