"""FaithfulTokenizer: BERT's FullTokenizer as TensorFlow ops ("faithful").

Including Hugging Face BertTokenizer's settings strip_accents and
tokenize_chinese_chars.

  tokenizer = FaithfulTokenizer(read_vocab(path), lower_case=True,
                                strip_accents=True, tokenize_chinese_chars=True)
  tokens = tokenizer.tokenize(sentences, with_offsets=False)

sentences: tf.string [B] -> tokens int32 [B, (W), (P)] (and, with offsets,
start and limit offsets, int64 [B, (W), (P)], in bytes of the input). The
normalization steps are those of the package docstring (bert_hub.preprocessing).
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.preprocessing.unicode_tables import (
    _CAPITAL_SIGMA, _CASE_IGNORABLE, _CASED, _CJK, _DROP, _FINAL_SIGMA,
    _MAX_EXPANSION, _MN, _NONSTARTER, _PUNCT, _SPACE, _TwoLevelTable,
    _char_class, _not_fast, _unicode_tables)

import tensorflow as tf
import tensorflow_text as text

MAX_CHARS_PER_WORD = 200  # google-research/bert WordpieceTokenizer default.


# ---------------------------------------------------------------------------
# Small helpers on flat [N] tensors.

def _previous(x, first):
  """[N] -> [N]: x shifted right by one, `first` in front."""
  return tf.concat([tf.fill([1], first), x[:-1]], axis=0)


def _select(mask, *arrays):
  """Keeps the positions where mask [N] is True in each [N] array (fewer graph
  ops than tf.boolean_mask)."""
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


def _flatten(ragged_tensors):
  """Tuple of RaggedTensors [B, (W), (P)] -> flat tensors (for tf.cond)."""
  return tuple(t for rt in ragged_tensors
               for t in (rt.flat_values, *rt.nested_row_splits))


def _unflatten(tensors):
  """Inverse of _flatten."""
  return tuple(tf.RaggedTensor.from_nested_row_splits(
      tensors[i], tensors[i + 1:i + 3], validate=False)
               for i in range(0, len(tensors), 3))


class FaithfulTokenizer(tf.Module):
  """BERT's FullTokenizer as TensorFlow ops (see the package docstring).

  Two routes to the same ids, chosen per sentence:
    * fast: if the sentence is valid UTF-8 and the settings would only lower
      A-Z and split it at whitespace, punctuation and (if
      tokenize_chinese_chars) CJK (no character dropped, lowered otherwise,
      decomposed or stripped, no non-ASCII space; see unicode_tables._not_fast),
      ASCII lowering and TF Text's end-to-end FastWordpiece (which splits
      exactly there) give its ids and offsets. Its character classes come
      from ICU inside the op, so this route only takes characters whose class
      is the same in Unicode 3.2 and in the tables (14.0): ICU of any TF Text
      release agrees on them. Most real text takes this route.
    * exact: every step on code points with the tables, then FastWordpiece on
      the normalized words; for everything else.
  """

  def __init__(self, vocab, *, lower_case: bool, strip_accents: bool,
               tokenize_chinese_chars: bool):
    """vocab: a bert_hub.vocab.Vocab; strip_accents already resolved (a bool)."""
    super().__init__(name="faithful_tokenizer")
    tables = _unicode_tables()
    self._lower_case = lower_case
    self._strip_accents = strip_accents
    self._tokenize_chinese_chars = tokenize_chinese_chars
    self._unk_id = vocab.unk_id
    self._flags = _TwoLevelTable(tables.flags)
    self._ccc = _TwoLevelTable(tables.ccc)
    if lower_case or strip_accents:
      char_map = tables.maps[(lower_case, strip_accents)]
      self._map_index = _TwoLevelTable(char_map.index)
      self._map_chars = tf.constant(char_map.chars)
      self._map_lengths = tf.constant(char_map.lengths)
    self._fast_pattern = _char_class(
        _not_fast(tables, lower_case=lower_case, strip_accents=strip_accents,
                  tokenize_chinese_chars=tokenize_chinese_chars),
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
    word_global, = _select(word_start, char_global)  # [W_total]
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
    """Steps 1-5 of the package docstring on code points.

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
    cjk = (_has(flags, _CJK) if self._tokenize_chinese_chars
           else tf.zeros_like(space))
    # 3. Whitespace-separated tokens (what str.lower() sees); CJK alone if
    # tokenize_chinese_chars (FullTokenizer puts spaces around them).
    token_start = ~space & (
        tf.not_equal(row, _previous(row, tf.constant(-1, tf.int64))) |
        _previous(space, True) | cjk | _previous(cjk, False))
    token = _start_ids(token_start)  # [N] id of the token of each character.
    cp, row, source, flags, token = _select(
        ~space, cp, row, source, flags, token)

    # 4. Lower case (str.lower(), final sigma included); if strip_accents,
    # NFD and drop Mn.
    if self._lower_case:
      cp = self._final_sigma(cp, flags, token)
    if self._lower_case or self._strip_accents:
      cp, row, source, token = self._map(cp, row, source, token)
      flags = self._flags.lookup(cp)
    if self._strip_accents:
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
        word_row=_select(word_start, row)[0],
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

  def _map(self, cp, row, source, token):
    """Each character -> its 1 to 4 characters under the settings.

    NFD(c.lower()), c.lower() or NFD(c) (unicode_tables._MAP_KEYS). Takes and
    returns [N] / [N'] arrays: code points, their sentence, source, token.
    """
    index = tf.cast(self._map_index.lookup(cp), tf.int32)  # [N], 0 = same.
    lengths = tf.gather(self._map_lengths, index)  # [N]
    expansion = tf.gather(self._map_chars, index)  # [N, _MAX_EXPANSION]
    first = tf.where(tf.equal(index, 0), cp, expansion[:, 0])
    expansion = tf.concat([first[:, tf.newaxis], expansion[:, 1:]], axis=1)
    used = tf.range(_MAX_EXPANSION)[tf.newaxis, :] < lengths[:, tf.newaxis]
    parent = tf.repeat(tf.range(tf.size(cp, out_type=tf.int64)), lengths)
    return (tf.gather_nd(expansion, tf.where(used)),  # [N'] row-major = in order.
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
      kept_at, kept_pieces, kept_starts, kept_limits = _select(
          ~tf.gather(too_long, word_of_piece),
          tf.gather(new_starts, word_of_piece) +
          tf.range(tf.size(word_of_piece, out_type=tf.int64)) -
          tf.gather(pieces.row_starts(), word_of_piece),
          pieces.values, starts.values, limits.values)  # [kept pieces] each
      long_at, long_first, long_last = _select(too_long, new_starts, first, last)
      where = tf.concat([kept_at, long_at], axis=0)[:, tf.newaxis]
      shape = tf.reduce_sum(new_lengths, keepdims=True)
      unk = tf.fill(tf.shape(long_at), self._unk_id)
      return (tf.scatter_nd(where, tf.concat([kept_pieces, unk], 0), shape),
              tf.scatter_nd(where, tf.concat([kept_starts, long_first], 0), shape),
              tf.scatter_nd(where, tf.concat([kept_limits, long_last], 0), shape),
              tf.concat([[0], tf.cumsum(new_lengths)], axis=0))

    # tf.cond on plain tensors: only pays for the rewrite if a word may be long.
    *values, splits = tf.cond(
        tf.reduce_any(maybe_long), replace,
        lambda: (pieces.values, starts.values, limits.values,
                 pieces.row_splits))
    return tuple(tf.RaggedTensor.from_row_splits(v, splits, validate=False)
                 for v in values)
