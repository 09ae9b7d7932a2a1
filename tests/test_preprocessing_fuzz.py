"""Random text and random bytes through the saved preprocessing model.

Each model is saved and reloaded once per module. For every random batch:
  * nothing crashes, whatever the bytes;
  * the ids equal BERT's FullTokenizer's (tf-models' copy, with
    google-research/bert's 200-character word limit) for random Unicode, for
    random bytes (FullTokenizer decodes them with errors="ignore"), and for
    text drawn from an alphabet of the characters where normalization is
    subtle (final sigma, combining marks and their order, dotted I, ...);
  * the root call packs those ids: input_mask is 1 exactly on the first
    min(tokens + 2, T) positions, input_word_ids is [CLS] ids [SEP] there and
    [PAD] after, input_type_ids is 0;
  * offsets stay inside the input; bert_pack_inputs on two segments marks
    segment 1 (and only it) with type 1 and never exceeds seq_length.
Batches mix sentences of the fast and the exact route.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.preprocessing import create_preprocessing
from bert_hub.preprocessing import preprocessing_signatures

import os
import unicodedata

from benchmarks.preprocessing import minilm_dir
from hypothesis import example
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

SEQ_LENGTH = 24
pytestmark = pytest.mark.slow  # About a minute: hundreds of random batches.
FUZZ = settings(deadline=None, max_examples=120, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

# Characters where lower(), NFD, Mn-stripping or cleaning are subtle.
TRICKY = ("Σσςα Α'.\u0345\u0301\u0300\u0308\u05b0\u0591"  # sigma, marks
          "\U0001d165\U0001d16d\U0001d16e\u302e\u0f71\u0f72\u0f80"  # Mc, ccc
          "\u0130i\u0307I\u0131ß\u1e9e\u1f82\u1fed\u037e\u0387"  # İ, ß, ᾂ, ;
          "\u00ad\u200b\u2028\u00a0\x00\ufffd가힣日ﬁ…")


def full_tokenizer(vocab, lower_case):
  from official.nlp.tools import tokenization
  tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=lower_case)
  tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 200
  return tokenizer


def saved(vocab, lower_case, path, **kwargs):
  obj = create_preprocessing(vocab_file=vocab, lower_case=lower_case,
                             default_seq_length=SEQ_LENGTH, **kwargs)
  tf.saved_model.save(obj, str(path), signatures=preprocessing_signatures(obj))
  return hub.load(str(path))


def ragged_list(rt) -> list:
  """rt.to_list() of a RaggedTensor, built from its numpy components.

  The same nested lists of ints, about ten times faster than to_list() on
  tokenize's [B, (W), (P)] (test_ragged_list_is_to_list checks it).
  """
  values = rt.flat_values.numpy().tolist()
  for splits in reversed(rt.nested_row_splits):
    bounds = splits.numpy().tolist()
    values = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
  return values


def special_tokens(model) -> dict:
  return {k: int(v) for k, v in
          model.tokenize.get_special_tokens_dict().items()}


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
  """(model, FullTokenizer, its special token ids)."""
  vocab = os.path.join(minilm_dir(), "vocab.txt")
  model = saved(vocab, True, tmp_path_factory.mktemp("minilm"),
                tokenize_with_offsets=True)
  return model, full_tokenizer(vocab, True), special_tokens(model)


def tricky_vocab_tokens():
  """Every piece a word of TRICKY characters can normalize to, and more."""
  forms = set()
  for c in TRICKY:
    for form in (c, c.lower(), unicodedata.normalize("NFD", c.lower())):
      stripped = "".join(x for x in form
                         if unicodedata.category(x) != "Mn")
      forms |= {form, stripped} | set(form)
  forms = sorted(f for f in forms if f and not f.isspace())
  return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + forms +
          ["##" + f for f in forms] + ["σς", "ας", "##ας", "αα"])


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tricky(request, tmp_path_factory):
  path = tmp_path_factory.mktemp("tricky") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in tricky_vocab_tokens()),
                  encoding="utf-8")
  model = saved(str(path), request.param, tmp_path_factory.mktemp("saved"))
  return model, full_tokenizer(str(path), request.param), special_tokens(model)


def check_batch(model, tokenizer, special, texts):
  """ids == FullTokenizer's, and the root call packs exactly those ids.

  special: special_tokens(model). Returns tokenize's output as a list.
  """
  batch = tf.constant(texts)
  tokens = ragged_list(model.tokenize(batch))  # [B, (W), (P)]
  ours = [[i for word in row for i in word] for row in tokens]
  wants = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t))
           for t in texts]
  assert ours == wants, [(t, o, w) for t, o, w in zip(texts, ours, wants)
                         if o != w]
  packed = {k: v.numpy() for k, v in model(batch).items()}
  for row, ids in enumerate(wants):
    kept = ids[:SEQ_LENGTH - 2]
    length = len(kept) + 2
    assert packed["input_mask"][row].tolist() == (
        [1] * length + [0] * (SEQ_LENGTH - length))
    assert packed["input_word_ids"][row].tolist() == (
        [special["start_of_sequence_id"]] + kept +
        [special["end_of_segment_id"]] +
        [special["padding_id"]] * (SEQ_LENGTH - length))
    assert not packed["input_type_ids"][row].any()
  return tokens


@FUZZ
@given(st.lists(st.text(max_size=60), min_size=1, max_size=8))
def test_random_unicode(minilm, texts):
  check_batch(*minilm, [t.encode("utf-8") for t in texts])


@FUZZ
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=8))
def test_random_bytes(minilm, texts):
  model, _, _ = minilm
  tokenized = check_batch(*minilm, texts)
  tokens, starts, limits = map(
      ragged_list, model.tokenize_with_offsets(tf.constant(texts)))
  assert tokens == tokenized
  for text, row_starts, row_limits in zip(texts, starts, limits):
    for word_starts, word_limits in zip(row_starts, row_limits):
      for start, limit in zip(word_starts, word_limits):
        assert 0 <= start < limit <= len(text)


@FUZZ
@given(st.lists(st.text(alphabet=TRICKY, max_size=30), min_size=1, max_size=8))
@example(["α\U0001d16d\U0001d165", "α\u0f71\u302e"])  # NFD reorders marks.
@example(["ΑΣ ΑΣ'Α Σ Α\u0345Σ ΑΣ\u0345"])  # Final sigma, case-ignorables.
@example(["\u0130I\u0307 ᾂ\u1fed"])  # lower() and NFD expand.
def test_tricky_characters(tricky, texts):
  check_batch(*tricky, [t.encode("utf-8") for t in texts])


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)),
                min_size=1, max_size=6),
       st.integers(min_value=3, max_value=40))
def test_pack_two_segments(minilm, pairs, seq_length):
  model, _, special = minilm
  first = model.tokenize(tf.constant([a.encode() for a, _ in pairs]))
  second = model.tokenize(tf.constant([b.encode() for _, b in pairs]))
  # seq_length as a tensor: the reloaded function traces again for every new
  # Python int (about a second each); test_pack_python_int_seq_length below
  # checks that an int packs exactly as the tensor does.
  out = {k: v.numpy() for k, v in model.bert_pack_inputs(
      [first, second], seq_length=tf.constant(seq_length)).items()}
  assert all(v.shape == (len(pairs), seq_length) for v in out.values())
  sep = special["end_of_segment_id"]
  lengths = zip(first.merge_dims(1, 2).row_lengths().numpy(),
                second.merge_dims(1, 2).row_lengths().numpy())
  for row, (a, b) in enumerate(lengths):
    mask = out["input_mask"][row]
    total = int(mask.sum())
    assert mask.tolist() == [1] * total + [0] * (seq_length - total)
    assert total == min(a + b, seq_length - 3) + 3
    types = out["input_type_ids"][row]
    first_part = total - int(types.sum())  # [CLS] segment 0 [SEP]
    assert types.tolist() == ([0] * first_part + [1] * (total - first_part) +
                              [0] * (seq_length - total))
    assert 2 <= first_part <= a + 2 and total - first_part <= b + 1
    assert out["input_word_ids"][row][first_part - 1] == sep
    assert out["input_word_ids"][row][total - 1] == sep
    assert np.all(out["input_word_ids"][row][total:] == 0)


def test_pack_python_int_seq_length(minilm):
  """A Python int seq_length (as hub.KerasLayer's `arguments` pass it) packs
  exactly as the tensor of test_pack_two_segments, at its extremes."""
  model, _, _ = minilm
  first = model.tokenize(tf.constant(
      [b"hello world", b"", "\u039f\u0394\u039f\u03a3 caf\u00e9 x".encode()]))
  second = model.tokenize(tf.constant([b"a b c d e f g h", b"x", b""]))
  for seq_length in (3, 40):
    want = model.bert_pack_inputs([first, second],
                                  seq_length=tf.constant(seq_length))
    got = model.bert_pack_inputs([first, second], seq_length=seq_length)
    assert set(got) == set(want)
    for key in want:
      assert got[key].shape == (3, seq_length)
      np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


def test_ragged_list_is_to_list(minilm):
  model, _, _ = minilm
  for texts in ([b"Hello, world!", b"", "\u039f\u0394\u039f\u03a3 x".encode(), b" "],
                []):
    outputs = [model.tokenize(tf.constant(texts, tf.string)),
               *model.tokenize_with_offsets(tf.constant(texts, tf.string))]
    for rt in outputs + [rt.merge_dims(1, 2) for rt in outputs]:
      assert ragged_list(rt) == rt.to_list()
