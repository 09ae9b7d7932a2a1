"""Reads a BERT WordPiece vocabulary exactly as the original `FullTokenizer` does.

A vocabulary file has one token per line; the token's id is its 0-based line
number. `FullTokenizer.load_vocab` (google-research/bert, and its fork
`official.nlp.tools.tokenization` in tf-models) reads lines split on "\\n" only
and `.strip()`s each one, so CRLF files and trailing blanks work there; this
module does the same, so ids always agree with it.

`read_vocab` refuses what would silently tokenize wrong:
  * a missing or empty file;
  * bytes that are not UTF-8 (the message names the line);
  * a leading UTF-8 byte order mark (it would glue itself to token 0, usually
    "[PAD]", so that "[PAD]" would not be found);
  * a missing special token ([PAD] [UNK] [CLS] [SEP] [MASK]; all are listed);
  * the same token on two lines (every repeat is listed with its line numbers;
    `FullTokenizer` would keep only the last id, the table lookups of TF Text
    the first).

`Vocab.write_normalized` writes the tokens back one per line with "\\n" endings.
Exports store that copy as their asset, so TensorFlow's text-file lookup tables
(which keep a trailing "\\r") and `FullTokenizer` see the same tokens.

Example:
  vocab = read_vocab("vocab.txt")
  vocab.size, vocab.cls_id, vocab.tokens[vocab.sep_id]  # 30522, 101, "[SEP]"
"""
import dataclasses
import functools
import os

from bert_hub.errors import BertHubError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class Vocab:
  """A WordPiece vocabulary: `tokens[i]` is the token with id i.

  Attributes:
    tokens: every token, stripped like `FullTokenizer.load_vocab` strips them.
    path: the file it was read from (for messages only).
  """
  tokens: tuple
  path: str

  @property
  def size(self) -> int:
    """Number of ids: one past the largest id."""
    return len(self.tokens)

  def id_of(self, token: str) -> int:
    """The id of `token`; raises BertHubError if it is not in the vocabulary."""
    try:
      return self._ids[token]
    except KeyError:
      raise BertHubError(
          f"token {token!r} is not in vocabulary {self.path}",
          expected="a token listed in the file", received=repr(token),
          fix="use a token from the file, or add it") from None

  @property
  def pad_id(self) -> int:
    return self._ids["[PAD]"]

  @property
  def unk_id(self) -> int:
    return self._ids["[UNK]"]

  @property
  def cls_id(self) -> int:
    return self._ids["[CLS]"]

  @property
  def sep_id(self) -> int:
    return self._ids["[SEP]"]

  @property
  def mask_id(self) -> int:
    return self._ids["[MASK]"]

  @functools.cached_property
  def _ids(self) -> dict:
    # cached_property writes the instance __dict__ directly, so frozen is fine.
    return {token: i for i, token in enumerate(self.tokens)}

  def write_normalized(self, dest_path: str) -> None:
    """Writes the tokens one per line, UTF-8, "\\n" endings, no BOM."""
    with open(dest_path, "w", encoding="utf-8", newline="\n") as f:
      f.write("".join(token + "\n" for token in self.tokens))


def read_vocab(path) -> Vocab:
  """Reads and validates a vocabulary file (see the module docstring).

  Args:
    path: a str or os.PathLike naming a local vocab.txt.

  Returns:
    A `Vocab` whose ids equal those of `FullTokenizer(path)`.

  Raises:
    BertHubError: the file is missing, empty, not UTF-8, starts with a byte
      order mark, lacks a special token or repeats a token.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise BertHubError(
        f"vocabulary file {path} not found",
        expected="an existing vocab.txt (one WordPiece token per line)",
        received="no such file" if not os.path.exists(path) else "a directory",
        fix="pass the path of the vocab.txt that came with the checkpoint")
  with open(path, "rb") as f:
    data = f.read()
  if not data.strip():
    raise BertHubError(
        f"vocabulary file {path} is empty",
        expected="one WordPiece token per line",
        received=f"{len(data)} bytes of whitespace" if data else "0 bytes",
        fix="pass the vocab.txt that came with the checkpoint")
  if data.startswith(_BOM):
    raise BertHubError(
        f"vocabulary file {path} starts with a UTF-8 byte order mark",
        expected="plain UTF-8 without a byte order mark (BERT's FullTokenizer "
        "would read the first token as '\\ufeff' + token)",
        received="the bytes EF BB BF before the first token",
        fix=f"strip it, e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' {path}`, or in "
        "Python: data = open(p, 'rb').read(); open(p, 'wb').write(data[3:])")

  # Lines end at "\n" only, like GFile.readline() in FullTokenizer.load_vocab;
  # a final "\n" does not start another token.
  lines = data.split(b"\n")
  if lines[-1] == b"":
    lines.pop()
  tokens = []
  for line_number, line in enumerate(lines, start=1):
    try:
      text = line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise BertHubError(
          f"vocabulary file {path} is not UTF-8 at line {line_number}",
          expected="UTF-8 text",
          received=f"byte 0x{line[e.start]:02X} at column {e.start + 1} "
          f"of line {line_number}: {line[:60]!r}",
          fix="re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
      ) from None
    tokens.append(text.strip())

  missing = [t for t in SPECIAL_TOKENS if t not in set(tokens)]
  if missing:
    raise BertHubError(
        f"vocabulary file {path} lacks special tokens",
        expected="all of " + " ".join(SPECIAL_TOKENS),
        received="no line with " + ", ".join(missing),
        fix="pass a BERT WordPiece vocab.txt (the one of the checkpoint)")

  lines_of = {}
  for line_number, token in enumerate(tokens, start=1):
    lines_of.setdefault(token, []).append(line_number)
  repeated = {t: n for t, n in lines_of.items() if len(n) > 1}
  if repeated:
    raise BertHubError(
        f"vocabulary file {path} repeats tokens",
        expected="every token on one line only (its line number is its id)",
        received=f"{len(repeated)} repeated: " + ", ".join(
            f"{t!r} on lines {', '.join(map(str, n))}"
            for t, n in repeated.items()),
        fix="remove the repeated lines, or use the vocab.txt of the checkpoint")

  return Vocab(tokens=tuple(tokens), path=path)
