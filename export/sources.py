"""What an export is made from, resolved and checked before any work is done.

  model_source(checkpoint=, vocab=, config=, checkpoint_format=, lower_case=,
               report=) -> ModelSource
      the config, the vocab (which must fit the embedding matrix) and the
      tokenizer settings (bert_hub/tokenizer_settings.py) of a checkpoint;
      config and vocab default to the files beside the checkpoint.
  vocab_source(vocab=, checkpoint=, lower_case=, report=) -> VocabSource
      the same without the weights, for the preprocessing export: from
      --vocab, or from a checkpoint directory.
  check_seq_length(seq_length, max_positions=)  3 <= S <= max positions
  check_model_version(version)                  an integer >= 1
"""
import dataclasses
import os
from typing import Callable, Optional

from bert_hub import tokenizer_settings
from bert_hub.config import BertConfig, load_config
from bert_hub.errors import BertHubError
from bert_hub.tokenizer_settings import TokenizerSettings
from bert_hub.vocab import Vocab, read_vocab

Report = Callable[[str, str], None]


@dataclasses.dataclass
class VocabSource:
  vocab_path: str
  vocab: Vocab
  tokenizer: TokenizerSettings
  folder: Optional[str] = None  # the model's folder, if a checkpoint was given


@dataclasses.dataclass
class ModelSource(VocabSource):
  checkpoint: str = ""
  checkpoint_format: Optional[str] = None  # as passed (None: detected)
  config: Optional[BertConfig] = None


def checkpoint_folder(checkpoint: str) -> str:
  return checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint) or "."


def find_vocab(vocab: Optional[str], checkpoint: str) -> str:
  """The vocab given, else vocab.txt in the checkpoint's folder."""
  if vocab:
    return vocab
  candidate = os.path.join(checkpoint_folder(checkpoint), "vocab.txt")
  if os.path.isfile(candidate):
    return candidate
  raise BertHubError(
      "vocabulary needed", expected="--vocab, or vocab.txt beside the checkpoint",
      received=f"no vocab.txt in {checkpoint_folder(checkpoint)}",
      fix="pass --vocab PATH (the checkpoint's WordPiece vocab.txt)")


def vocab_source(*, vocab: Optional[str], checkpoint: Optional[str] = None,
                 lower_case: Optional[bool], report: Report) -> VocabSource:
  """The vocab and tokenizer settings of --vocab or of a checkpoint's folder."""
  if not vocab and not checkpoint:
    raise BertHubError(
        "vocabulary needed", expected="--vocab VOCAB or --checkpoint DIR",
        received="neither", fix="pass --checkpoint with the model's directory "
        "(its vocab.txt and tokenizer files are used), or --vocab")
  vocab_path = find_vocab(vocab, checkpoint) if checkpoint else vocab
  words = read_vocab(vocab_path)
  folder = checkpoint_folder(checkpoint) if checkpoint else None
  settings = tokenizer_settings.resolve(
      lower_case=lower_case, vocab=words,
      folders=tokenizer_settings.model_folders(folder, vocab_path), report=report)
  return VocabSource(vocab_path=vocab_path, vocab=words, tokenizer=settings,
                     folder=folder)


def model_source(*, checkpoint: str, vocab: Optional[str], config,
                 checkpoint_format: Optional[str], lower_case: Optional[bool],
                 report: Report) -> ModelSource:
  """Config, vocab and tokenizer settings of a checkpoint; the vocab must fit."""
  from bert_hub import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  if config is None:
    config = encoder_lib.find_config(checkpoint, checkpoint_format)
  if not isinstance(config, BertConfig):
    config = load_config(config)
  vocab_path = find_vocab(vocab, checkpoint)
  words = read_vocab(vocab_path)
  if words.size != config.vocab_size:
    raise BertHubError(
        "vocabulary does not fit the model",
        expected=f"{config.vocab_size} tokens (the embedding matrix's rows)",
        received=f"{words.size} tokens in {vocab_path}",
        fix="pass the vocab.txt that came with this checkpoint")
  folder = checkpoint_folder(checkpoint)
  settings = tokenizer_settings.resolve(
      lower_case=lower_case, vocab=words,
      folders=tokenizer_settings.model_folders(folder, vocab_path), report=report)
  return ModelSource(vocab_path=vocab_path, vocab=words, tokenizer=settings,
                     folder=folder, checkpoint=checkpoint,
                     checkpoint_format=checkpoint_format, config=config)


def check_seq_length(seq_length: int, *, max_positions: Optional[int] = None) -> None:
  high = max_positions if max_positions else None
  if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 3 or (
      high and seq_length > high):
    raise BertHubError(
        "bad --seq-length",
        expected=f"an integer from 3 ([CLS] x [SEP]) to {high or 'max_position_embeddings'}",
        received=repr(seq_length),
        fix=f"pass --seq-length between 3 and {high or 512}")


def text_seq_length(seq_length: Optional[int], *, max_positions: int,
                    model_max: Optional[int] = None, report=None) -> int:
  """The text servables' S: --seq-length, else what the model supports.

  The text servables compute on each request's own lengths
  (bert_hub/length_buckets.py), so a long S costs nothing on short requests:
  the default is the model's own limit, a sentence-transformers
  max_seq_length (model_max) if given, else max_position_embeddings.
  """
  if seq_length is None:
    seq_length = min(model_max, max_positions) if model_max else max_positions
    if report is not None:
      report("seq_length", f"{seq_length} (" + (
          "the model's max_seq_length" if model_max else "max_position_embeddings") + ")")
  check_seq_length(seq_length, max_positions=max_positions)
  return seq_length


def check_model_version(version) -> None:
  """A TF Serving model version directory: an integer >= 1."""
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise BertHubError(
        "bad --version", expected="a model version number, an integer >= 1",
        received=repr(version), fix="pass --version 1 (then 2, 3, ... for re-exports)")
