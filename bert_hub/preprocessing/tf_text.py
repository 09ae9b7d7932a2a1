"""TfTextTokenizer: normalization="tf_text", TF Text's BertTokenizer.

The tokenizer of the TF Hub preprocessors made by tf-models: `text.BertTokenizer`
over a vocab table read from the asset. lower_case applies NFKC case folding
and strips accents; CJK ideographs are always words of their own. Settings it
cannot reproduce are refused by `check_settings` (by name, BertHubError).

  check_settings(lower_case=True, strip_accents=True, tokenize_chinese_chars=True)
  tokens = TfTextTokenizer(asset_path, lower_case=True).tokenize(sentences,
                                                                 with_offsets=False)
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.errors import BertHubError

import tensorflow as tf
import tensorflow_text as text


def check_settings(*, lower_case: bool, strip_accents: bool,
                   tokenize_chinese_chars: bool) -> None:
  """Raises BertHubError naming each setting text.BertTokenizer cannot honour.

  strip_accents is the resolved value (None already replaced by lower_case).
  """
  refused = []
  if strip_accents != lower_case:
    refused.append((
        f"strip_accents={strip_accents} with lower_case={lower_case}",
        "strip_accents equal to lower_case (or None): TF Text's BertTokenizer "
        "strips accents exactly when it lower-cases"))
  if not tokenize_chinese_chars:
    refused.append((
        "tokenize_chinese_chars=False",
        "tokenize_chinese_chars=True: TF Text's BertTokenizer always makes CJK "
        "ideographs words of their own"))
  if refused:
    raise BertHubError(
        'normalization="tf_text" cannot honour '
        + " and ".join(name.split("=")[0] for name, _ in refused),
        expected="; ".join(expected for _, expected in refused),
        received="; ".join(name for name, _ in refused),
        fix='use normalization="faithful" (the default), which implements '
        "these settings exactly as Hugging Face's BertTokenizer")


class TfTextTokenizer(tf.Module):
  """text.BertTokenizer over a vocab table, as in tf-models' BertTokenizer layer."""

  def __init__(self, vocab_path: str, *, lower_case: bool):
    """vocab_path: the normalized vocab.txt (one token per line, "\\n")."""
    super().__init__(name="tf_text_tokenizer")
    self._initializer = tf.lookup.TextFileInitializer(
        vocab_path, key_dtype=tf.string,
        key_index=tf.lookup.TextFileIndex.WHOLE_LINE, value_dtype=tf.int64,
        value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
    self._table = tf.lookup.StaticHashTable(self._initializer, default_value=-1)
    self._bert_tokenizer = text.BertTokenizer(self._table, lower_case=lower_case)

  def tokenize(self, sentences, with_offsets: bool):
    """sentences: tf.string [B] -> tokens (, start_offsets, limit_offsets).

    tokens: int32 [B, (W), (P)]; offsets: int64 [B, (W), (P)], bytes of the
    input as text.BertTokenizer reports them.
    """
    if not with_offsets:
      return tf.cast(self._bert_tokenizer.tokenize(sentences), tf.int32)
    tokens, starts, limits = self._bert_tokenizer.tokenize_with_offsets(
        sentences)
    return tf.cast(tokens, tf.int32), starts, limits
