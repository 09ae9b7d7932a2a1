"""How a model tokenizes, resolved from the model itself: never from a file name.

Every export that tokenizes (preprocessing, the text servables, and the
encoder's `do_lower_case` variable) calls `resolve()` once. Each setting comes
from the first of these that states it:

  1. what the user passed (`--lower-case` / `--no-lower-case`);
  2. the model's own files, in the checkpoint's folder and the vocab's folder:
       tokenizer_config.json       do_lower_case, strip_accents,
                                   tokenize_chinese_chars, never_split,
                                   do_basic_tokenize (Hugging Face BertTokenizer)
       tokenizer.json              its BertNormalizer: lowercase, strip_accents,
                                   handle_chinese_chars (BertTokenizerFast)
       sentence_bert_config.json   do_lower_case: true (sentence-transformers
                                   lower-cases the text before the tokenizer)
  3. the vocab's content: in an uncased vocab almost no token with letters
     holds an upper-case letter (all-MiniLM-L6-v2: 2 of 28,000), in a cased one
     thousands do (bert-base-cased: about a fifth).

Model files that disagree with each other, or a casing that the vocab's
content contradicts (lower-casing a vocab with thousands of capitalised
tokens, or keeping the case of a vocab that has none), are a one-line
BertHubError naming both sources. Settings Hugging Face's BertTokenizer has and
the in-graph tokenizer cannot reproduce (a non-empty `never_split`,
`do_basic_tokenize: false`, a normalizer other than BertNormalizer) are refused
by name, never ignored.

  settings = resolve(lower_case=None, vocab=read_vocab(path),
                     folders=[checkpoint_folder], report=print_report)
  settings.lower_case, settings.strip_accents, settings.tokenize_chinese_chars
  settings.sources    {"lower_case": "tokenizer_config.json (...)", ...}
"""
import dataclasses
import json
import os
from typing import Callable, Dict, Iterable, Optional, Sequence

from bert_hub.errors import BertHubError
from bert_hub.vocab import Vocab

TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_JSON = "tokenizer.json"
SENTENCE_BERT_CONFIG = "sentence_bert_config.json"

# A vocab is cased when more than this fraction of its tokens with letters
# hold an upper-case letter. Measured: uncased BERT vocabs 0.00-0.01%
# (all-MiniLM-L6-v2: 2 of 28,631, "ℝ" and "##ℝ"), cased ones 15-30%.
CASED_VOCAB_FRACTION = 0.01
# A vocab's content contradicts a stated casing only when it has at least this
# many tokens with letters (every real BERT vocab has tens of thousands; small
# hand-made vocabs prove nothing either way).
DECISIVE_VOCAB_TOKENS = 1000


@dataclasses.dataclass(frozen=True)
class TokenizerSettings:
  """The settings of Hugging Face's BertTokenizer that the exports honour.

  lower_case: lower-case the text (FullTokenizer's do_lower_case).
  strip_accents: None = strip accents iff lower_case (FullTokenizer); False =
    keep them; True = strip them even without lower-casing.
  tokenize_chinese_chars: CJK ideographs are words of their own.
  sources: setting -> where its value came from (for the log, the model page
    and bert_hub.json).
  """
  lower_case: bool
  strip_accents: Optional[bool] = None
  tokenize_chinese_chars: bool = True
  sources: Dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

  def to_dict(self) -> dict:
    return dict(lower_case=self.lower_case, strip_accents=self.strip_accents,
                tokenize_chinese_chars=self.tokenize_chinese_chars,
                sources=dict(self.sources))

  def describe(self) -> str:
    return ", ".join(f"{name}={getattr(self, name)} ({self.sources.get(name, 'default')})"
                     for name in ("lower_case", "strip_accents", "tokenize_chinese_chars"))


Report = Callable[[str, str], None]


def _read_json(path: str, fix: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, OSError) as e:  # JSONDecodeError, UnicodeDecodeError
    raise BertHubError(
        f"unreadable {os.path.basename(path)}", expected="a UTF-8 JSON object",
        received=f"{path}: {str(e).splitlines()[0][:200]}", fix=fix) from None


def _file_settings(folder: str) -> Dict[str, Dict[str, object]]:
  """{file path: {setting: value}} stated by the model files in `folder`."""
  found = {}
  fix = "repair or remove it, or pass --lower-case / --no-lower-case"
  path = os.path.join(folder, TOKENIZER_CONFIG)
  if os.path.isfile(path):
    data = _read_json(path, fix)
    data = data if isinstance(data, dict) else {}
    stated = {}
    if isinstance(data.get("do_lower_case"), bool):
      stated["lower_case"] = data["do_lower_case"]
    if data.get("strip_accents") in (True, False):
      stated["strip_accents"] = data["strip_accents"]
    if isinstance(data.get("tokenize_chinese_chars"), bool):
      stated["tokenize_chinese_chars"] = data["tokenize_chinese_chars"]
    never_split = data.get("never_split")
    if never_split:
      raise BertHubError(
          f"unsupported tokenizer setting in {path}",
          expected="no never_split (BERT's FullTokenizer, which the exported "
          "graph reproduces, splits and lower-cases every word)",
          received=f"never_split: {json.dumps(never_split)[:200]}",
          fix="remove never_split from the file if the model was not trained with "
          "it; bert-hub cannot reproduce it in the graph")
    if data.get("do_basic_tokenize") is False:
      raise BertHubError(
          f"unsupported tokenizer setting in {path}",
          expected="do_basic_tokenize: true (punctuation and CJK split before "
          "WordPiece, as in BERT)",
          received="do_basic_tokenize: false",
          fix="export a model tokenized the BERT way; bert-hub cannot reproduce "
          "WordPiece without basic tokenization")
    found[path] = stated
  path = os.path.join(folder, TOKENIZER_JSON)
  if os.path.isfile(path):
    data = _read_json(path, fix)
    normalizer = data.get("normalizer") if isinstance(data, dict) else None
    model = (data.get("model") or {}) if isinstance(data, dict) else {}
    if model.get("type", "WordPiece") != "WordPiece" or (
        normalizer is not None and normalizer.get("type") != "BertNormalizer"):
      raise BertHubError(
          f"unsupported tokenizer in {path}",
          expected="a WordPiece model with a BertNormalizer (BERT's tokenizer)",
          received=f"model {model.get('type')!r}, normalizer "
          f"{(normalizer or {}).get('type')!r}",
          fix="export a BERT model; other tokenizers are not reproduced in the graph")
    if normalizer:
      stated = {}
      if isinstance(normalizer.get("lowercase"), bool):
        stated["lower_case"] = normalizer["lowercase"]
      if normalizer.get("strip_accents") in (True, False):
        stated["strip_accents"] = normalizer["strip_accents"]
      if isinstance(normalizer.get("handle_chinese_chars"), bool):
        stated["tokenize_chinese_chars"] = normalizer["handle_chinese_chars"]
      found[path] = stated
  path = os.path.join(folder, SENTENCE_BERT_CONFIG)
  if os.path.isfile(path):
    data = _read_json(path, fix)
    # do_lower_case: false only means "no extra lower-casing": not a casing.
    if isinstance(data, dict) and data.get("do_lower_case") is True:
      found[path] = {"text_lower_case": True}
  return found


def vocab_casing(vocab: Vocab):
  """(lower_case guess or None, one line saying why, decisive) from the vocab's tokens.

  decisive: the vocab has DECISIVE_VOCAB_TOKENS tokens with letters or more, so
  a stated casing that contradicts the guess is an error.
  """
  with_letters = upper = 0
  for token in vocab.tokens:
    if token.startswith("[") and token.endswith("]"):
      continue  # [PAD], [unused0], ...
    if any(c.isalpha() and (c.isupper() or c.islower()) for c in token):
      with_letters += 1
      upper += any(c.isupper() for c in token)
  if not with_letters:
    return None, f"{vocab.path} has no tokens with cased letters", False
  fraction = upper / with_letters
  guess = fraction <= CASED_VOCAB_FRACTION
  return guess, (f"{upper:,} of the {with_letters:,} tokens with letters in "
                 f"{vocab.path} hold an upper-case letter ({fraction:.2%}; uncased "
                 f"vocabs: almost none, cased ones: thousands)"), (
                     with_letters >= DECISIVE_VOCAB_TOKENS)


def resolve(*, lower_case: Optional[bool], vocab: Vocab, folders: Iterable[str],
            report: Report) -> TokenizerSettings:
  """The tokenizer settings of a model; see the module docstring.

  Args:
    lower_case: what the user passed, or None.
    vocab: the model's vocabulary (read_vocab).
    folders: where the model's files are (the checkpoint's folder, the vocab's);
      repeated folders are read once.
    report: called with ("tokenizer", one line) saying what was decided and why.
  """
  seen, stated = [], {}  # stated: setting -> [(value, source)]
  for folder in folders:
    folder = os.path.abspath(folder or ".")
    if folder in seen:
      continue
    seen.append(folder)
    for path, values in _file_settings(folder).items():
      for name, value in values.items():
        stated.setdefault(name, []).append((value, path))
  for name, values in stated.items():
    if len({v for v, _ in values}) > 1:
      raise BertHubError(
          "the model's tokenizer files disagree",
          expected=f"one value of {name}",
          received="; ".join(f"{v} in {p}" for v, p in values),
          fix="correct the wrong file, or pass --lower-case / --no-lower-case")

  def first(name):
    return stated[name][0] if name in stated else (None, None)

  sources = {}
  guess, why, decisive = vocab_casing(vocab)
  file_lower, file_source = first("lower_case")
  text_lower, text_source = first("text_lower_case")
  strip_accents, strip_source = first("strip_accents")
  if text_lower and file_lower is False:
    # sentence-transformers lower-cases the text for a case-keeping tokenizer:
    # lower-cased, accents kept.
    file_lower, file_source = True, f"{text_source} (the text is lower-cased first)"
    if strip_accents is None:
      strip_accents, strip_source = False, f"{first('lower_case')[1]} (do_lower_case: false)"
  elif text_lower and file_lower is None:
    file_lower, file_source = True, text_source

  if lower_case is not None:
    value, sources["lower_case"] = lower_case, "passed by the user"
    if file_lower is not None and file_lower != lower_case:
      report("tokenizer", f"do_lower_case={lower_case} as passed, overriding "
             f"{file_source}'s {file_lower}")
  elif file_lower is not None:
    value, sources["lower_case"] = file_lower, file_source
  elif guess is not None:
    value, sources["lower_case"] = guess, "the vocab's content"
  else:
    raise BertHubError(
        "cannot tell whether the model lower-cases", expected="--lower-case or "
        f"--no-lower-case, or {TOKENIZER_CONFIG} beside the vocab",
        received=why, fix="pass --lower-case for uncased models, --no-lower-case "
        "for cased ones")
  if decisive and guess != value:
    raise BertHubError(
        "the tokenizer's casing contradicts the vocab",
        expected=("an uncased vocab for do_lower_case=True" if value
                  else "a cased vocab for do_lower_case=False"),
        received=f"do_lower_case={value} from {sources['lower_case']}, but {why}",
        fix="pass the vocab.txt that belongs to this model, or correct the casing "
        f"({'--no-lower-case' if value else '--lower-case'})")
  if strip_accents is not None:
    sources["strip_accents"] = strip_source
  chinese, chinese_source = first("tokenize_chinese_chars")
  if chinese is not None:
    sources["tokenize_chinese_chars"] = chinese_source
  settings = TokenizerSettings(
      lower_case=value, strip_accents=strip_accents,
      tokenize_chinese_chars=True if chinese is None else chinese, sources=sources)
  detail = f"do_lower_case={value} from {sources['lower_case']}"
  if sources["lower_case"] == "the vocab's content":
    detail += f": {why}; pass --lower-case or --no-lower-case to override"
  extras = [f"{n}={getattr(settings, n)} from {sources[n]}"
            for n in ("strip_accents", "tokenize_chinese_chars") if n in sources]
  report("tokenizer", "; ".join([detail] + extras))
  return settings


def model_folders(*paths: Optional[str]) -> Sequence[str]:
  """The folders of a checkpoint and/or vocab path (a folder is its own)."""
  out = []
  for path in paths:
    if path:
      out.append(path if os.path.isdir(path) else os.path.dirname(path) or ".")
  return out
