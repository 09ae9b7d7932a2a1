"""The facts of a model page that the checkpoint cannot tell, and the TF Hub name.

What is not stated is not invented: the caller (bert-hub-export's options)
gives publisher, name, language, dataset and whole-word masking.

  check_facts(publisher=, name=, language=, dataset=)  refuses what would break a page
  tfhub_name(config, language=, cased=, whole_word_masking=)
      bert_<lang>[_wwm][_<cased|uncased>]_L-<L>_H-<H>_A-<A>
  language_name(code), is_caseless(code)
"""
import re
from typing import Optional

from bert_hub.errors import BertHubError

DEFAULT_PUBLISHER = "bert-hub"
DEFAULT_LANGUAGE = "en"

# Language codes -> the English name used in "pre-trained for <name>". Codes not
# listed are shown as themselves.
LANGUAGE_NAMES = {
    "en": "English", "zh": "Chinese", "zh-cn": "Chinese", "zh-tw": "Chinese",
    "ja": "Japanese", "ko": "Korean", "de": "German", "fr": "French",
    "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "ru": "Russian", "ar": "Arabic", "hi": "Hindi", "multi": "many languages",
}
# Scripts without letter case: TF Hub's names omit cased/uncased for them
# (bert_zh_L-12_H-768_A-12), and their pages say nothing about casing.
CASELESS_LANGUAGES = ("zh", "ja", "ko", "th")

_HANDLE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LANGUAGE = re.compile(r"^(multi|[a-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")

def check_facts(*, publisher: str, name: Optional[str], language: str,
                dataset: Optional[str] = None) -> None:
  """Refuses a publisher, name, language or dataset that would break the page."""
  if dataset is not None and (not dataset.strip() or "\n" in dataset or "-->" in dataset):
    raise BertHubError(
        "bad --dataset", expected="one line of text without '-->'",
        received=repr(dataset), fix="pass e.g. --dataset 'Wikipedia and BooksCorpus'")
  for option, value in (("--publisher", publisher), ("--name", name)):
    if value is not None and not _HANDLE_PART.match(value):
      raise BertHubError(
          f"bad {option}", expected="letters, digits, '.', '_' or '-' (one part "
          "of the handle <publisher>/<name>/<version>)", received=repr(value),
          fix=f"pass {option} without '/' or spaces, e.g. "
          f"{'my-org' if option == '--publisher' else 'bert_en_uncased_L-12_H-768_A-12'}")
  if not _LANGUAGE.match(language or ""):
    raise BertHubError(
        "bad --language", expected="a language code such as en, zh-cn or de, "
        "or multi", received=repr(language), fix="pass --language en (the default)")


def _primary(language: str) -> str:
  return language.split("-")[0].lower()


def language_name(language: str) -> str:
  return LANGUAGE_NAMES.get(language.lower(), LANGUAGE_NAMES.get(
      _primary(language), f"the language `{language}`"))


def is_caseless(language: str) -> bool:
  return _primary(language) in CASELESS_LANGUAGES


def tfhub_name(config, *, language: str = DEFAULT_LANGUAGE, cased: bool,
               whole_word_masking: Optional[bool] = False) -> str:
  """The model's name the TF Hub way.

    bert_en_uncased_L-12_H-768_A-12, bert_en_wwm_cased_L-24_H-1024_A-16,
    bert_zh_L-12_H-768_A-12 (no case for caseless scripts), bert_multi_cased_...
  """
  parts = ["bert", _primary(language)]
  if whole_word_masking:
    parts.append("wwm")
  if not is_caseless(language):
    parts.append("cased" if cased else "uncased")
  parts.append(f"L-{config.num_layers}_H-{config.hidden_size}_A-{config.num_heads}")
  return "_".join(parts)


def usage_seq_length(config) -> int:
  """The snippet's seq_length: 128, or less if the model has fewer positions."""
  return min(128, config.max_position_embeddings)
