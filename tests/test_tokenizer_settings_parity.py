"""Hugging Face BertTokenizer's strip_accents and tokenize_chinese_chars.

create_preprocessing(strip_accents=..., tokenize_chinese_chars=...) against:
  * hand-worked ids on a small vocab (every setting, fast and exact route);
  * Hugging Face's BertTokenizerFast (the `tokenizers` BertNormalizer and
    BertPreTokenizer, what most users run), built from the vocab file with
    the same do_lower_case / strip_accents / tokenize_chinese_chars: ids of
    `.tokenize` (flattened) == its ids without [CLS]/[SEP], and the root
    call == its [CLS] ids [SEP], truncated and padded to SEQ_LENGTH;
  * transformers' Python BertTokenizer (`BertTokenizerLegacy` since
    transformers 5), whose BasicTokenizer is FullTokenizer's plus these two
    settings, on NFC text including what BertTokenizerFast does differently;
  * for random text of test_preprocessing_fuzz.py's tricky characters:
    FullTokenizer's own steps (tf-models' copy) with the two settings applied
    as transformers' BasicTokenizer.tokenize applies them (without its NFC).

Texts where BertTokenizerFast legitimately differs from FullTokenizer and its
Python twin are kept out of the BertTokenizerFast comparisons (each is checked
to differ in test_documented_differences_from_bert_tokenizer_fast):
  * an upper-case word-final sigma ("ΟΔΟΣ"): BertTokenizerFast lower-cases
    character by character ("οδοσ"), Python's str.lower() gives "οδος";
  * special tokens written in the text ("[MASK]"): it keeps them as one id;
  * words of 101-200 characters: its WordPiece makes them [UNK] (limit 100,
    FullTokenizer's is 200);
  * private-use characters (dropped by it), characters assigned or
    re-categorized after Unicode 14 (its tables are other versions), and
    U+2B820-U+2B91F (outside its CJK ranges): none occur in the texts below.
The Python BertTokenizer NFC-composes the text first (FullTokenizer does not),
so it is given NFC text.

Vocabularies: the MiniLM one (uncased, without a single accented token, so
accents kept there mostly give [UNK]) and ACCENT_VOCAB, written here: MiniLM's
tokens, their Capitalized forms, and every word and character (also as "##"
piece) of the texts below in every form the settings make of them.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.preprocessing import create_preprocessing
from bert_hub.preprocessing import preprocessing_signatures

import functools
import os
import unicodedata

from benchmarks.preprocessing import minilm_dir
from benchmarks.preprocessing import pydoc_sentences
from hypothesis import example
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from tests import fixtures
from tests.test_preprocessing_fuzz import TRICKY
from tests.test_preprocessing_fuzz import tricky_vocab_tokens

# The in-memory models run eagerly (tests/conftest.py): a model per setting,
# called on a few texts each.
pytestmark = pytest.mark.eager_functions
SEQ_LENGTH = 48
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

ACCENTED = [
    # French.
    "Le garçon a mangé une crème brûlée à l'hôtel, près de la forêt.",
    "Où êtes-vous allés cet été ? Noël approche déjà !",
    "ÇA COÛTE CHER : naïveté, cœur et Œuvre complète.",
    # German.
    "Die Straße führt über die Brücke zum Schloß.",
    "Größere Äpfel schmecken süßer als Öl. ÜBER ÄRGER",
    # Vietnamese (stacked marks: "ệ" is e + U+0323 + U+0302 under NFD).
    "Tiếng Việt có nhiều dấu thanh.",
    "Hà Nội là thủ đô của Việt Nam; người Việt ăn phở mỗi sáng.",
    "TIẾNG VIỆT ĐẸP LẮM",
    # Greek with tonos and dialytika; capital sigma only where it is not
    # word-final (see the module docstring).
    "Η Ελλάδα είναι όμορφη χώρα με πολλά νησιά.",
    "Καλημέρα, τι κάνεις; ΣΤΗΝ ΑΘΗΝΑ ΆΝΟΙΞΕ Ένα ΪΌΝ.",
    # Accents written decomposed (no composition: "e\u0301" stays two).
    "Cafe\u0301 cre\u0300me NOE\u0308L",
]
CJK = [
    "我爱北京天安门。",
    "東京は日本の首都です。",
    "中文和English混合text测试，价格是100元。",
    "日本語のテキスト、漢字とかな。",
    "韩国 한국어 텍스트와 漢字",
    "Mixed 中文 and Café 日本",
]
# Where BertTokenizerFast differs (only for the Python BertTokenizer, and to
# check that it does differ).
FINAL_SIGMA = ["ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ ΑΣ' Σα", "ΕΛΛΗΝΙΚΟΣ ΠΟΛΙΤΙΣΜΟΣ"]


def english() -> list:
  """A few hundred of tests/test_tokenization_parity.py's pydoc sentences.

  Without the ones BertTokenizerFast tokenizes differently by design: with a
  special token written in the text, or a whitespace-separated word of over
  100 characters (a superset of those with a longer BERT word).
  """
  sample = pydoc_sentences()[::10][:400]
  kept = [s for s in sample
          if not any(t in s for t in SPECIAL) and
          max(map(len, s.split()), default=0) <= 100]
  assert len(sample) == 400 and len(kept) >= 390, len(kept)
  assert all(unicodedata.category(c) != "Co" for s in kept for c in s)
  return kept


def forms(text: str) -> set:
  """The words of `text` in every form the settings make of them."""
  def strip(s):
    return "".join(c for c in unicodedata.normalize("NFD", s)
                   if unicodedata.category(c) != "Mn")
  out = set()
  for variant in (text, text.lower(), strip(text), strip(text.lower())):
    out |= {w.strip(".,;:!?()'、。，") for w in variant.split()}
  return {w for w in out if w}


def test_this_module_runs_functions_eagerly():
  assert tf.config.functions_run_eagerly()


@pytest.fixture(scope="module")
def accent_vocab(tmp_path_factory):
  """MiniLM's tokens + Capitalized + the words and characters of the texts."""
  with open(os.path.join(minilm_dir(), "vocab.txt"), encoding="utf-8") as f:
    tokens = f.read().split("\n")[:-1]
  extra = set()
  for text in ACCENTED + CJK + FINAL_SIGMA:
    for word in forms(text):
      extra |= {word} | {c for c in word} | {"##" + c for c in word}
  extra |= {t.capitalize() for t in tokens if t.isalpha()}
  seen = set(tokens)
  tokens += sorted(t for t in extra if t not in seen)
  path = tmp_path_factory.mktemp("accent") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def models(run_shared):
  """get(vocab, lower_case, strip_accents, chinese) -> the model, built once per module.

  MiniLM's with the default settings is the saved and reloaded one
  tests/fixtures.py saves once per run (also checked by other modules); the
  others are the in-memory objects: saving and reloading them takes longer
  than the comparisons (about 6 s each) and checks nothing about the settings
  that test_settings_survive_save_and_reload below does not.
  """
  assert fixtures.MINILM_PREPROCESSING == dict(
      lower_case=True, default_seq_length=SEQ_LENGTH, tokenize_with_offsets=True)
  minilm = (os.path.join(minilm_dir(), "vocab.txt"), True, None, True)
  cache = {}

  def get(vocab, lower_case, strip_accents, tokenize_chinese_chars):
    key = (vocab, lower_case, strip_accents, tokenize_chinese_chars)
    if key == minilm and key not in cache:
      cache[key] = hub.load(fixtures.saved_minilm_preprocessing(run_shared))
    if key not in cache:
      cache[key] = create_preprocessing(
          vocab_file=vocab, lower_case=lower_case, strip_accents=strip_accents,
          tokenize_chinese_chars=tokenize_chinese_chars,
          default_seq_length=SEQ_LENGTH, bert_pack_inputs=False)  # not used here
    return cache[key]
  return get


@pytest.mark.parametrize("lower_case, strip_accents, chinese", [
    (False, True, True), (True, False, False)])
def test_settings_survive_save_and_reload(models, accent_vocab, tmp_path,
                                          lower_case, strip_accents, chinese):
  """Saved (preprocessing_signatures) and reloaded with hub.load, a model with
  other settings than the defaults gives the in-memory model's ids, packed
  inputs and signature outputs."""
  obj = models(accent_vocab, lower_case, strip_accents, chinese)
  tf.saved_model.save(obj, str(tmp_path), signatures=preprocessing_signatures(obj))
  loaded = hub.load(str(tmp_path))
  texts = tf.constant(ACCENTED + CJK + FINAL_SIGMA)
  assert (loaded.tokenize(texts).to_list() == obj.tokenize(texts).to_list())
  want = obj(texts)
  for got in (loaded(texts), loaded.signatures["serving_default"](sentences=texts)):
    assert set(want) <= set(got)
    for key in want:
      np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


@functools.lru_cache(maxsize=None)  # (Built once per vocab and settings.)
def bert_tokenizer_fast(vocab, **settings):
  """transformers.BertTokenizerFast of a vocab.txt, nothing downloaded."""
  from transformers import BertTokenizerFast
  with open(vocab, encoding="utf-8") as f:
    size = len(f.read().split("\n")[:-1])
  # transformers 5 takes the path as `vocab` (and ignores `vocab_file`);
  # transformers 4 takes `vocab_file`.
  for argument in ("vocab", "vocab_file"):
    tokenizer = BertTokenizerFast(**{argument: vocab}, **settings)
    if len(tokenizer.get_vocab()) == size:
      return tokenizer
  raise AssertionError(f"BertTokenizerFast did not read {vocab}")


@functools.lru_cache(maxsize=None)
def bert_tokenizer_python(vocab, **settings):
  """transformers' Python BertTokenizer (FullTokenizer's BasicTokenizer)."""
  try:
    from transformers.models.bert.tokenization_bert_legacy import (  # pylint: disable=g-import-not-at-top
        BertTokenizerLegacy as python_tokenizer)
  except ImportError:  # transformers 4: BertTokenizer is the Python one.
    from transformers import BertTokenizer as python_tokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = python_tokenizer(vocab_file=vocab, **settings)
  tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 200  # FullTokenizer's.
  return tokenizer


def mismatches(model, reference, texts):
  """[(text, what, ours, reference's)] where tokenize or the root call differ."""
  found = []
  ours = model.tokenize(tf.constant(texts)).merge_dims(1, 2).to_list()
  packed = model(tf.constant(texts))["input_word_ids"].numpy().tolist()
  for text, got, got_packed in zip(texts, ours, packed):
    want = reference(text, add_special_tokens=False)["input_ids"]
    if got != want:
      found.append((text, "tokenize", got, want))
    want = reference(text, truncation=True, max_length=SEQ_LENGTH,
                     padding="max_length")["input_ids"]
    if got_packed != want:
      found.append((text, "root call", got_packed, want))
  return found


# Hand-worked ids: a vocab where each form of "Café" etc. has its own id.
HAND_VOCAB = SPECIAL + [
    "cafe", "café", "Cafe", "Café", "##\u0301", "ο", "##δ", "##ο", "##ς",  # 5-13
    "##σ", "Ο", "##Δ", "##Ο", "##Σ", "日", "##本", "本", "語", "##語",  # 14-23
    "。", "cafe\u0301", "Cafe\u0301", "e", "##s"]  # 24-28


def hand_ids(*tokens):
  return [HAND_VOCAB.index(t) for t in tokens]


@pytest.fixture(scope="module")
def hand_models(tmp_path_factory):
  """get(lower_case, strip_accents, chinese) -> in-memory model, with offsets."""
  path = tmp_path_factory.mktemp("hand") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in HAND_VOCAB), encoding="utf-8")
  cache = {}

  def get(*settings):
    if settings not in cache:
      lower_case, strip_accents, chinese = settings
      cache[settings] = create_preprocessing(
          vocab_file=str(path), lower_case=lower_case,
          strip_accents=strip_accents, tokenize_chinese_chars=chinese,
          tokenize_with_offsets=True, bert_pack_inputs=False)  # not used here
    return cache[settings]
  return get


@pytest.mark.parametrize("lower_case, strip_accents, chinese, text, pieces", [
    # strip_accents None follows lower_case (FullTokenizer).
    (True, None, True, "Café", [["cafe"]]),
    (False, None, True, "Café", [["Café"]]),
    # Lower-cased, accents kept: no NFD, and no NFC either.
    (True, False, True, "Café", [["café"]]),
    (True, False, True, "café", [["café"]]),  # (fast route)
    (True, False, True, "CAFE\u0301", [["cafe\u0301"]]),
    (True, False, True, "ΟΔΟΣ οδοσ", [["ο", "##δ", "##ο", "##ς"],
                                      ["ο", "##δ", "##ο", "##σ"]]),
    # Case kept, accents stripped.
    (False, True, True, "Café", [["Cafe"]]),
    (False, True, True, "Cafe\u0301s", [["Cafe", "##s"]]),
    (False, True, True, "ΟΔΟΣ", [["Ο", "##Δ", "##Ο", "##Σ"]]),
    (True, True, True, "Cafe\u0301", [["cafe"]]),
    (False, False, True, "Cafe\u0301", [["Cafe\u0301"]]),
    # tokenize_chinese_chars=False: ideographs inside words, punctuation
    # (U+3002) still splits.
    (True, None, True, "日本語。", [["日"], ["本"], ["語"], ["。"]]),
    (True, None, False, "日本語。", [["日", "##本", "##語"], ["。"]]),
    (False, None, False, "本日", [["[UNK]"]]),  # No "##日": all [UNK].
    (True, False, False, "日本 Café", [["日", "##本"], ["café"]]),
])
def test_hand_worked_ids(hand_models, lower_case, strip_accents, chinese, text,
                         pieces):
  obj = hand_models(lower_case, strip_accents, chinese)
  batch = tf.constant([text, "e"])  # "e" alone takes the fast route.
  got = obj.tokenize(batch).to_list()
  assert got[0] == [hand_ids(*word) for word in pieces]
  assert got[1] == [hand_ids("e")]
  tokens, starts, limits = obj.tokenize_with_offsets(batch)
  assert tokens.to_list() == got
  # Every word's pieces cover its original bytes, in order.
  for word_starts, word_limits in zip(starts.to_list()[0], limits.to_list()[0]):
    assert word_starts == sorted(word_starts)
    assert all(0 <= s < l <= len(text.encode()) for s, l in
               zip(word_starts, word_limits))


@pytest.mark.parametrize("lower_case, strip_accents, chinese", [
    (True, True, True), (True, False, True), (False, True, True),
    (False, False, True), (True, False, False), (False, False, False)])
def test_fast_route_only_takes_what_the_settings_leave_alone(
    lower_case, strip_accents, chinese):
  """Every character a sentence on the fast route may hold, per setting.

  The fast route lowers A-Z (if lower_case) and lets FastWordpiece split at
  whitespace, punctuation and CJK. So each such character must be kept,
  unchanged by the settings (Python's str.lower(), NFD, dropping Mn), no
  whitespace but " \t\n\r", no non-starter NFD could reorder (if
  strip_accents), and no CJK if not tokenize_chinese_chars. Checked with
  unicodedata, not with the tables the model is built from.
  """
  from bert_hub.preprocessing import unicode_tables
  fast = np.flatnonzero(~unicode_tables._not_fast(  # pylint: disable=protected-access
      unicode_tables._unicode_tables(), lower_case=lower_case,  # pylint: disable=protected-access
      strip_accents=strip_accents, tokenize_chinese_chars=chinese))
  assert len(fast) > 50_000
  bad = []
  for cp in fast:
    char = chr(cp)
    category = unicodedata.category(char)
    mapped = char.lower() if lower_case else char
    if strip_accents:
      mapped = "".join(c for c in unicodedata.normalize("NFD", mapped)
                       if unicodedata.category(c) != "Mn")
    want = char.lower() if lower_case and "A" <= char <= "Z" else char
    chinese_char = any(low <= cp <= high for low, high in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
        (0x2A700, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))
    if (mapped != want or cp in (0, 0xFFFD) or 0xD800 <= cp <= 0xDFFF or
        (category in ("Cc", "Cf") and char not in "\t\n\r") or
        ((char.isspace() or category == "Zs") and char not in " \t\n\r") or
        (strip_accents and unicodedata.combining(char)) or
        (not chinese and chinese_char)):
      bad.append(hex(cp))
  assert bad == []


@pytest.mark.slow
@pytest.mark.parametrize("strip_accents", [None, False])
@pytest.mark.parametrize("chinese", [True, False])
def test_minilm_equals_bert_tokenizer_fast(models, strip_accents,
                                           chinese):
  vocab = os.path.join(minilm_dir(), "vocab.txt")
  model = models(vocab, True, strip_accents, chinese)
  reference = bert_tokenizer_fast(vocab, do_lower_case=True,
                                  strip_accents=strip_accents,
                                  tokenize_chinese_chars=chinese)
  texts = ACCENTED + CJK + english()
  assert mismatches(model, reference, texts) == []


@pytest.mark.slow
@pytest.mark.parametrize("lower_case, strip_accents, chinese", [
    (True, None, True), (True, False, True), (False, None, True),
    (False, True, True), (True, False, False), (False, None, False)])
def test_accent_vocab_equals_bert_tokenizer_fast(models, accent_vocab,
                                                 lower_case, strip_accents,
                                                 chinese):
  model = models(accent_vocab, lower_case, strip_accents, chinese)
  reference = bert_tokenizer_fast(accent_vocab, do_lower_case=lower_case,
                                  strip_accents=strip_accents,
                                  tokenize_chinese_chars=chinese)
  texts = ACCENTED + CJK
  assert mismatches(model, reference, texts) == []
  # The vocab makes the settings matter: no text is all [UNK], and the
  # accented words are found whole.
  ours = model.tokenize(tf.constant(texts)).merge_dims(1, 2).to_list()
  assert all(set(ids) != {1} for ids in ours)
  words = model.tokenize(tf.constant(["garçon Việt"])).to_list()[0]
  assert [len(w) for w in words] == [1, 1], words


@pytest.mark.slow
def test_settings_change_the_ids(models, accent_vocab):
  """Each setting changes the ids of ACCENTED + CJK (so the parity tests see it)."""
  texts = tf.constant(ACCENTED + CJK)
  ids = {settings: models(accent_vocab, *settings).tokenize(texts)
         .merge_dims(1, 2).to_list()
         for settings in [(True, None, True), (True, False, True),
                          (False, None, True), (False, True, True),
                          (True, False, False), (False, None, False)]}
  assert len({str(v) for v in ids.values()}) == len(ids)


@pytest.mark.slow
@pytest.mark.parametrize("lower_case, strip_accents, chinese", [
    (True, None, True), (True, False, True), (False, True, True),
    (True, False, False), (False, None, False)])
def test_accent_vocab_equals_python_bert_tokenizer(
    models, accent_vocab, lower_case, strip_accents, chinese):
  """transformers' Python BertTokenizer, final sigma included, on NFC text."""
  model = models(accent_vocab, lower_case, strip_accents, chinese)
  reference = bert_tokenizer_python(accent_vocab, do_lower_case=lower_case,
                                    strip_accents=strip_accents,
                                    tokenize_chinese_chars=chinese)
  texts = [unicodedata.normalize("NFC", t)
           for t in ACCENTED + CJK + FINAL_SIGMA]
  assert mismatches(model, reference, texts) == []


@pytest.mark.slow
def test_documented_differences_from_bert_tokenizer_fast(models,
                                                         accent_vocab):
  """What the module docstring keeps out of the comparisons does differ."""
  model = models(accent_vocab, True, False, True)
  fast = bert_tokenizer_fast(accent_vocab, do_lower_case=True,
                             strip_accents=False)
  python = bert_tokenizer_python(accent_vocab, do_lower_case=True,
                                 strip_accents=False)
  for text in FINAL_SIGMA + ["[MASK] word", "x" * 150]:
    ours = model.tokenize(tf.constant([text])).flat_values.numpy().tolist()
    assert ours != fast(text, add_special_tokens=False)["input_ids"], text
    if not text.startswith("[MASK]"):  # (Both HF classes keep [MASK] whole.)
      assert ours == python(text, add_special_tokens=False)["input_ids"], text
  # Decomposed accents, kept: the Python BertTokenizer composes them (NFC).
  text = "Cafe\u0301"
  ours = model.tokenize(tf.constant([text])).flat_values.numpy().tolist()
  assert ours == fast(text, add_special_tokens=False)["input_ids"]
  assert ours != python(text, add_special_tokens=False)["input_ids"]
  assert np.all(np.array(ours) != 1)  # Found in the vocab, not [UNK].


def full_tokenizer_with_settings(vocab, *, lower_case, strip_accents,
                                 tokenize_chinese_chars):
  """text -> ids: FullTokenizer's steps with BertTokenizer's two settings.

  tf-models' copy of FullTokenizer (max_input_chars_per_word 200), with
  do_lower_case / strip_accents / tokenize_chinese_chars applied where and
  as transformers' BasicTokenizer.tokenize applies them (not its NFC).
  """
  from official.nlp.tools import tokenization  # pylint: disable=g-import-not-at-top
  full = tokenization.FullTokenizer(vocab, do_lower_case=lower_case)
  full.wordpiece_tokenizer.max_input_chars_per_word = 200
  basic = full.basic_tokenizer

  def tokenize(text):
    text = basic._clean_text(tokenization.convert_to_unicode(text))  # pylint: disable=protected-access
    if tokenize_chinese_chars:
      text = basic._tokenize_chinese_chars(text)  # pylint: disable=protected-access
    words = []
    for token in tokenization.whitespace_tokenize(text):
      if lower_case:
        token = token.lower()
        if strip_accents is not False:
          token = basic._run_strip_accents(token)  # pylint: disable=protected-access
      elif strip_accents:
        token = basic._run_strip_accents(token)  # pylint: disable=protected-access
      words += basic._run_split_on_punc(token)  # pylint: disable=protected-access
    return full.convert_tokens_to_ids(
        [piece for word in tokenization.whitespace_tokenize(" ".join(words))
         for piece in full.wordpiece_tokenizer.tokenize(word)])
  return tokenize


@pytest.fixture(scope="module", params=[
    (True, False, True), (False, True, True), (True, None, False),
    (False, None, False)], ids=lambda p: "lower%s-strip%s-chinese%s" % p)
def tricky(request, models, tmp_path_factory):
  path = tmp_path_factory.mktemp("tricky") / "vocab.txt"
  tokens = tricky_vocab_tokens()
  tokens += [t for t in ("日本", "本", "##本") if t not in tokens]
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  lower_case, strip_accents, chinese = request.param
  return (models(str(path), *request.param),
          full_tokenizer_with_settings(
              str(path), lower_case=lower_case, strip_accents=strip_accents,
              tokenize_chinese_chars=chinese))


@pytest.mark.slow
@settings(deadline=None, max_examples=60, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet=TRICKY + "本日 aA", max_size=30), min_size=1,
                max_size=8))
@example(["ΑΣ ΑΣ'Α Σ Α\u0345Σ ΑΣ\u0345"])  # Final sigma, case-ignorables.
@example(["\u0130I\u0307 ᾂ\u1fed α\U0001d16d\U0001d165"])  # Expand, reorder.
@example(["本日日本 a日 日a"])  # CJK inside words or not.
def test_tricky_characters_with_settings(tricky, texts):
  model, reference = tricky
  ours = model.tokenize(tf.constant(texts)).merge_dims(1, 2).to_list()
  want = [reference(t) for t in texts]
  assert ours == want, [(t, o, w) for t, o, w in zip(texts, ours, want)
                        if o != w]
