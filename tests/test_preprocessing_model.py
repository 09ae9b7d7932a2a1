"""bert_hub/preprocessing/model.py: the saved object, its API and signatures.

API, exact ids, bert_pack_inputs, Keras use, portability, the special_tokens
attribute, argument checks, serving. Oracles: a hand vocabulary with ids
worked out by hand; tf-models' `BertPackInputs` for packing and its
`export_tfhub_lib.create_preprocessing` for normalization="tf_text"; BERT's
`FullTokenizer` (tf-models' copy) for the text that offsets point at; the op
allowlist of TF Serving's TF 2.12.1 + TF Text 2.12.1
(export/data/serving_ops_allowlist.txt).
Every model is tested after tf.saved_model.save and a reload. Each is built
once per module; the two MiniLM ones (faithful and tf_text) are those
tests/fixtures.py saves once per run, which other modules check too.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.errors import BertHubError
from bert_hub.preprocessing import create_preprocessing
from bert_hub.preprocessing import preprocessing_signatures
from bert_hub.preprocessing import SpecialTokens
from bert_hub.vocab import read_vocab

import gc
import os
import pathlib
import shutil
import types

from benchmarks.preprocessing import minilm_dir
from benchmarks.preprocessing import pydoc_sentences
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the ops of the reference)
from tests import fixtures
from tests.test_preprocessing_packing import random_segments
import tf_keras

ALLOWLIST = (pathlib.Path(__file__).parents[1] / "export" / "data" /
             "serving_ops_allowlist.txt")
HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",  # 0-4
              "un", "##aff", "##able", "hello", "world",  # 5-9
              ",", "!", ".", "the", "cafe",  # 10-14
              "a", "##a", "日", "本", "##s",  # 15-19
              "…", "ß", "ο", "##δ", "##ο",  # 20-24
              "##ς", "##σ", "x", "##y"]  # 25-28
SEQ_LENGTH = 16


def minilm_vocab() -> str:
  return os.path.join(minilm_dir(), "vocab.txt")


def save_and_load(obj, path):
  tf.saved_model.save(obj, str(path), signatures=preprocessing_signatures(obj))
  return hub.load(str(path))


def ids(*tokens):
  return [HAND_VOCAB.index(t) for t in tokens]


@pytest.fixture(scope="module")
def hand_vocab(tmp_path_factory):
  path = tmp_path_factory.mktemp("hand") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in HAND_VOCAB), encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def hand_model(hand_vocab, tmp_path_factory):
  """The hand-vocab preprocessor (uncased, with offsets): obj (in memory),
  path (where it is saved) and loaded (reloaded from there). Not to be
  changed by the tests."""
  obj = create_preprocessing(vocab_file=hand_vocab, lower_case=True,
                             default_seq_length=SEQ_LENGTH,
                             tokenize_with_offsets=True)
  path = tmp_path_factory.mktemp("hand_saved")
  return types.SimpleNamespace(obj=obj, path=path,
                               loaded=save_and_load(obj, path))


@pytest.fixture(scope="module")
def hand(hand_model):
  """The hand-vocab preprocessor (uncased, with offsets), saved and reloaded."""
  return hand_model.loaded


@pytest.fixture(scope="module")
def minilm(run_shared):
  """The MiniLM (uncased) preprocessor with offsets, saved and reloaded."""
  assert fixtures.MINILM_PREPROCESSING["lower_case"] is True
  assert fixtures.MINILM_PREPROCESSING["tokenize_with_offsets"] is True
  assert "normalization" not in fixtures.MINILM_PREPROCESSING  # faithful
  path = fixtures.saved_minilm_preprocessing(run_shared)
  return hub.load(path), path


@pytest.fixture(scope="module")
def tf_text_minilm(run_shared):
  """MiniLM's with normalization="tf_text" (seq_length 32, with offsets)."""
  assert fixtures.MINILM_TF_TEXT_PREPROCESSING == dict(
      lower_case=True, default_seq_length=32, tokenize_with_offsets=True,
      normalization="tf_text")
  path = fixtures.saved_minilm_tf_text_preprocessing(run_shared)
  return hub.load(path), path


def test_root_call_shapes_and_dtypes(hand):
  out = hand(tf.constant(["unaffable hello", "", "the cafe!"]))
  assert set(out) == {"input_word_ids", "input_mask", "input_type_ids"}
  for value in out.values():
    assert value.dtype == tf.int32 and value.shape == (3, SEQ_LENGTH)
  assert out["input_word_ids"].numpy()[:, :6].tolist() == [
      ids("[CLS]", "un", "##aff", "##able", "hello", "[SEP]"),
      ids("[CLS]", "[SEP]", "[PAD]", "[PAD]", "[PAD]", "[PAD]"),
      ids("[CLS]", "the", "cafe", "!", "[SEP]", "[PAD]")]
  assert out["input_mask"].numpy().sum(axis=1).tolist() == [6, 2, 5]
  assert not out["input_type_ids"].numpy().any()


def test_serving_signature(hand):
  signature = hand.signatures["serving_default"]
  _, inputs = signature.structured_input_signature
  assert inputs == {"sentences": tf.TensorSpec([None], tf.string, "sentences")}
  assert signature.structured_outputs == {
      k: tf.TensorSpec([None, SEQ_LENGTH], tf.int32, k)
      for k in ("input_word_ids", "input_mask", "input_type_ids")}
  out = signature(sentences=tf.constant(["hello world"]))
  assert out["input_word_ids"].numpy()[0, :4].tolist() == ids(
      "[CLS]", "hello", "world", "[SEP]")


def test_tokenize_and_special_tokens(hand):
  tokens = hand.tokenize(tf.constant(["Hello, world!", "UNAFFABLE"]))
  assert isinstance(tokens, tf.RaggedTensor) and tokens.dtype == tf.int32
  assert tokens.shape.rank == 3 and tokens.ragged_rank == 2
  assert tokens.to_list() == [
      [ids("hello"), ids(","), ids("world"), ids("!")],
      [ids("un", "##aff", "##able")]]
  for tokenize in (hand.tokenize, hand.tokenize_with_offsets):
    special = tokenize.get_special_tokens_dict()
    assert {k: (v.dtype, v.shape, int(v)) for k, v in special.items()} == {
        "vocab_size": (tf.int32, (), len(HAND_VOCAB)),
        "start_of_sequence_id": (tf.int32, (), 2),
        "end_of_segment_id": (tf.int32, (), 3),
        "padding_id": (tf.int32, (), 0),
        "mask_id": (tf.int32, (), 4)}


def test_special_tokens_attribute_in_memory_only(hand_vocab, hand_model):
  """preprocessor.special_tokens: the ids behind get_special_tokens_dict()."""
  obj, loaded = hand_model.obj, hand_model.loaded
  assert obj.special_tokens == SpecialTokens.from_vocab(read_vocab(hand_vocab))
  assert obj.special_tokens.as_dict() == {
      k: int(v) for k, v in obj.tokenize.get_special_tokens_dict().items()}
  assert not hasattr(loaded, "special_tokens")  # Not tracked, not saved.
  assert {k: int(v) for k, v in loaded.tokenize.get_special_tokens_dict(
  ).items()} == obj.special_tokens.as_dict()


def test_without_bert_pack_inputs(hand_vocab, hand_model, tmp_path):
  """bert_pack_inputs=False (the text servables' tokenizer): no
  .bert_pack_inputs, in memory or saved; the same ids from tokenize and the
  root call as the full model's."""
  obj = create_preprocessing(vocab_file=hand_vocab, lower_case=True,
                             default_seq_length=SEQ_LENGTH, bert_pack_inputs=False)
  assert not hasattr(obj, "bert_pack_inputs")
  texts = tf.constant(["Café CAFÉS unaffable", "日本 xyz", ""])
  full = hand_model.obj
  assert obj.tokenize(texts).to_list() == full.tokenize(texts).to_list()
  want = full(texts)
  for got in (obj(texts), save_and_load(obj, tmp_path)(texts)):
    assert sorted(got) == sorted(want)
    for key, value in want.items():
      np.testing.assert_array_equal(got[key].numpy(), value.numpy(), err_msg=key)
  assert not hasattr(tf.saved_model.load(str(tmp_path)), "bert_pack_inputs")


@pytest.mark.parametrize("text, pieces", [
    ("unaffable", [["un", "##aff", "##able"]]),  # BERT's docstring example.
    ("Café CAFÉS", [["cafe"], ["cafe", "##s"]]),  # Lowered, accents stripped.
    ("cafe\u0301", [["cafe"]]),  # A separate combining accent too.
    ("hello,world.", [["hello"], [","], ["world"], ["."]]),
    ("日本", [["日"], ["本"]]),  # CJK characters are words of their own.
    ("xyz", [["[UNK]"]]),  # No piece for "z": the whole word is [UNK].
    ("…ß", [["…"], ["ß"]]),  # No NFKC: "…" and "ß" stay (TF Text: "...", "ss").
    ("ΟΔΟΣ οδοσ", [["ο", "##δ", "##ο", "##ς"], ["ο", "##δ", "##ο", "##σ"]]),
    ("a\u00a0a a\u3000a\ta", [["a"]] * 5),  # Unicode spaces separate words.
    ("a\u200ba a\u00ada", [["a", "##a"]] * 2),  # Format chars are dropped.
    ("a\x00a", [["a", "##a"]]),  # NUL is dropped, and does not end the string.
    (b"a\xffa \xe2\x82a", [["a", "##a"], ["a"]]),  # Invalid UTF-8 is dropped.
    ("a" * 200, [["a"] + ["##a"] * 199]),  # At most 200 characters per word,
    ("a" * 201, [["[UNK]"]]),  # more is [UNK],
    ("é" * 201, [["[UNK]"]]),  # counted in characters (402 bytes).
    ("", []), (" \t\n\u200b", []),
])
def test_exact_ids_on_hand_vocab(hand, text, pieces):
  got = hand.tokenize(tf.constant([text])).to_list()[0]
  assert got == [ids(*word) for word in pieces]


@pytest.mark.parametrize("num_segments", [1, 2, 3])
@pytest.mark.parametrize("ragged_rank", [1, 2])
def test_bert_pack_inputs_matches_tf_models(hand, num_segments, ragged_rank):
  from official.nlp.modeling import layers
  rng = np.random.default_rng(10 * num_segments + ragged_rank)
  for trial in range(12):
    segments = random_segments(rng, num_segments, ragged_rank,
                                batch_size=int(rng.integers(1, 9)))
    seq_length = None if trial == 0 else int(rng.integers(1, 24))
    want = layers.BertPackInputs(
        seq_length or SEQ_LENGTH, start_of_sequence_id=2, end_of_segment_id=3,
        padding_id=0)(segments)
    # seq_length: none (the default), a Python int on trials 1, 5 and 9 (the
    # reloaded function traces again for each new int, about a second each),
    # else the int32 scalar tensor its saved functions take.
    if seq_length is None:
      got = hand.bert_pack_inputs(segments)
    elif trial % 4 == 1:
      got = hand.bert_pack_inputs(segments, seq_length=seq_length)
    else:
      got = hand.bert_pack_inputs(segments, seq_length=tf.constant(seq_length))
    assert set(got) == set(want)
    for key in want:
      assert got[key].dtype == want[key].dtype == tf.int32, key
      np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(),
                                    err_msg=f"{key} seq_length={seq_length}")


def test_bert_pack_inputs_of_tokenize_output(hand):
  tokens = hand.tokenize(tf.constant(["unaffable hello", "the cafe"]))
  more = hand.tokenize(tf.constant(["world !", "a"]))
  out = hand.bert_pack_inputs([tokens, more], seq_length=tf.constant(7))
  # Row 0 has 4 + 2 tokens for 7 - 3 places: round robin keeps 2 + 2.
  assert out["input_word_ids"].numpy().tolist() == [
      ids("[CLS]", "un", "##aff", "[SEP]", "world", "!", "[SEP]"),
      ids("[CLS]", "the", "cafe", "[SEP]", "a", "[SEP]", "[PAD]")]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1],
                                                    [0, 0, 0, 0, 1, 1, 0]]
  assert out["input_mask"].numpy().tolist() == [[1] * 7, [1] * 6 + [0]]


def test_keras_layer_usage_of_the_model_page(hand):
  """tokenize and bert_pack_inputs as hub.KerasLayers in a tf_keras model."""
  text_inputs = [tf_keras.layers.Input(shape=(), dtype=tf.string)
                 for _ in range(2)]
  tokenize = hub.KerasLayer(hand.tokenize)
  tokenized_inputs = [tokenize(segment) for segment in text_inputs]
  bert_pack_inputs = hub.KerasLayer(hand.bert_pack_inputs,
                                    arguments=dict(seq_length=10))
  encoder_inputs = bert_pack_inputs(tokenized_inputs)
  model = tf_keras.Model(text_inputs, encoder_inputs)
  assert {type(layer).__name__ for layer in model.layers} == {
      "InputLayer", "KerasLayer"}
  first, second = tf.constant(["hello world", "unaffable"]), tf.constant(
      ["the cafe", "a"])
  got = model([first, second])
  want = hand.bert_pack_inputs([hand.tokenize(first), hand.tokenize(second)],
                               seq_length=10)
  for key in want:
    assert got[key].shape == (2, 10)
    np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


def test_keras_layer_of_the_root(hand_model):
  obj = hand_model.obj
  text_input = tf_keras.layers.Input(shape=(), dtype=tf.string)
  model = tf_keras.Model(text_input,
                         hub.KerasLayer(str(hand_model.path))(text_input))
  sentences = tf.constant(["hello world", "the cafe"])
  got, want = model(sentences), obj(sentences)
  for key in want:
    assert got[key].shape == (2, SEQ_LENGTH)
    np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())


@pytest.mark.parametrize("normalization", ["faithful", "tf_text"])
def test_relocated_without_the_source_vocab(hand_vocab, tmp_path, normalization):
  vocab = tmp_path / "source" / "vocab.txt"
  vocab.parent.mkdir()
  shutil.copy(hand_vocab, vocab)
  obj = create_preprocessing(vocab_file=str(vocab), lower_case=True,
                             default_seq_length=SEQ_LENGTH,
                             normalization=normalization)
  sentences = tf.constant(["unaffable hello", "the cafes!"])
  want = {k: v.numpy() for k, v in obj(sentences).items()}
  tf.saved_model.save(obj, str(tmp_path / "first"),
                      signatures=preprocessing_signatures(obj))
  asset_copy_dir = os.path.dirname(obj.vocab_file.asset_path.numpy().decode())
  del obj
  gc.collect()
  shutil.rmtree(tmp_path / "source")
  assert not os.path.exists(asset_copy_dir)  # The normalized copy is gone too.
  shutil.move(str(tmp_path / "first"), str(tmp_path / "moved"))

  moved = hub.load(str(tmp_path / "moved"))
  assert (tmp_path / "moved" / "assets" / "vocab.txt").read_text().split(
      "\n")[:-1] == HAND_VOCAB
  got = moved(sentences)
  for key in want:
    np.testing.assert_array_equal(got[key].numpy(), want[key])
  assert moved.tokenize(tf.constant(["unaffable"])).to_list() == [
      [ids("un", "##aff", "##able")]]


def _full_tokenizer(vocab, lower_case):
  from official.nlp.tools import tokenization
  tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=lower_case)
  # google-research/bert's limit (tf-models' fork raised it to 400).
  tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 200
  return tokenizer


OFFSET_SENTENCES = [
    "Hello, World! unaffable",
    "Café crème brûlée — naïve façade",  # Precomposed accents (2 bytes each).
    "Cafe\u0301 AND\u0308",  # Separate combining accents (dropped).
    "İstanbul ΟΔΟΣ Straße",  # "İ" lowers to 2 characters; final sigma.
    "東京は日本の首都です",  # CJK: one word per ideograph; kana words.
    "emoji 😀👍 done",  # 4-byte characters.
    "a\u00adb\u200bc\x00d  tab\there",  # Dropped characters inside words.
    "x" * 201 + " end",  # A long word is one [UNK] spanning it.
]


def test_offsets_index_the_original_bytes(minilm):
  """input[start:limit] normalizes (FullTokenizer) to the piece's text."""
  model, _ = minilm
  tokenizer = _full_tokenizer(minilm_vocab(), lower_case=True)
  inputs = [s.encode("utf-8") for s in OFFSET_SENTENCES] + [b"ab\xffcd ef\xe2"]
  tokens, starts, limits = model.tokenize_with_offsets(tf.constant(inputs))
  assert starts.dtype == limits.dtype == tf.int64
  assert tokens.shape.rank == starts.shape.rank == limits.shape.rank == 3
  for text, row_ids, row_starts, row_limits in zip(
      inputs, tokens.to_list(), starts.to_list(), limits.to_list()):
    want = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    assert [i for word in row_ids for i in word] == want
    for word_ids, word_starts, word_limits in zip(row_ids, row_starts,
                                                  row_limits):
      word_text = text[word_starts[0]:word_limits[-1]]
      # The word's bytes normalize to exactly one word of FullTokenizer ...
      assert len(tokenizer.basic_tokenizer.tokenize(word_text)) == 1, word_text
      for piece, start, limit in zip(word_ids, word_starts, word_limits):
        assert 0 <= start < limit <= len(text)
        piece_text = tokenizer.inv_vocab[piece]
        if piece_text != "[UNK]":  # ... and each piece to its own text.
          assert tokenizer.basic_tokenizer.tokenize(text[start:limit]) == [
              piece_text.replace("##", "")], (text, start, limit)
  # The long word's [UNK] spans the 201 x's.
  long_row = inputs.index(OFFSET_SENTENCES[-1].encode())
  assert (starts.to_list()[long_row][0], limits.to_list()[long_row][0]) == (
      [0], [201])


def test_offsets_do_not_depend_on_the_route(minilm):
  """A sentence gets the same offsets batched with plain or with odd text."""
  model, _ = minilm
  plain = ["Hello, World! unaffable", "the end."]
  alone = model.tokenize_with_offsets(tf.constant(plain))
  mixed = model.tokenize_with_offsets(tf.constant(plain + ["Café\u200b"]))
  for a, m in zip(alone, mixed):
    assert a.to_list() == m.to_list()[:2]


def test_tf_text_normalization_matches_tf_models(tf_text_minilm):
  """normalization="tf_text" == tf-models' create_preprocessing, all outputs."""
  from official.nlp.tools import export_tfhub_lib
  sentences = tf.constant(
      ["Hello… Straße ﬁne Ｆｕｌｌ", "Café naïve", "東京 😀", "x" * 120, ""] +
      pydoc_sentences()[:60])
  second = tf.constant(["and a second segment"] * sentences.shape[0])
  ours, _ = tf_text_minilm  # default_seq_length=32, with offsets
  reference = export_tfhub_lib.create_preprocessing(
      vocab_file=minilm_vocab(), do_lower_case=True,
      tokenize_with_offsets=True, default_seq_length=32)

  for key, value in reference(sentences).items():
    np.testing.assert_array_equal(ours(sentences)[key].numpy(), value.numpy())
  assert ours.tokenize(sentences).to_list() == reference.tokenize(
      sentences).to_list()
  for got, want in zip(ours.tokenize_with_offsets(sentences),
                       reference.tokenize_with_offsets(sentences)):
    assert got.dtype == want.dtype and got.to_list() == want.to_list()
  segments = [reference.tokenize(sentences), reference.tokenize(second)]
  # (tf-models' wrapper is only callable via __call__ before saving.)
  want = reference.bert_pack_inputs.__call__(segments, seq_length=20)
  got = ours.bert_pack_inputs(segments, seq_length=20)
  for key in want:
    np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
  assert {k: int(v) for k, v in ours.tokenize.get_special_tokens_dict().items()
         } == {k: int(v) for k, v in
               reference.tokenize.get_special_tokens_dict.__call__().items()}


def test_faithful_and_tf_text_differ_where_documented(minilm, tf_text_minilm):
  model, _ = minilm
  reference, _ = tf_text_minilm
  tokenizer = _full_tokenizer(minilm_vocab(), lower_case=True)
  for text in ["wait…", "Straße"]:
    faithful = model.tokenize(tf.constant([text])).flat_values.numpy().tolist()
    tf_text = reference.tokenize(tf.constant([text])).flat_values.numpy().tolist()
    assert faithful == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    assert faithful != tf_text


def test_bad_normalization(hand_vocab):
  with pytest.raises(BertHubError) as info:
    create_preprocessing(vocab_file=hand_vocab, lower_case=True,
                         normalization="nfkc")
  assert info.value.received == "'nfkc'"
  assert "'faithful' or 'tf_text'" in info.value.expected


@pytest.mark.parametrize("argument, value", [
    ("strip_accents", "no"), ("strip_accents", 0), ("strip_accents", 1),
    ("tokenize_chinese_chars", None), ("tokenize_chinese_chars", "true"),
    ("tokenize_chinese_chars", 1)])
def test_bad_tokenizer_setting(hand_vocab, argument, value):
  with pytest.raises(BertHubError) as info:
    create_preprocessing(vocab_file=hand_vocab, lower_case=True,
                         **{argument: value})
  assert info.value.what == f"bad {argument}"
  assert info.value.received == repr(value)


@pytest.mark.parametrize("lower_case, settings, named", [
    (True, dict(strip_accents=False), "strip_accents"),
    (False, dict(strip_accents=True), "strip_accents"),
    (True, dict(tokenize_chinese_chars=False), "tokenize_chinese_chars"),
    (False, dict(strip_accents=True, tokenize_chinese_chars=False),
     "strip_accents and tokenize_chinese_chars"),
])
def test_tf_text_refuses_settings_by_name(hand_vocab, lower_case, settings,
                                          named):
  with pytest.raises(BertHubError) as info:
    create_preprocessing(vocab_file=hand_vocab, lower_case=lower_case,
                         normalization="tf_text", **settings)
  assert info.value.what == f'normalization="tf_text" cannot honour {named}'
  for name, value in settings.items():
    assert f"{name}={value}" in info.value.received
  assert 'normalization="faithful"' in info.value.fix
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("lower_case, strip_accents", [
    (True, True), (True, None), (False, False), (False, None)])
def test_tf_text_accepts_what_it_does(hand_vocab, lower_case, strip_accents):
  """strip_accents equal to lower_case is text.BertTokenizer's own behaviour."""
  obj = create_preprocessing(vocab_file=hand_vocab, lower_case=lower_case,
                             strip_accents=strip_accents,
                             normalization="tf_text")
  assert obj.tokenize(tf.constant(["Café"])).to_list() == (
      [[ids("cafe")]] if lower_case else [[[1]]])


@pytest.mark.parametrize("seq_length", [1, 0, "128", True, 12.0])
def test_bad_default_seq_length(hand_vocab, seq_length):
  with pytest.raises(BertHubError, match="default_seq_length"):
    create_preprocessing(vocab_file=hand_vocab, lower_case=True,
                         default_seq_length=seq_length)


def test_bad_vocab_is_a_bert_hub_error(tmp_path):
  with pytest.raises(BertHubError, match="not found"):
    create_preprocessing(vocab_file=str(tmp_path / "missing.txt"),
                         lower_case=True)


def saved_ops(path) -> set:
  """Every op type of a SavedModel: graph nodes and all library functions."""
  from tensorflow.core.protobuf import saved_model_pb2
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString(
      (pathlib.Path(path) / "saved_model.pb").read_bytes())
  ops = set()
  for meta_graph in saved_model.meta_graphs:
    ops |= {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
      ops |= {node.op for node in function.node_def}
  return ops


def allowlist() -> set:
  lines = ALLOWLIST.read_text().splitlines()
  return {line.strip() for line in lines
          if line.strip() and not line.startswith("#")}


@pytest.mark.parametrize("normalization, lower_case, settings", [
    ("faithful", True, {}), ("faithful", False, {}),
    ("tf_text", True, {}), ("tf_text", False, {}),
    ("faithful", True, dict(strip_accents=False, tokenize_chinese_chars=False)),
    ("faithful", False, dict(strip_accents=True)),
])
def test_saved_ops_run_on_tf_serving(hand_vocab, hand_model, tmp_path,
                                     normalization, lower_case, settings):
  """Only ops of TF 2.12.1 + TF Text 2.12.1; no Python, no RoundRobinTrim."""
  if (normalization, lower_case, settings) == ("faithful", True, {}):
    path = hand_model.path  # This one, saved (with default_seq_length 16).
  else:
    obj = create_preprocessing(vocab_file=hand_vocab, lower_case=lower_case,
                               tokenize_with_offsets=True,
                               normalization=normalization, **settings)
    tf.saved_model.save(obj, str(tmp_path),
                        signatures=preprocessing_signatures(obj))
    path = tmp_path
  ops = saved_ops(path)
  assert not {op for op in ops if "PyFunc" in op or "RoundRobin" in op}
  assert ops - allowlist() == set()
  if normalization == "faithful":
    assert "FastWordpieceTokenizeWithOffsets" in ops


# Fast and exact routes in one batch, odd bytes, a long word, an empty row.
SERVED_SENTENCES = np.array(
    [s.encode("utf-8") for s in OFFSET_SENTENCES] +
    [b"ab\xffcd", b"", b"plain ascii text."], dtype=object)


@pytest.fixture(scope="module")
def served(minilm, tf_text_minilm):
  """serving_default of both MiniLM models on SERVED_SENTENCES, run as TF
  Serving runs it (TF1 sessions, one fresh process): {normalization: outputs}."""
  from tests.serving_utils import run_many_in_serving_sessions
  paths = {"faithful": minilm[1], "tf_text": tf_text_minilm[1]}
  outputs = run_many_in_serving_sessions(
      [(path, "serving_default", [{"sentences": SERVED_SENTENCES}])
       for path in paths.values()])
  return {name: out[0] for name, out in zip(paths, outputs)}


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["faithful", "tf_text"])
def test_serving_session_equals_python(minilm, tf_text_minilm, served,
                                       normalization):
  """serving_default in a TF1 session (as TF Serving runs it) == hub.load."""
  model, path = minilm if normalization == "faithful" else tf_text_minilm
  got = served[normalization]
  want = model.signatures["serving_default"](
      sentences=tf.constant(SERVED_SENTENCES))
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key].numpy())
  # Every op it holds (those the child needed TF Text for included) is one
  # of TF Serving's TF 2.12.1 + TF Text 2.12.1.
  assert saved_ops(path) - allowlist() == set()
