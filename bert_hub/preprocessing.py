"""The preprocessing model: text in, BERT encoder inputs out, all in-graph.

`create_preprocessing()` builds a `tf.Module` that implements the TF Hub
Preprocessor API for BERT (https://www.tensorflow.org/hub/common_saved_model_apis/text),
like tf-models' `official/nlp/tools/export_tfhub_lib.py::create_preprocessing`,
but tokenizing *exactly* like the original BERT `FullTokenizer` that every
BERT checkpoint was trained with. Save it with

  preprocessor = create_preprocessing(vocab_file="vocab.txt", lower_case=True)
  tf.saved_model.save(preprocessor, path,
                      signatures=preprocessing_signatures(preprocessor))

Shape legend: B = batch size, W = words, P = word pieces, T = seq_length.

The saved object provides:

  preprocessor(sentences)
      sentences: tf.string [B], UTF-8 (anything else is handled, see below).
      Returns a dict, each value int32 [B, default_seq_length]:
        input_word_ids: [CLS] pieces [SEP] then [PAD] ids.
        input_mask:     1 on the positions of input_word_ids before padding, else 0.
        input_type_ids: 0 everywhere (one segment).

  preprocessor.tokenize(sentences)
      sentences: tf.string [B].
      Returns int32 RaggedTensor [B, (W), (P)]: tokens[i, j, k] is the id of the
      k-th word piece of the j-th word of sentences[i].
  preprocessor.tokenize.get_special_tokens_dict()
      Returns a dict of int32 scalars: vocab_size (one past the largest id),
      start_of_sequence_id ([CLS]), end_of_segment_id ([SEP]),
      padding_id ([PAD]), mask_id ([MASK]).

  preprocessor.tokenize_with_offsets(sentences)   (if tokenize_with_offsets=True)
      Returns (tokens, start_offsets, limit_offsets): tokens as above; the
      offsets are int64 RaggedTensors [B, (W), (P)] of the same shape, in BYTES
      of the ORIGINAL input: sentences[i][start:limit] is the text the piece
      came from. Has the same .get_special_tokens_dict().

  preprocessor.bert_pack_inputs(segments, seq_length=default_seq_length)
      segments: a list of 1 to MAX_SEGMENTS int32 RaggedTensors, each
        [B, (tokens)] or [B, (W), (P)] (the output of .tokenize).
      seq_length: optional int32 scalar T (a Python int works too).
      After saving, these input structures are traced: 1 to MAX_SEGMENTS (3)
      segments, all of ragged rank 1 or all of ragged rank 2.
      Returns a dict, each value int32 [B, T]:
        input_word_ids: [CLS] seg_0 [SEP] seg_1 [SEP] ... then [PAD]s.
        input_mask:     1 before the padding, 0 on it.
        input_type_ids: j on the tokens of seg_j and on the [SEP] after it
                        (0 on [CLS]), 0 on the padding.
      Segments too long for T - (len(segments) + 1) tokens are trimmed
      round-robin: one token at a time to each segment that still has some,
      exactly like tf-models' `BertPackInputs` (`text.RoundRobinTrimmer`), but
      with core TensorFlow ops only.

  preprocessor.vocab_file
      tf.saved_model.Asset: the vocabulary as one token per line with "\n"
      endings (bert_hub.vocab.Vocab.write_normalized), in the SavedModel's
      assets/, so the model needs nothing outside its directory.

  The SavedModel's `serving_default` signature (from `preprocessing_signatures`)
  takes `sentences` (tf.string [None]) and returns input_word_ids, input_mask,
  input_type_ids (int32 [None, default_seq_length]).

normalization="faithful" (the default) reproduces FullTokenizer(vocab_file,
do_lower_case=lower_case) of google-research/bert, id for id:
  1. Decoding: bytes that are not valid UTF-8 are dropped, as by
     `bytes.decode("utf-8", "ignore")`; every valid character after them is kept.
  2. Cleaning: U+0000, U+FFFD and characters of category Cc or Cf (other than
     tab, newline, carriage return) are dropped, e.g. U+00AD soft hyphen and
     U+200B zero width space; these do not split words ("a\\u200bb" is "ab").
     Whitespace (space, \\t, \\n, \\r, category Zs such as U+00A0 and U+3000,
     and U+2028/U+2029 which Python's str.split() also splits on) separates words.
  3. CJK ideographs (BERT's ranges) are words of their own.
  4. If lower_case: Python's str.lower() per word (full case mapping, e.g.
     "İ" -> "i̇", and the final-sigma rule "ΟΔΟΣ" -> "οδος"), then NFD, then
     characters of category Mn are dropped ("Café" -> "cafe"). No NFKC: "…",
     "ß", "ﬁ" and full-width letters stay what they are.
  5. Punctuation (ASCII non-alphanumerics 33-47, 58-64, 91-96, 123-126 and
     every Unicode category P*) is a word of its own.
  6. WordPiece: greedy longest match first with "##" continuations; a word that
     cannot be covered, or of more than MAX_CHARS_PER_WORD (200) characters
     after steps 1-5, is one [UNK].
  The character tables are built at export time from the exporting Python's
  `unicodedata` (Unicode 14.0 on Python 3.11), so they are those of the
  Python that runs FullTokenizer, and they travel inside the SavedModel.
  Note: tf-models' fork of FullTokenizer raised max_input_chars_per_word to
  400; google-research/bert, which the checkpoints were trained with, uses 200.

Defined behaviour for odd input (both measured in the tests):
  * NUL bytes are U+0000: dropped like FullTokenizer drops them; they never
    end or truncate the string ("a\\x00b" is the word "ab").
  * Bytes that are not part of valid UTF-8 (stray continuation bytes,
    truncated or overlong sequences, surrogates, > U+10FFFF) are dropped, as
    by bytes.decode("utf-8", "ignore"); the characters around them are kept
    and do not become one word unless nothing else separates them.
  * Words over 200 characters are one [UNK] whose offsets span the word.
  * Empty strings (or only dropped/space characters) give zero words, and
    [CLS] [SEP] when packed.
  * Offsets: a piece spans the original bytes of the characters it came from;
    characters dropped in steps 1, 2 or 4 (e.g. a separate combining accent)
    belong to no piece. A piece that starts or ends inside the expansion of one
    original character (e.g. a Hangul syllable decomposed into jamo by NFD)
    covers that whole character, so neighbouring pieces can overlap.

normalization="tf_text" gives the behaviour of the TF Hub preprocessors made by
tf-models (`text.BertTokenizer` over a vocab table from the asset): lower_case
applies NFKC case folding ("…" -> "...", "ß" -> "ss"), and words of over 100
bytes are [UNK]; its offsets are those of text.BertTokenizer.

Speed: most sentences (valid UTF-8 that FullTokenizer would only lower in
A-Z and split) skip the per-character work: ASCII lowering plus TF Text's
end-to-end FastWordpiece give the same ids and offsets (see _FaithfulTokenizer).
That makes the root call several times faster than tf-models' preprocessor
(benchmarks/preprocessing.py).

Every op in the SavedModel is registered by core TensorFlow or by TF Text
2.12.1 (the version TF Serving images embed): UnicodeDecode, StaticRegexFullMatch,
StringLower, Gather, Cumsum, ..., and TF Text's FastWordpieceTokenizeWithOffsets
(faithful) or the ops of text.BertTokenizer (tf_text). No RoundRobinTrim (newer
than TF Text 2.12), no py_function, no Lambda layers.
"""
import dataclasses
import functools
import os
import shutil
import tempfile
import unicodedata
import weakref

from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.errors import BertHubError
from bert_hub.vocab import read_vocab

import numpy as np
import tensorflow as tf
import tensorflow_text as text

NORMALIZATIONS = ("faithful", "tf_text")
MAX_CHARS_PER_WORD = 200  # google-research/bert WordpieceTokenizer default.
MAX_SEGMENTS = 3  # bert_pack_inputs is saved for 1 to MAX_SEGMENTS segments.

_SIGNATURE_INPUT = tf.TensorSpec([None], tf.string, name="sentences")


# ---------------------------------------------------------------------------
# Character tables, built from Python's unicodedata (the tables FullTokenizer
# uses) and stored in the graph as two-level lookup tables.

# Bits of the per-code-point flags table.
_DROP = 1  # Removed by BasicTokenizer._clean_text: U+0000, U+FFFD, Cc, Cf.
_SPACE = 2  # Separates words: _is_whitespace() or str.isspace().
_CJK = 4  # BasicTokenizer._is_chinese_char(): a word of its own.
_PUNCT = 8  # _is_punctuation(): a word of its own.
_MN = 16  # Category Mn: dropped by _run_strip_accents.
_CASED = 32  # str.lower() final-sigma rule: cased, not case-ignorable.
_CASE_IGNORABLE = 64  # str.lower() final-sigma rule: skipped over.
_NONSTARTER = 128  # Canonical combining class != 0 (NFD reorders these).

_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
               (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
               (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_CAPITAL_SIGMA, _FINAL_SIGMA = 0x3A3, 0x3C2  # Σ, ς
_NUM_CODE_POINTS = 0x110000
_BLOCK = 128  # Code points per block of the two-level tables.
_MAX_EXPANSION = 4  # Longest NFD(c.lower()) of one character (U+1F82 etc.).


@dataclasses.dataclass(frozen=True)
class _UnicodeTables:
  """numpy arrays over all code points, see _unicode_tables()."""
  flags: np.ndarray  # uint8 [0x110000], bits _DROP ... _NONSTARTER.
  ccc: np.ndarray  # uint8 [0x110000], canonical combining class.
  lower_index: np.ndarray  # int16 [0x110000], row of lower_chars, 0 = itself.
  lower_chars: np.ndarray  # int32 [rows, 4]: NFD(c.lower()), 0-padded.
  lower_lengths: np.ndarray  # int32 [rows]: characters used in lower_chars.


@functools.lru_cache(maxsize=None)
def _unicode_tables() -> _UnicodeTables:
  """Classifies every code point the way FullTokenizer does (about 1 s)."""
  flags = np.zeros(_NUM_CODE_POINTS, np.uint8)
  ccc = np.zeros(_NUM_CODE_POINTS, np.uint8)
  lower_index = np.zeros(_NUM_CODE_POINTS, np.int16)
  lower_rows = [()]  # Row 0: unchanged (the graph substitutes the character).
  for low, high in _CJK_RANGES:
    flags[low:high + 1] |= _CJK
  for cp in range(_NUM_CODE_POINTS):
    if 0xD800 <= cp <= 0xDFFF:
      continue  # Surrogates never come out of UTF-8 decoding.
    char = chr(cp)
    category = unicodedata.category(char)
    bits = 0
    if cp in (0, 0xFFFD) or (category in ("Cc", "Cf") and char not in "\t\n\r"):
      bits |= _DROP
    elif char in " \t\n\r" or category == "Zs" or char.isspace():
      bits |= _SPACE
    if (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or
        123 <= cp <= 126 or category.startswith("P")):
      bits |= _PUNCT
    if category == "Mn":
      bits |= _MN
    ccc[cp] = unicodedata.combining(char)
    if ccc[cp]:
      bits |= _NONSTARTER
    if category != "Cn":
      # CPython's lower() maps U+03A3 to final sigma iff the nearest
      # non-case-ignorable character before it (in the string) is cased and
      # the nearest one after it is not. Its Cased / Case_Ignorable tables are
      # not in unicodedata, so ask lower() itself.
      if (char + "\u03a3").lower()[-1] == "\u03c2":
        bits |= _CASED
      elif ("A" + char + "\u03a3").lower()[-1] == "\u03c2":
        bits |= _CASE_IGNORABLE
    flags[cp] |= bits
    lowered = unicodedata.normalize("NFD", char.lower())
    if lowered != char and not bits & (_DROP | _SPACE):  # Those never reach it.
      lower_index[cp] = len(lower_rows)
      lower_rows.append(tuple(map(ord, lowered)))
  assert len(lower_rows) < 2**15, "int16 lower_index overflows"
  lower_chars = np.zeros([len(lower_rows), _MAX_EXPANSION], np.int32)
  lower_lengths = np.ones([len(lower_rows)], np.int32)
  for row, chars in enumerate(lower_rows):
    assert len(chars) <= _MAX_EXPANSION, f"NFD(lower) too long: {chars}"
    # FullTokenizer splits on whitespace again after lowering; that is a no-op
    # as long as no lowered/decomposed character is whitespace (true in
    # Unicode 14). Check it rather than assume it.
    assert not any(flags[c] & (_SPACE | _DROP) for c in chars), chars
    lower_chars[row, :len(chars)] = chars
    lower_lengths[row] = max(len(chars), 1)
  return _UnicodeTables(flags=flags, ccc=ccc, lower_index=lower_index,
                        lower_chars=lower_chars, lower_lengths=lower_lengths)


class _TwoLevelTable:
  """A constant table over code points: table[cp] = blocks[index[cp // 128]].

  Storing each distinct 128-entry block once shrinks 0x110000 entries to
  tens of kilobytes. The tensors are created eagerly so that every function
  of the SavedModel captures the same constants (saved once).
  """

  def __init__(self, values: np.ndarray):
    blocks = values.reshape(-1, _BLOCK)  # [0x110000 / 128, 128]
    unique_blocks, index = np.unique(blocks, axis=0, return_inverse=True)
    self._index = tf.constant(index.reshape(-1).astype(np.int32))
    self._blocks = tf.constant(unique_blocks.reshape(-1))

  def lookup(self, code_points):
    """code_points: int32 [N], valid code points. Returns [N] table values."""
    block = tf.gather(self._index, tf.bitwise.right_shift(code_points, 7))
    return tf.gather(self._blocks,
                     block * _BLOCK + tf.bitwise.bitwise_and(code_points, 127))


# ---------------------------------------------------------------------------
# Small helpers on flat [N] tensors.

def _previous(x, first):
  """[N] -> [N]: x shifted right by one, `first` in front."""
  return tf.concat([tf.fill([1], first), x[:-1]], axis=0)


def _select(mask, *arrays):
  """Keeps the positions where mask [N] is True in each [N] array."""
  positions = tf.where(mask)[:, 0]
  return tuple(tf.gather(a, positions) for a in arrays)


def _has(flags, bit):
  return tf.not_equal(tf.bitwise.bitwise_and(flags, bit), 0)


def _start_ids(starts):
  """bool [N] starts of runs -> int64 [N] run ids 0, 0, 1, 1, 1, 2, ..."""
  return tf.cumsum(tf.cast(starts, tf.int64)) - 1


def _utf8_length(code_points):
  """int32 [N] -> int64 [N] UTF-8 byte lengths."""
  return 1 + tf.add_n([tf.cast(code_points >= bound, tf.int64)
                       for bound in (0x80, 0x800, 0x10000)])


# ---------------------------------------------------------------------------
# Tokenizers: sentences [B] -> tokens [B, (W), (P)] (and offsets).

def _char_class(mask: np.ndarray, negate: bool = False) -> str:
  """An RE2 character class of the code points where mask [0x110000] is True.

  Code points are spelled \\x{...}, so the class is exactly the table, not
  RE2's own (possibly other) Unicode version.
  """
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
  ranges = [f"\\x{{{a:x}}}" + (f"-\\x{{{b - 1:x}}}" if b - 1 > a else "")
            for a, b in zip(edges[::2], edges[1::2])]
  return "[" + ("^" if negate else "") + "".join(ranges) + "]"


def _not_fast(tables: _UnicodeTables, lower_case: bool) -> np.ndarray:
  """bool [0x110000]: characters that send a sentence the exact route."""
  flags = tables.flags
  code_points = np.arange(_NUM_CODE_POINTS)
  ascii_upper = (code_points >= ord("A")) & (code_points <= ord("Z"))
  # Dropped characters and whitespace other than " \t\n\r" (which FastWordpiece
  # also splits at), and surrogates (so that invalid UTF-8 does not match).
  hard = ((flags & _DROP != 0) |
          ((flags & _SPACE != 0) & ~np.isin(code_points, [9, 10, 13, 32])) |
          ((code_points >= 0xD800) & (code_points <= 0xDFFF)))
  if lower_case:  # Characters that lower() or NFD or stripping Mn change.
    hard |= (((tables.lower_index != 0) & ~ascii_upper) |
             (flags & (_MN | _NONSTARTER) != 0))
  # Beyond ASCII and BERT's CJK ranges (fixed in the op too), FastWordpiece
  # asks ICU whether a character is punctuation or whitespace: keep those that
  # are assigned in Unicode 3.2 with the same punctuation status and no space
  # or control category, which every ICU since agrees on.
  stable = np.zeros(_NUM_CODE_POINTS, bool)
  stable[:0x80] = True
  for low, high in _CJK_RANGES:
    stable[low:high + 1] = True
  old = unicodedata.ucd_3_2_0
  for cp in np.flatnonzero(~stable & ~hard):
    then = old.category(chr(cp))
    stable[cp] = (then not in ("Cn", "Cc", "Cf", "Zs", "Zl", "Zp") and
                  then.startswith("P") == bool(flags[cp] & _PUNCT))
  return hard | ~stable


def _flatten(ragged_tensors):
  """Tuple of RaggedTensors [B, (W), (P)] -> flat tensors (for tf.cond)."""
  return tuple(t for rt in ragged_tensors
               for t in (rt.flat_values, *rt.nested_row_splits))


def _unflatten(tensors):
  """Inverse of _flatten."""
  return tuple(tf.RaggedTensor.from_nested_row_splits(
      tensors[i], tensors[i + 1:i + 3], validate=False)
               for i in range(0, len(tensors), 3))


class _FaithfulTokenizer(tf.Module):
  """BERT's FullTokenizer as TensorFlow ops (see the module docstring).

  Two routes to the same ids, chosen per sentence:
    * fast: if the sentence is valid UTF-8 and FullTokenizer would only lower
      A-Z and split at whitespace, punctuation and CJK (no character dropped,
      lowered otherwise, decomposed, no non-ASCII space), ASCII lowering and
      TF Text's end-to-end FastWordpiece (which splits exactly there) give its
      ids and offsets. Its character classes come from ICU inside the op, so
      this route only takes characters whose class is the same in Unicode 3.2
      and in the tables (14.0): ICU of any TF Text release agrees on them.
      Most real text takes this route.
    * exact: every step on code points with the tables above, then
      FastWordpiece on the normalized words; for everything else.
  """

  def __init__(self, vocab, lower_case: bool):
    super().__init__(name="faithful_tokenizer")
    tables = _unicode_tables()
    self._lower_case = lower_case
    self._unk_id = vocab.unk_id
    self._flags = _TwoLevelTable(tables.flags)
    self._ccc = _TwoLevelTable(tables.ccc)
    self._lower_index = _TwoLevelTable(tables.lower_index)
    self._lower_chars = tf.constant(tables.lower_chars)
    self._lower_lengths = tf.constant(tables.lower_lengths)
    self._fast_pattern = _char_class(_not_fast(tables, lower_case),
                                     negate=True) + "*"

    # The pieces a word is matched against. Words are never empty and never
    # hold whitespace or dropped characters, so tokens with those can never
    # match; FastWordpiece need not see them (its trie refuses NUL bytes).
    def can_match(token):
      return token and not any(
          tables.flags[ord(c)] & (_SPACE | _DROP) for c in token)
    tokens = [t if can_match(t) else f"[bert_hub unmatchable {i}]"
              for i, t in enumerate(vocab.tokens)]
    # Which ids continue a word (FastWordpiece's notion: "##..." but not "##").
    self._is_suffix = tf.constant([t.startswith("##") and t != "##"
                                   for t in tokens])
    wordpiece_options = dict(
        vocab=tokens, suffix_indicator="##", token_out_type=tf.int32,
        unknown_token="[UNK]",
        # A word of 200 characters has at most 800 bytes; longer ones are
        # [UNK] here, those of 201-800 bytes are checked in characters below.
        max_bytes_per_word=4 * MAX_CHARS_PER_WORD)
    self._text_wordpiece = text.FastWordpieceTokenizer(**wordpiece_options)
    self._word_wordpiece = text.FastWordpieceTokenizer(
        no_pretokenization=True, **wordpiece_options)

  def tokenize(self, sentences, with_offsets: bool):
    """sentences: tf.string [B] -> tokens (, start_offsets, limit_offsets).

    tokens: int32 [B, (W), (P)]; offsets: int64 [B, (W), (P)].
    """
    fast = tf.strings.regex_full_match(sentences, self._fast_pattern)  # [B]

    def all_fast():
      return _flatten(self._fast_route(sentences, with_offsets))

    def mixed():
      # Each route on its sentences, then the rows back in input order.
      fast_rows, exact_rows = tf.where(fast)[:, 0], tf.where(~fast)[:, 0]
      fast_part = self._fast_route(tf.gather(sentences, fast_rows),
                                   with_offsets)
      exact_part = self._exact_route(tf.gather(sentences, exact_rows),
                                     with_offsets)
      order = tf.math.invert_permutation(tf.concat([fast_rows, exact_rows], 0))
      return _flatten(tuple(tf.gather(tf.concat([f, e], axis=0), order)
                            for f, e in zip(fast_part, exact_part)))

    # tf.cond on plain tensors; most batches are all fast.
    result = _unflatten(tf.cond(tf.reduce_all(fast), all_fast, mixed))
    return result if with_offsets else result[0]

  def _fast_route(self, sentences, with_offsets: bool):
    """Sentences matching _fast_pattern [b] -> (tokens, (starts, limits))."""
    # tf.strings.lower with encoding="" lowers A-Z only: offsets stay valid.
    lowered = tf.strings.lower(sentences) if self._lower_case else sentences
    pieces, starts, limits = self._text_wordpiece.tokenize_with_offsets(
        lowered)  # [b, (P)] each; the offsets are int64.
    # Rebuild the words: a word starts at every piece that is no "##" piece.
    word_start = ~tf.gather(self._is_suffix, pieces.values)  # [P_total]
    word_splits = tf.concat([tf.where(word_start)[:, 0],
                             tf.size(word_start, out_type=tf.int64)[None]], 0)
    words_before = tf.concat([[0], tf.cumsum(tf.cast(word_start, tf.int64))], 0)
    sentence_splits = tf.gather(words_before, pieces.row_splits)  # [b + 1]

    def to_words(values):  # [P_total] -> [W_total, (P)]
      return tf.RaggedTensor.from_row_splits(values, word_splits,
                                             validate=False)

    def to_batch(rt):  # [W_total, (P)] -> [b, (W), (P)]
      return tf.RaggedTensor.from_row_splits(rt, sentence_splits,
                                             validate=False)

    words = self._unk_long_words(
        to_words(pieces.values), to_words(starts.values),
        to_words(limits.values),
        lambda rows, start, length: tf.strings.substr(
            tf.gather(sentences, tf.searchsorted(  # The sentence of each word.
                sentence_splits, rows, side="right") - 1), start, length))
    return tuple(to_batch(x) for x in (words if with_offsets else words[:1]))

  def _exact_route(self, sentences, with_offsets: bool):
    """Any sentences [b] -> (tokens, (starts, limits)) via code points."""
    chars = self._normalize(sentences, with_offsets)
    word_strings = tf.strings.unicode_encode(chars["words"], "UTF-8")
    pieces, starts, limits = self._word_wordpiece.tokenize_with_offsets(
        word_strings)  # [W_total, (P)]; offsets in bytes of each word.
    pieces, starts, _ = self._unk_long_words(
        pieces, starts, limits,
        lambda rows, start, length: tf.gather(word_strings, rows))

    def to_batch(rt):  # [W_total, (P)] -> [b, (W), (P)]
      return tf.RaggedTensor.from_value_rowids(
          rt, chars["word_row"], nrows=tf.size(sentences, out_type=tf.int64),
          validate=False)

    if not with_offsets:
      return (to_batch(pieces),)
    # Find the piece of every character, then span the original bytes of its
    # characters. Positions below count bytes in the concatenation of all
    # words ("global"), where the pieces are consecutive.
    cp, word_start = chars["words"].values, chars["word_start"]
    char_global = tf.cumsum(_utf8_length(cp), exclusive=True)  # [N]
    word_global = tf.boolean_mask(char_global, word_start)  # [W_total]
    piece_global = (tf.gather(word_global, pieces.value_rowids()) +
                    starts.values)  # [P_total], increasing.
    char_piece = tf.searchsorted(piece_global, char_global, side="right") - 1
    char_start = tf.gather(chars["byte_starts"], chars["source"])
    char_limit = char_start + _utf8_length(
        tf.gather(chars["decoded"], chars["source"]))
    num_pieces = tf.size(pieces.values)
    start_offsets = tf.math.unsorted_segment_min(char_start, char_piece,
                                                 num_pieces)
    limit_offsets = tf.math.unsorted_segment_max(char_limit, char_piece,
                                                 num_pieces)
    return (to_batch(pieces), to_batch(pieces.with_values(start_offsets)),
            to_batch(pieces.with_values(limit_offsets)))

  def _normalize(self, sentences, with_offsets=False):
    """Steps 1-5 of the module docstring on code points.

    Returns a dict:
      words: int32 [W_total, (chars)], the normalized words of all sentences.
      word_row: int64 [W_total], the sentence of each word.
      word_start: bool [N], whether each character of words.values starts a word.
      source: int64 [N], each character's index in `decoded`.
      decoded, byte_starts: int32 / int64 [M], the input's characters and their
        byte offsets (only if with_offsets).
    """
    # 1. Decode. Invalid UTF-8 becomes U+FFFD, which step 2 drops: the same as
    # decode("utf-8", "ignore") followed by _clean_text.
    result = {}
    if with_offsets:
      chars, byte_starts = tf.strings.unicode_decode_with_offsets(
          sentences, "UTF-8", errors="replace", replacement_char=0xFFFD)
      result["decoded"] = chars.flat_values  # int32 [M]
      result["byte_starts"] = byte_starts.flat_values  # int64 [M]
    else:
      chars = tf.strings.unicode_decode(
          sentences, "UTF-8", errors="replace", replacement_char=0xFFFD)
    cp = chars.flat_values  # int32 [M] code points of all sentences.
    row = chars.value_rowids()  # int64 [M] sentence of each character.
    source = tf.range(tf.size(cp, out_type=tf.int64))  # [M] index in decoded.
    flags = self._flags.lookup(cp)

    # 2. _clean_text: drop, then mark whitespace.
    cp, row, source, flags = _select(~_has(flags, _DROP), cp, row, source, flags)
    space = _has(flags, _SPACE)
    cjk = _has(flags, _CJK)
    # 3. Whitespace-separated tokens (what str.lower() sees), CJK alone.
    token_start = ~space & (
        tf.not_equal(row, _previous(row, tf.constant(-1, tf.int64))) |
        _previous(space, True) | cjk | _previous(cjk, False))
    token = _start_ids(token_start)  # [N] id of the token of each character.
    cp, row, source, flags, token = _select(
        ~space, cp, row, source, flags, token)

    # 4. Lower case, NFD, strip Mn.
    if self._lower_case:
      cp = self._final_sigma(cp, flags, token)
      cp, row, source, token = self._lower_and_decompose(cp, row, source, token)
      flags = self._flags.lookup(cp)
      cp, row, source, flags, token = self._canonical_order(
          cp, row, source, flags, token)
      cp, row, source, flags, token = _select(
          ~_has(flags, _MN), cp, row, source, flags, token)

    # 5. Punctuation splits tokens into words.
    punct = _has(flags, _PUNCT)
    word_start = (tf.not_equal(token, _previous(token, tf.constant(-1, tf.int64)))
                  | punct | _previous(punct, False))
    num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
    result.update(
        words=tf.RaggedTensor.from_value_rowids(
            cp, _start_ids(word_start), nrows=num_words, validate=False),
        word_row=tf.boolean_mask(row, word_start),
        word_start=word_start, source=source)
    return result

  def _final_sigma(self, cp, flags, token):
    """Σ -> ς where str.lower() of its whitespace token would make it final."""
    is_sigma = tf.equal(cp, _CAPITAL_SIGMA)

    def apply():
      # The nearest non-case-ignorable characters before and after each one.
      solid = ~_has(flags, _CASE_IGNORABLE)
      cased = _has(flags, _CASED)
      solid_positions = tf.where(solid)[:, 0]  # [S], not empty: Σ is solid.
      last = tf.size(solid_positions, out_type=tf.int64) - 1
      before = tf.cumsum(tf.cast(solid, tf.int64), exclusive=True)  # [N]
      prev_i = tf.gather(solid_positions, tf.maximum(before - 1, 0))
      next_i = tf.gather(solid_positions,
                         tf.minimum(before + tf.cast(solid, tf.int64), last))
      cased_before = ((before > 0) & tf.equal(tf.gather(token, prev_i), token) &
                      tf.gather(cased, prev_i))
      cased_after = ((before + tf.cast(solid, tf.int64) <= last) &
                     tf.equal(tf.gather(token, next_i), token) &
                     tf.gather(cased, next_i))
      final = is_sigma & cased_before & ~cased_after
      return tf.where(final, _FINAL_SIGMA, cp)

    return tf.cond(tf.reduce_any(is_sigma), apply, lambda: cp)

  def _lower_and_decompose(self, cp, row, source, token):
    """Each character -> NFD(c.lower()), 1 to 4 characters."""
    index = tf.cast(self._lower_index.lookup(cp), tf.int32)  # [N], 0 = same.
    lengths = tf.gather(self._lower_lengths, index)  # [N]
    expansion = tf.gather(self._lower_chars, index)  # [N, 4]
    first = tf.where(tf.equal(index, 0), cp, expansion[:, 0])
    expansion = tf.concat([first[:, tf.newaxis], expansion[:, 1:]], axis=1)
    used = tf.range(_MAX_EXPANSION)[tf.newaxis, :] < lengths[:, tf.newaxis]
    parent = tf.repeat(tf.range(tf.size(cp, out_type=tf.int64)), lengths)
    return (tf.boolean_mask(expansion, used),  # [N'] row-major = in order.
            tf.gather(row, parent), tf.gather(source, parent),
            tf.gather(token, parent))

  def _canonical_order(self, cp, row, source, flags, token):
    """NFD's canonical ordering: stable sort of non-starters by class.

    Only changes the result if a non-starter survives stripping Mn (25 Mc
    characters such as U+1D165), so it only runs then.
    """
    nonstarter = _has(flags, _NONSTARTER)
    needed = tf.reduce_any(nonstarter & ~_has(flags, _MN))

    def reorder():
      run_start = (~nonstarter | ~_previous(nonstarter, False) |
                   tf.not_equal(token, _previous(token, tf.constant(-1, tf.int64))))
      key = (_start_ids(run_start) * 256 +
             tf.cast(self._ccc.lookup(cp), tf.int64))
      order = tf.argsort(key, stable=True)
      return tuple(tf.gather(x, order) for x in (cp, row, source, flags, token))

    return tf.cond(needed, reorder, lambda: (cp, row, source, flags, token))

  def _unk_long_words(self, pieces, starts, limits, word_text):
    """Words of over MAX_CHARS_PER_WORD characters -> one [UNK] piece.

    FastWordpiece only knows bytes: it makes words of over 800 bytes [UNK]
    itself; this finds those of 201 to 800 bytes with over 200 characters.

    Args:
      pieces, starts, limits: RaggedTensors [W_total, (P)]: ids and byte
        offsets of each word's pieces.
      word_text: fn(rows, start, length) -> tf.string, the text of the words
        `rows` [K], whose first piece starts at byte `start` [K] and which
        have `length` [K] bytes.

    Returns:
      pieces, starts, limits, with each long word one [UNK] that spans it.
    """
    first = tf.gather(starts.values, pieces.row_starts())  # [W_total]
    last = tf.gather(limits.values, pieces.row_limits() - 1)  # (no empty rows)
    maybe_long = last - first > MAX_CHARS_PER_WORD  # Bytes >= characters.

    def replace():
      rows = tf.where(maybe_long)[:, 0]
      num_chars = tf.strings.length(
          word_text(rows, tf.gather(first, rows), tf.gather(last - first, rows)),
          unit="UTF8_CHAR")
      too_long = tf.scatter_nd(rows[:, tf.newaxis],
                               num_chars > MAX_CHARS_PER_WORD,
                               tf.shape(maybe_long, out_type=tf.int64))
      lengths = pieces.row_lengths()  # [W_total]
      new_lengths = tf.where(too_long, tf.ones_like(lengths), lengths)
      new_starts = tf.cumsum(new_lengths, exclusive=True)  # [W_total]
      # Kept pieces move to their word's new start; long words get one [UNK].
      word_of_piece = pieces.value_rowids()  # [P_total]
      keep = ~tf.gather(too_long, word_of_piece)
      kept_at = (tf.gather(new_starts, word_of_piece) +
                 tf.range(tf.size(word_of_piece, out_type=tf.int64)) -
                 tf.gather(pieces.row_starts(), word_of_piece))[keep]
      where = tf.concat([kept_at, new_starts[too_long]], axis=0)[:, tf.newaxis]
      shape = tf.reduce_sum(new_lengths, keepdims=True)
      unk = tf.fill(tf.shape(new_starts[too_long]), self._unk_id)
      return (tf.scatter_nd(where, tf.concat([pieces.values[keep], unk], 0),
                            shape),
              tf.scatter_nd(where, tf.concat([starts.values[keep],
                                              first[too_long]], 0), shape),
              tf.scatter_nd(where, tf.concat([limits.values[keep],
                                              last[too_long]], 0), shape),
              tf.concat([[0], tf.cumsum(new_lengths)], axis=0))

    # tf.cond on plain tensors: only pays for the rewrite if a word may be long.
    *values, splits = tf.cond(
        tf.reduce_any(maybe_long), replace,
        lambda: (pieces.values, starts.values, limits.values,
                 pieces.row_splits))
    return tuple(tf.RaggedTensor.from_row_splits(v, splits, validate=False)
                 for v in values)


class _TfTextTokenizer(tf.Module):
  """text.BertTokenizer over a vocab table, as in tf-models' BertTokenizer layer."""

  def __init__(self, vocab_path: str, lower_case: bool):
    super().__init__(name="tf_text_tokenizer")
    self._initializer = tf.lookup.TextFileInitializer(
        vocab_path, key_dtype=tf.string,
        key_index=tf.lookup.TextFileIndex.WHOLE_LINE, value_dtype=tf.int64,
        value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
    self._table = tf.lookup.StaticHashTable(self._initializer, default_value=-1)
    self._bert_tokenizer = text.BertTokenizer(self._table, lower_case=lower_case)

  def tokenize(self, sentences, with_offsets: bool):
    """sentences: tf.string [B] -> tokens (, start_offsets, limit_offsets)."""
    if not with_offsets:
      return tf.cast(self._bert_tokenizer.tokenize(sentences), tf.int32)
    tokens, starts, limits = self._bert_tokenizer.tokenize_with_offsets(
        sentences)
    return tf.cast(tokens, tf.int32), starts, limits


# ---------------------------------------------------------------------------
# Packing.

def round_robin_lengths(lengths, budget):
  """How many tokens of each segment round-robin trimming keeps.

  Round robin hands out `budget` places one at a time to segment 0, 1, ...,
  n-1, 0, 1, ..., skipping segments that are used up (text.RoundRobinTrimmer).
  Closed form: every segment gets min(len, level) for the largest level with
  sum(min(len_i, level)) <= budget, and the first `left over` segments (in
  order) that are longer than the level get one more.

  Args:
    lengths: int64 [B, n] segment lengths.
    budget: int64 scalar; negative is taken as 0.

  Returns:
    int64 [B, n] kept lengths.
  """
  n = lengths.shape[1]
  budget = tf.maximum(budget, 0)
  # Water-filling over the sorted lengths: the level lies in the first sorted
  # segment that does not fit whole, after the smaller ones fit whole.
  ascending = tf.sort(lengths, axis=1)  # [B, n]
  smaller = tf.cumsum(ascending, axis=1, exclusive=True)  # [B, n]
  sharing = tf.constant(np.arange(n, 0, -1), tf.int64)  # n, n-1, ..., 1
  fits = smaller + sharing * ascending <= budget  # [B, n] True..True False..
  first_short = tf.reduce_sum(tf.cast(fits, tf.int32), axis=1)  # [B]
  i = tf.minimum(first_short, n - 1)[:, tf.newaxis]  # [B, 1]
  level = tf.where(
      first_short[:, tf.newaxis] < n,
      (budget - tf.gather(smaller, i, batch_dims=1)) //
      tf.gather(sharing, i),
      tf.reduce_max(lengths, axis=1, keepdims=True))  # [B, 1]
  base = tf.minimum(lengths, level)  # [B, n]
  left_over = budget - tf.reduce_sum(base, axis=1, keepdims=True)  # [B, 1]
  longer = lengths > level
  extra = longer & (tf.cumsum(tf.cast(longer, tf.int64), axis=1,
                              exclusive=True) < left_over)
  return base + tf.cast(extra, tf.int64)


def pack_inputs(segments, seq_length, *, start_of_sequence_id: int,
                end_of_segment_id: int, padding_id: int) -> dict:
  """[CLS] seg_0 [SEP] seg_1 [SEP] ..., trimmed round-robin, padded to T.

  Equal to tf-models' `BertPackInputs.bert_pack_inputs(..., "round_robin")`
  but without TF Text's RoundRobinTrim op (not in TF Text 2.12).

  Args:
    segments: a list of int RaggedTensors [B, (tokens)] or [B, (W), (P)].
    seq_length: int or int32 scalar tensor T.
    start_of_sequence_id, end_of_segment_id, padding_id: ids of [CLS], [SEP],
      [PAD].

  Returns:
    dict of input_word_ids, input_mask, input_type_ids, each [B, T] of the
    dtype of the segments (int32 for .tokenize outputs). If T is smaller than
    len(segments) + 1, the [SEP]s that do not fit are cut off.
  """
  segments = [s.merge_dims(1, -1) if s.ragged_rank > 1 else s
              for s in segments]  # [B, (W), (P)] -> [B, (tokens)]
  dtype = segments[0].dtype
  lengths = tf.stack([s.row_lengths() for s in segments], axis=1)  # [B, n]
  kept = round_robin_lengths(  # [B, n]
      lengths, tf.cast(seq_length, tf.int64) - (len(segments) + 1))

  batch_size = segments[0].nrows()
  ones = tf.ones([batch_size], tf.int64)

  def column(value):  # [B, (1)] of `value`
    return tf.RaggedTensor.from_row_lengths(
        tf.fill([batch_size], tf.constant(value, dtype)), ones, validate=False)

  word_ids, type_ids = [column(start_of_sequence_id)], [column(0)]
  for j, (segment, k) in enumerate(zip(segments, tf.unstack(kept, axis=1))):
    # The first k[i] tokens of each row i: [B, (k)].
    positions = tf.ragged.range(segment.row_starts(), segment.row_starts() + k)
    word_ids += [positions.with_values(tf.gather(segment.values,
                                                 positions.values)),
                 column(end_of_segment_id)]
    type_ids += [tf.RaggedTensor.from_row_lengths(  # j on seg_j and its [SEP].
        tf.fill([tf.reduce_sum(k) + batch_size], tf.constant(j, dtype)), k + 1,
        validate=False)]
  word_ids = tf.concat(word_ids, axis=1)  # [B, (tokens)]
  type_ids = tf.concat(type_ids, axis=1)  # [B, (tokens)]

  # Pad to [B, T]; rows longer than T (only if T < len(segments) + 1) are cut.
  # A Python int T gives the outputs a static shape [None, T].
  shape = [None, seq_length] if isinstance(seq_length, int) else tf.stack(
      [batch_size, tf.cast(seq_length, tf.int64)])
  input_word_ids = word_ids.to_tensor(tf.constant(padding_id, dtype),
                                      shape=shape)
  input_type_ids = type_ids.to_tensor(tf.constant(0, dtype), shape=shape)
  input_mask = tf.sequence_mask(word_ids.row_lengths(), seq_length,
                                dtype=dtype)
  return dict(input_word_ids=input_word_ids, input_mask=input_mask,
              input_type_ids=input_type_ids)


# ---------------------------------------------------------------------------
# The SavedModel objects.

class _Tokenize(tf.Module):
  """`.tokenize` (or `.tokenize_with_offsets`): callable on sentences."""

  def __init__(self, tokenizer, special_tokens: dict, with_offsets: bool):
    super().__init__()
    self._tokenizer = tokenizer
    self._special_tokens = special_tokens
    self._with_offsets = with_offsets

  @tf.function(input_signature=[_SIGNATURE_INPUT])
  def __call__(self, sentences):
    """tf.string [B] -> int32 [B, (W), (P)] (, int64 offsets, same shape)."""
    return self._tokenizer.tokenize(sentences, self._with_offsets)

  @tf.function(input_signature=[])
  def get_special_tokens_dict(self):
    """-> dict of int32 scalars (see the module docstring)."""
    return {k: tf.constant(v, tf.int32) for k, v in self._special_tokens.items()}


class _BertPackInputs(tf.Module):
  """`.bert_pack_inputs`: callable on a list of token RaggedTensors."""

  def __init__(self, special_tokens: dict, default_seq_length: int):
    super().__init__()
    ids = dict(start_of_sequence_id=special_tokens["start_of_sequence_id"],
               end_of_segment_id=special_tokens["end_of_segment_id"],
               padding_id=special_tokens["padding_id"])

    @tf.function(autograph=False)
    def bert_pack_inputs(inputs, seq_length=default_seq_length):
      """inputs: list of int32 [B, (tokens)] or [B, (W), (P)]; seq_length: T."""
      return pack_inputs(list(inputs), seq_length, **ids)

    # Saved as this object's __call__ (like tf-models' BertPackInputsSavedModel-
    # Wrapper), so that the default seq_length is this instance's.
    self.__call__ = bert_pack_inputs
    # Trace what the SavedModel will accept: 1 to MAX_SEGMENTS segments of
    # ragged rank 1 or 2. A Python int seq_length (or none) is converted.
    for ragged_rank in (1, 2):
      for num_segments in range(1, MAX_SEGMENTS + 1):
        bert_pack_inputs.get_concrete_function(
            [tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)
             for _ in range(num_segments)],
            seq_length=tf.TensorSpec([], tf.int32))

  def __call__(self, *args, **kwargs):
    # Before saving, Python looks __call__ up on the class: use the function.
    return self.__dict__["__call__"](*args, **kwargs)


class _Preprocessor(tf.Module):
  """The root object; see the module docstring for everything it provides."""

  def __init__(self, *, vocab, vocab_asset_path: str, lower_case: bool,
               default_seq_length: int, tokenize_with_offsets: bool,
               normalization: str):
    super().__init__(name="bert_preprocessing")
    # Travels with the SavedModel (assets/), for readers of the vocabulary.
    self.vocab_file = tf.saved_model.Asset(vocab_asset_path)
    if normalization == "faithful":
      self._tokenizer = _FaithfulTokenizer(vocab, lower_case)
    else:
      self._tokenizer = _TfTextTokenizer(vocab_asset_path, lower_case)
    special_tokens = dict(vocab_size=vocab.size,
                          start_of_sequence_id=vocab.cls_id,
                          end_of_segment_id=vocab.sep_id,
                          padding_id=vocab.pad_id,
                          mask_id=vocab.mask_id)
    self._special_tokens = special_tokens
    self._default_seq_length = default_seq_length
    self.tokenize = _Tokenize(self._tokenizer, special_tokens, False)
    if tokenize_with_offsets:
      self.tokenize_with_offsets = _Tokenize(self._tokenizer, special_tokens,
                                             True)
    self.bert_pack_inputs = _BertPackInputs(special_tokens, default_seq_length)

  @tf.function(input_signature=[_SIGNATURE_INPUT])
  def __call__(self, sentences):
    """tf.string [B] -> dict of int32 [B, default_seq_length] (one segment)."""
    tokens = self._tokenizer.tokenize(sentences, False)
    return pack_inputs(
        [tokens], self._default_seq_length,
        start_of_sequence_id=self._special_tokens["start_of_sequence_id"],
        end_of_segment_id=self._special_tokens["end_of_segment_id"],
        padding_id=self._special_tokens["padding_id"])


def create_preprocessing(*, vocab_file: str, lower_case: bool,
                         default_seq_length: int = 128,
                         tokenize_with_offsets: bool = False,
                         normalization: str = "faithful") -> tf.Module:
  """Returns the preprocessing model, ready for `tf.saved_model.save`.

  Args:
    vocab_file: path of the WordPiece vocab.txt of the checkpoint (validated
      by `bert_hub.vocab.read_vocab`; CRLF line endings are fine).
    lower_case: True for "uncased" checkpoints (FullTokenizer's do_lower_case).
    default_seq_length: T of the root call, and of bert_pack_inputs when it is
      called without seq_length. At least 2 ([CLS] [SEP]).
    tokenize_with_offsets: whether to add `.tokenize_with_offsets`.
    normalization: "faithful" (FullTokenizer's ids, the default) or "tf_text"
      (text.BertTokenizer's, as in TF Hub's published preprocessors).

  Returns:
    A tf.Module with __call__, tokenize, (tokenize_with_offsets,)
    bert_pack_inputs, documented in the module docstring. Save it with
    `signatures=preprocessing_signatures(obj)`.

  Raises:
    BertHubError: a bad vocab_file, default_seq_length or normalization.
  """
  if normalization not in NORMALIZATIONS:
    raise BertHubError(
        "unknown normalization",
        expected=" or ".join(repr(n) for n in NORMALIZATIONS),
        received=repr(normalization),
        fix='use "faithful" for the ids of BERT\'s FullTokenizer (what the '
        'checkpoints were trained on) or "tf_text" for those of TF Text\'s '
        "BertTokenizer (NFKC case folding)")
  if (isinstance(default_seq_length, bool) or
      not isinstance(default_seq_length, (int, np.integer)) or
      default_seq_length < 2):
    raise BertHubError(
        "bad default_seq_length",
        expected="an int >= 2 (room for [CLS] and [SEP])",
        received=repr(default_seq_length),
        fix="pass e.g. default_seq_length=128, at most the encoder's "
        "max_position_embeddings")
  vocab = read_vocab(vocab_file)

  # The normalized copy ("\n" endings) becomes the asset. It must exist until
  # the object is saved, so it lives as long as the object.
  asset_dir = tempfile.mkdtemp(prefix="bert_hub_vocab_")
  asset_path = os.path.join(asset_dir, "vocab.txt")
  vocab.write_normalized(asset_path)
  preprocessor = _Preprocessor(
      vocab=vocab, vocab_asset_path=asset_path, lower_case=bool(lower_case),
      default_seq_length=int(default_seq_length),
      tokenize_with_offsets=bool(tokenize_with_offsets),
      normalization=normalization)
  weakref.finalize(preprocessor, shutil.rmtree, asset_dir, True)
  return preprocessor


def preprocessing_signatures(preprocessor) -> dict:
  """The SavedModel signatures of a preprocessor: {"serving_default": ...}.

  serving_default: input `sentences` tf.string [None] -> outputs
  input_word_ids, input_mask, input_type_ids, int32 [None, default_seq_length].
  """
  return {"serving_default": preprocessor.__call__.get_concrete_function()}
