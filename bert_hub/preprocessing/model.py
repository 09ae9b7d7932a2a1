"""The preprocessing model: the tf.Module objects that are saved.

  preprocessor = create_preprocessing(vocab_file="vocab.txt", lower_case=True)
  tf.saved_model.save(preprocessor, path,
                      signatures=preprocessing_signatures(preprocessor))

What the saved object provides is the API contract in the package docstring
(bert_hub.preprocessing). In memory, before saving, the root object also has
`preprocessor.special_tokens` (a packing.SpecialTokens; not saved).
"""
import os
import shutil
import tempfile
import weakref
from typing import Optional

from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub._tf_private import traced_as_saved
from bert_hub.errors import BertHubError
from bert_hub.preprocessing.faithful import FaithfulTokenizer
from bert_hub.preprocessing.packing import pack_inputs
from bert_hub.preprocessing.packing import SpecialTokens
from bert_hub.preprocessing.tf_text import check_settings
from bert_hub.preprocessing.tf_text import TfTextTokenizer
from bert_hub.vocab import read_vocab

import numpy as np
import tensorflow as tf

NORMALIZATIONS = ("faithful", "tf_text")
MAX_SEGMENTS = 3  # bert_pack_inputs is saved for 1 to MAX_SEGMENTS segments.

_SIGNATURE_INPUT = tf.TensorSpec([None], tf.string, name="sentences")


class _Tokenize(tf.Module):
  """`.tokenize` (or `.tokenize_with_offsets`): callable on sentences."""

  def __init__(self, tokenizer, special: SpecialTokens, with_offsets: bool):
    super().__init__()
    self._tokenizer = tokenizer
    self._special = special  # Python ints: not tracked, not saved.
    self._with_offsets = with_offsets

  # No autograph here and below: the tokenizers and packing branch with
  # tf.cond themselves, and converting their code costs seconds per trace.
  @tf.function(input_signature=[_SIGNATURE_INPUT], autograph=False)
  def __call__(self, sentences):
    """tf.string [B] -> int32 [B, (W), (P)] (, int64 offsets, same shape)."""
    return self._tokenizer.tokenize(sentences, self._with_offsets)

  @tf.function(input_signature=[], autograph=False)
  def get_special_tokens_dict(self):
    """-> dict of int32 scalars (see the package docstring)."""
    return {k: tf.constant(v, tf.int32)
            for k, v in self._special.as_dict().items()}


class _BertPackInputs(tf.Module):
  """`.bert_pack_inputs`: callable on a list of token RaggedTensors."""

  def __init__(self, special: SpecialTokens, default_seq_length: int):
    super().__init__()

    @tf.function(autograph=False)
    def bert_pack_inputs(inputs, seq_length=default_seq_length):
      """inputs: list of int32 [B, (tokens)] or [B, (W), (P)]; seq_length: T."""
      return pack_inputs(list(inputs), seq_length, special)

    # Saved as this object's __call__ (like tf-models' BertPackInputsSavedModel-
    # Wrapper), so that the default seq_length is this instance's.
    self.__call__ = bert_pack_inputs
    # Trace what the SavedModel will accept: 1 to MAX_SEGMENTS segments of
    # ragged rank 1 or 2. A Python int seq_length (or none) is converted.
    # Traced as tf.saved_model.save traces (default options), and seq_length
    # passed as save() passes it again (positional, named): save() then finds
    # these six traces instead of making them again.
    with traced_as_saved(tf.saved_model.SaveOptions()):
      for ragged_rank in (1, 2):
        for num_segments in range(1, MAX_SEGMENTS + 1):
          bert_pack_inputs.get_concrete_function(
              [tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32)
               for _ in range(num_segments)],
              tf.TensorSpec([], tf.int32, name="seq_length"))

  def __call__(self, *args, **kwargs):
    # Before saving, Python looks __call__ up on the class: use the function.
    return self.__dict__["__call__"](*args, **kwargs)


class _Preprocessor(tf.Module):
  """The root object; see the package docstring for everything it provides."""

  def __init__(self, *, tokenizer: tf.Module, special: SpecialTokens,
               vocab_asset_path: str, default_seq_length: int,
               tokenize_with_offsets: bool, bert_pack_inputs: bool):
    super().__init__(name="bert_preprocessing")
    # Travels with the SavedModel (assets/), for readers of the vocabulary.
    self.vocab_file = tf.saved_model.Asset(vocab_asset_path)
    self._tokenizer = tokenizer
    # A frozen dataclass of ints: tf.Module neither tracks nor saves it.
    self.special_tokens = special
    self._default_seq_length = default_seq_length
    self.tokenize = _Tokenize(tokenizer, special, False)
    if tokenize_with_offsets:
      self.tokenize_with_offsets = _Tokenize(tokenizer, special, True)
    if bert_pack_inputs:
      self.bert_pack_inputs = _BertPackInputs(special, default_seq_length)

  @tf.function(input_signature=[_SIGNATURE_INPUT], autograph=False)
  def __call__(self, sentences):
    """tf.string [B] -> dict of int32 [B, default_seq_length] (one segment)."""
    # A call of .tokenize's function: its graph traced once, not twice.
    tokens = self.tokenize(sentences)
    return pack_inputs([tokens], self._default_seq_length, self.special_tokens)


def _check_arguments(*, normalization, default_seq_length, strip_accents,
                     tokenize_chinese_chars) -> None:
  """BertHubError for a bad value of a create_preprocessing argument."""
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
  if strip_accents is not None and not isinstance(strip_accents,
                                                  (bool, np.bool_)):
    raise BertHubError(
        "bad strip_accents", expected="None, True or False (as Hugging Face's "
        "BertTokenizer: None strips accents iff lower_case)",
        received=repr(strip_accents),
        fix="pass strip_accents=None unless the model's tokenizer_config.json "
        "states it")
  if not isinstance(tokenize_chinese_chars, (bool, np.bool_)):
    raise BertHubError(
        "bad tokenize_chinese_chars", expected="True or False",
        received=repr(tokenize_chinese_chars),
        fix="pass tokenize_chinese_chars=True unless the model's "
        "tokenizer_config.json states false")


def create_preprocessing(*, vocab_file: str, lower_case: bool,
                         strip_accents: Optional[bool] = None,
                         tokenize_chinese_chars: bool = True,
                         default_seq_length: int = 128,
                         tokenize_with_offsets: bool = False,
                         normalization: str = "faithful",
                         bert_pack_inputs: bool = True) -> tf.Module:
  """Returns the preprocessing model, ready for `tf.saved_model.save`.

  Args:
    vocab_file: path of the WordPiece vocab.txt of the checkpoint (validated
      by `bert_hub.vocab.read_vocab`; CRLF line endings are fine).
    lower_case: True for "uncased" checkpoints (FullTokenizer's do_lower_case).
    strip_accents: Hugging Face BertTokenizer's: None strips accents iff
      lower_case (FullTokenizer); False keeps them (lower-cased or not, no
      NFD at all); True strips them (NFD, drop Mn) also when keeping the case.
    tokenize_chinese_chars: Hugging Face BertTokenizer's: True (FullTokenizer)
      makes each CJK ideograph a word of its own; False leaves them inside
      the words that whitespace and punctuation make.
    default_seq_length: T of the root call, and of bert_pack_inputs when it is
      called without seq_length. At least 2 ([CLS] [SEP]).
    tokenize_with_offsets: whether to add `.tokenize_with_offsets`.
    normalization: "faithful" (FullTokenizer's ids, the default) or "tf_text"
      (text.BertTokenizer's, as in TF Hub's published preprocessors; only for
      the default strip_accents and tokenize_chinese_chars).
    bert_pack_inputs: whether to add `.bert_pack_inputs`. False leaves out
      its six traces (about 0.3 s), for callers that only tokenize and pack
      with `packing.pack_inputs` themselves, as the text servables do.

  Returns:
    A tf.Module with __call__, tokenize, (tokenize_with_offsets,)
    (bert_pack_inputs) and vocab_file, documented in the package docstring,
    and (in memory only) special_tokens. Save it with
    `signatures=preprocessing_signatures(obj)`.

  Raises:
    BertHubError: a bad vocab_file, default_seq_length, normalization,
      strip_accents or tokenize_chinese_chars, or settings that
      normalization="tf_text" cannot honour (named in the message).
  """
  _check_arguments(normalization=normalization,
                   default_seq_length=default_seq_length,
                   strip_accents=strip_accents,
                   tokenize_chinese_chars=tokenize_chinese_chars)
  lower_case = bool(lower_case)
  strip = lower_case if strip_accents is None else bool(strip_accents)
  tokenize_chinese_chars = bool(tokenize_chinese_chars)
  if normalization == "tf_text":
    check_settings(lower_case=lower_case, strip_accents=strip,
                   tokenize_chinese_chars=tokenize_chinese_chars)
  vocab = read_vocab(vocab_file)

  # The normalized copy ("\n" endings) becomes the asset. It must exist until
  # the object is saved, so it lives as long as the object.
  asset_dir = tempfile.mkdtemp(prefix="bert_hub_vocab_")
  asset_path = os.path.join(asset_dir, "vocab.txt")
  vocab.write_normalized(asset_path)
  if normalization == "faithful":
    tokenizer = FaithfulTokenizer(
        vocab, lower_case=lower_case, strip_accents=strip,
        tokenize_chinese_chars=tokenize_chinese_chars)
  else:
    tokenizer = TfTextTokenizer(asset_path, lower_case=lower_case)
  preprocessor = _Preprocessor(
      tokenizer=tokenizer, special=SpecialTokens.from_vocab(vocab),
      vocab_asset_path=asset_path, default_seq_length=int(default_seq_length),
      tokenize_with_offsets=bool(tokenize_with_offsets),
      bert_pack_inputs=bool(bert_pack_inputs))
  weakref.finalize(preprocessor, shutil.rmtree, asset_dir, True)
  return preprocessor


def preprocessing_signatures(preprocessor) -> dict:
  """The SavedModel signatures of a preprocessor: {"serving_default": ...}.

  serving_default: input `sentences` tf.string [None] -> outputs
  input_word_ids, input_mask, input_type_ids, int32 [None, default_seq_length].
  """
  return {"serving_default": preprocessor.__call__.get_concrete_function()}
