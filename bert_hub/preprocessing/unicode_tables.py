"""Per-code-point tables of the faithful tokenizer, from Python's unicodedata.

FullTokenizer classifies characters with the `unicodedata` of the Python that
runs it; `_unicode_tables()` asks the same module about every code point once
(at export time) and the graph looks the answers up in `_TwoLevelTable`s, so
the SavedModel carries them and never depends on TensorFlow's or ICU's own
Unicode version.

  tables = _unicode_tables()
  tables.flags[ord("Σ")] & _CASED           # bits, see below
  tables.maps[(True, True)]                  # c -> NFD(c.lower()), 1-4 chars
  _char_class(_not_fast(tables, lower_case=True, strip_accents=True,
                        tokenize_chinese_chars=True), negate=True)
"""
import dataclasses
import functools
import hashlib
import sys
import unicodedata
import zipfile

from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub import cache

import numpy as np
import tensorflow as tf

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
_MAX_EXPANSION = 4  # Longest NFD(c.lower()) or NFD(c) of one character (U+1F82).

# The character maps, by (lower_case, strip_accents):
#   (True, True)   NFD(c.lower())   FullTokenizer's do_lower_case=True
#   (True, False)  c.lower()        lower-cased, accents kept (no NFD at all)
#   (False, True)  NFD(c)           case kept, accents stripped
# (False, False) maps nothing. Stripping (dropping Mn after NFD's canonical
# ordering) is done by the graph, not by the maps.
_MAP_KEYS = ((True, True), (True, False), (False, True))


@dataclasses.dataclass(frozen=True)
class _CharMap:
  """Each code point -> 1 to _MAX_EXPANSION code points."""
  index: np.ndarray  # int16 [0x110000], row of chars, 0 = the code point itself.
  chars: np.ndarray  # int32 [rows, _MAX_EXPANSION]: the mapped characters, 0-padded.
  lengths: np.ndarray  # int32 [rows]: characters used in chars (row 0: 1).


@dataclasses.dataclass(frozen=True)
class _UnicodeTables:
  """numpy arrays over all code points, see _unicode_tables()."""
  flags: np.ndarray  # uint8 [0x110000], bits _DROP ... _NONSTARTER.
  ccc: np.ndarray  # uint8 [0x110000], canonical combining class.
  maps: dict  # (lower_case, strip_accents) -> _CharMap, keys _MAP_KEYS.


def _transform(char: str, lower_case: bool, strip_accents: bool) -> str:
  """What BasicTokenizer does to one character before dropping Mn."""
  if lower_case:
    char = char.lower()
  return unicodedata.normalize("NFD", char) if strip_accents else char


def _map_name(key) -> str:
  return "%d%d" % key  # (lower_case, strip_accents) -> "11", "10", "01"


def _cache_path() -> str:
  """The file that keeps _arrays() between processes (bert_hub/cache.py).

  The name holds what the tables depend on: the Python (its unicodedata and
  str.lower) and this module's source; anything else gets a file of its own.
  """
  with open(__file__, "rb") as f:
    source = f.read()
  key = hashlib.sha256(sys.version.encode() + unicodedata.unidata_version.encode()
                       + source).hexdigest()[:16]
  return cache.file_path(f"unicode_tables-{key}.npz")


@functools.lru_cache(maxsize=None)
def _arrays() -> dict:
  """Every table as numpy arrays: computed once per Python and kept on disk.

  Computing them walks all 0x110000 code points in Python (about 1.5 s
  idle);
  reading the kept file takes milliseconds. A missing, damaged or partial
  file is computed again; a file that cannot be written (read-only home) is
  left out. Written to a temporary name, then renamed: processes that race
  read a complete file or none.
  """
  path = _cache_path()
  names = {"flags", "ccc", "icu_stable"} | {
      f"{part}_{_map_name(key)}" for key in _MAP_KEYS
      for part in ("index", "chars", "lengths")}
  try:
    with np.load(path, allow_pickle=False) as kept:
      if set(kept.files) == names:
        return {name: kept[name] for name in names}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile):
    pass  # missing or damaged: compute
  arrays = _computed_arrays()
  cache.keep(path, lambda f: np.savez(f, **arrays))  # if not writable: computed again
  return arrays


@functools.lru_cache(maxsize=None)
def _unicode_tables() -> _UnicodeTables:
  """Classifies every code point the way FullTokenizer does (see _arrays)."""
  arrays = _arrays()
  maps = {key: _CharMap(index=arrays[f"index_{_map_name(key)}"],
                        chars=arrays[f"chars_{_map_name(key)}"],
                        lengths=arrays[f"lengths_{_map_name(key)}"])
          for key in _MAP_KEYS}
  return _UnicodeTables(flags=arrays["flags"], ccc=arrays["ccc"], maps=maps)


def _computed_arrays() -> dict:
  """_arrays(), computed: FullTokenizer's answers for every code point."""
  flags = np.zeros(_NUM_CODE_POINTS, np.uint8)
  ccc = np.zeros(_NUM_CODE_POINTS, np.uint8)
  for low, high in _CJK_RANGES:
    flags[low:high + 1] |= _CJK
  indices = {key: np.zeros(_NUM_CODE_POINTS, np.int16) for key in _MAP_KEYS}
  rows = {key: [()] for key in _MAP_KEYS}  # Row 0: unchanged.
  for cp in range(_NUM_CODE_POINTS):
    if 0xD800 <= cp <= 0xDFFF:
      continue  # Surrogates never come out of UTF-8 decoding.
    char = chr(cp)
    category = unicodedata.category(char)
    if category == "Cn":
      continue  # Unassigned: no bit, class 0, maps to itself.
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
    # CPython's lower() maps U+03A3 to final sigma iff the nearest
    # non-case-ignorable character before it (in the string) is cased and
    # the nearest one after it is not. Its Cased / Case_Ignorable tables are
    # not in unicodedata, so ask lower() itself.
    if (char + "\u03a3").lower()[-1] == "\u03c2":
      bits |= _CASED
    elif ("A" + char + "\u03a3").lower()[-1] == "\u03c2":
      bits |= _CASE_IGNORABLE
    flags[cp] |= bits
    if bits & (_DROP | _SPACE):
      continue  # Those never reach the maps.
    for key in _MAP_KEYS:
      mapped = _transform(char, *key)
      if mapped != char:
        indices[key][cp] = len(rows[key])
        rows[key].append(tuple(map(ord, mapped)))

  maps = {}
  for key in _MAP_KEYS:
    assert len(rows[key]) < 2**15, "int16 index overflows"
    chars = np.zeros([len(rows[key]), _MAX_EXPANSION], np.int32)
    lengths = np.ones([len(rows[key])], np.int32)
    for row, mapped in enumerate(rows[key]):
      assert len(mapped) <= _MAX_EXPANSION, f"expansion too long: {mapped}"
      # FullTokenizer splits on whitespace again after lowering; that is a
      # no-op as long as no mapped character is whitespace (true in Unicode
      # 14). Check it rather than assume it.
      assert not any(flags[c] & (_SPACE | _DROP) for c in mapped), mapped
      chars[row, :len(mapped)] = mapped
      lengths[row] = max(len(mapped), 1)
    maps[key] = _CharMap(index=indices[key], chars=chars, lengths=lengths)
  arrays = {"flags": flags, "ccc": ccc, "icu_stable": _icu_stable_of(flags)}
  for key, char_map in maps.items():
    arrays.update({f"index_{_map_name(key)}": char_map.index,
                   f"chars_{_map_name(key)}": char_map.chars,
                   f"lengths_{_map_name(key)}": char_map.lengths})
  return arrays


class _TwoLevelTable:
  """A constant table over code points: table[cp] = blocks[index[cp // 128]].

  Storing each distinct 128-entry block once shrinks 0x110000 entries to
  tens of kilobytes. The tensors are created eagerly so that every function
  of the SavedModel captures the same constants (saved once).
  """

  def __init__(self, values: np.ndarray):
    blocks = values.reshape(-1, _BLOCK)  # [0x110000 / 128, 128]
    # Each distinct block once, in order of first use (a dict of their bytes:
    # 10 ms, where np.unique(axis=0) sorts rows in 0.6 s).
    ids = {}  # bytes of a distinct block -> its id, in order of first use
    index = [ids.setdefault(block.tobytes(), len(ids)) for block in blocks]
    self._index = tf.constant(index, tf.int32)  # [8704]
    self._blocks = tf.constant(  # [distinct * 128]
        np.frombuffer(b"".join(ids), values.dtype))

  def lookup(self, code_points):
    """code_points: int32 [N], valid code points. Returns [N] table values."""
    block = tf.gather(self._index, tf.bitwise.right_shift(code_points, 7))
    return tf.gather(self._blocks,
                     block * _BLOCK + tf.bitwise.bitwise_and(code_points, 127))


def _char_class(mask: np.ndarray, negate: bool = False) -> str:
  """An RE2 character class of the code points where mask [0x110000] is True.

  Code points are spelled \\x{...}, so the class is exactly the table, not
  RE2's own (possibly other) Unicode version.
  """
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
  ranges = [f"\\x{{{a:x}}}" + (f"-\\x{{{b - 1:x}}}" if b - 1 > a else "")
            for a, b in zip(edges[::2], edges[1::2])]
  return "[" + ("^" if negate else "") + "".join(ranges) + "]"


def _not_fast(tables: _UnicodeTables, *, lower_case: bool, strip_accents: bool,
              tokenize_chinese_chars: bool) -> np.ndarray:
  """bool [0x110000]: characters that send a sentence the exact route.

  A sentence without them is normalized by the settings to itself, except for
  A-Z when lower_case (which tf.strings.lower lowers exactly), and splits into
  words exactly where TF Text's end-to-end FastWordpiece splits it.
  """
  flags = tables.flags
  code_points = np.arange(_NUM_CODE_POINTS)
  ascii_upper = (code_points >= ord("A")) & (code_points <= ord("Z"))
  # Dropped characters and whitespace other than " \t\n\r" (which FastWordpiece
  # also splits at), and surrogates (so that invalid UTF-8 does not match).
  hard = ((flags & _DROP != 0) |
          ((flags & _SPACE != 0) & ~np.isin(code_points, [9, 10, 13, 32])) |
          ((code_points >= 0xD800) & (code_points <= 0xDFFF)))
  if lower_case or strip_accents:  # Characters that lower() or NFD change,
    changed = tables.maps[(lower_case, strip_accents)].index != 0
    hard |= (changed & ~ascii_upper) if lower_case else changed
  if strip_accents:  # those that stripping drops or NFD may reorder,
    hard |= flags & (_MN | _NONSTARTER) != 0
  if not tokenize_chinese_chars:  # and CJK, which FastWordpiece splits off.
    hard |= flags & _CJK != 0
  return hard | ~_icu_stable()


def _icu_stable() -> np.ndarray:
  """bool [0x110000]: where every ICU classifies like the tables.

  Beyond ASCII and BERT's CJK ranges (fixed in the op too), FastWordpiece
  asks ICU whether a character is punctuation or whitespace: keep those that
  are assigned in Unicode 3.2 with the same punctuation status and no space
  or control category, which every ICU since agrees on.
  """
  return _arrays()["icu_stable"]


def _icu_stable_of(flags: np.ndarray) -> np.ndarray:
  """_icu_stable(), computed from the flags table."""
  stable = np.zeros(_NUM_CODE_POINTS, bool)
  stable[:0x80] = True
  for low, high in _CJK_RANGES:
    stable[low:high + 1] = True
  old = unicodedata.ucd_3_2_0
  for cp in np.flatnonzero(~stable):
    if 0xD800 <= cp <= 0xDFFF:
      continue  # (Surrogates are never on the fast route.)
    then = old.category(chr(cp))
    stable[cp] = (then not in ("Cn", "Cc", "Cf", "Zs", "Zl", "Zp") and
                  then.startswith("P") == bool(flags[cp] & _PUNCT))
  return stable
