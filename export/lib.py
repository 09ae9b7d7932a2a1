"""The export library: what `bert-hub-export` does, callable and tested.

  export_encoder(checkpoint=..., output_dir=..., ...)        -> ExportResult
  export_preprocessing(vocab=..., output_dir=..., ...)       -> ExportResult
  export_text_embedding(checkpoint=..., output_dir=..., ...) -> ExportResult
      (export/text_embedding.py: sentences in, embeddings out, one request)

Every export also writes `assets.extra/tf_serving_warmup_requests` (export/warmup.py)
into the staging directory, so TF Serving warms the version up before serving it.

Each writes `output_dir/<version>/` through `publish.staged` (complete or absent,
never overwritten unless asked), reloads what it wrote and checks it against
the in-memory model before it is renamed into place, and reports its stages
(reading, building, tracing, writing, verifying) through `report`.

The encoder's path from checkpoint to SavedModel:
  checkpoints.read_weights (tf1 | tf2 | hf -> canonical arrays, strict)
  -> encoder.build_encoder + assign_weights (tf-models BertEncoderV2, tf_keras)
  -> saved_model.encoder_object (the version's API: versions.py)
  -> tf.saved_model.save into DIR/.<v>.partial-* -> verify -> rename to DIR/<v>
"""
import concurrent.futures
import dataclasses
import functools
import gc
import json
import os
import time
from typing import Callable, Optional

from bert_hub import _keras  # noqa: F401
from bert_hub.errors import BertHubError, ExportVerificationError
from export import publish, versions

Report = Callable[[str, str], None]


def print_report(stage: str, detail: str) -> None:
  print(f"[{stage}] {detail}", flush=True)


def quiet_report(stage: str, detail: str) -> None:
  del stage, detail


@dataclasses.dataclass
class ExportResult:
  path: str  # DIR/<version>
  version: int
  seconds: float
  max_diff: Optional[float] = None  # largest |reloaded - in-memory| in verification


class _Clock:
  def __init__(self, report: Report):
    self.start = time.perf_counter()
    self.report = report

  def __call__(self, stage, detail):
    self.report(stage, f"{detail} ({time.perf_counter() - self.start:.1f}s)")

  def elapsed(self):
    return time.perf_counter() - self.start


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


def resolve_lower_case(lower_case: Optional[bool], *, vocab: str,
                       checkpoint: Optional[str], report: Report) -> bool:
  """The flag given, else Hugging Face's tokenizer_config.json, else a guess.

  The guess follows tf-models' export_tfhub: lower-case iff the vocab path says
  "uncased". Every guess is reported, never silent.
  """
  if lower_case is not None:
    return lower_case
  if checkpoint:
    tokenizer_config = os.path.join(checkpoint_folder(checkpoint), "tokenizer_config.json")
    if os.path.isfile(tokenizer_config):
      try:
        with open(tokenizer_config, encoding="utf-8") as f:
          settings = json.load(f)
      except (ValueError, OSError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise BertHubError(
            "unreadable tokenizer_config.json", expected="a UTF-8 JSON object",
            received=f"{tokenizer_config}: {str(e).splitlines()[0][:200]}",
            fix="repair or remove it, or pass --lower-case / --no-lower-case") from None
      value = settings.get("do_lower_case") if isinstance(settings, dict) else None
      if isinstance(value, bool):
        report("lower-case", f"do_lower_case={value} from {tokenizer_config}")
        return value
  guess = "uncased" in vocab
  report("lower-case", f"guessed do_lower_case={guess} from the vocab path {vocab!r} "
         f"({'contains' if guess else 'does not contain'} 'uncased'); pass "
         "--lower-case or --no-lower-case to be explicit")
  return guess


def resolve_config_and_vocab(*, checkpoint: str, vocab: Optional[str], config,
                             checkpoint_format: Optional[str]):
  """(BertConfig, vocab path, Vocab) for a checkpoint; the vocab must fit the model.

  `config` and `vocab` default to the files beside the checkpoint.
  """
  from bert_hub import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  from bert_hub import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  from bert_hub.config import BertConfig, load_config  # pylint: disable=g-import-not-at-top
  if config is None:
    config = encoder_lib.find_config(checkpoint, checkpoint_format)
  if not isinstance(config, BertConfig):
    config = load_config(config)
  vocab_path = find_vocab(vocab, checkpoint)
  words = vocab_lib.read_vocab(vocab_path)
  if words.size != config.vocab_size:
    raise BertHubError(
        "vocabulary does not fit the model",
        expected=f"{config.vocab_size} tokens (the embedding matrix's rows)",
        received=f"{words.size} tokens in {vocab_path}",
        fix="pass the vocab.txt that came with this checkpoint")
  return config, vocab_path, words


def check_seq_length(seq_length: int, *, max_positions: Optional[int] = None) -> None:
  high = max_positions if max_positions else None
  if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 3 or (
      high and seq_length > high):
    raise BertHubError(
        "bad --seq-length",
        expected=f"an integer from 3 ([CLS] x [SEP]) to {high or 'max_position_embeddings'}",
        received=repr(seq_length),
        fix=f"pass --seq-length between 3 and {high or 512}")


def _gc_frozen(function):
  """Runs `function` with the objects that exist before it frozen for the gc.

  The export's one explicit gc.collect() (to free the model before reloading)
  and Python's automatic collections then scan only the objects the export
  makes, not TensorFlow's and Keras' 350,000: 0.25 s less per collection.
  Nothing is leaked: gc.unfreeze() gives them back to the collector. A caller
  that froze objects itself is left alone.
  """
  @functools.wraps(function)
  def wrapper(*args, **kwargs):
    if gc.get_freeze_count():
      return function(*args, **kwargs)
    gc.freeze()
    try:
      return function(*args, **kwargs)
    finally:
      gc.unfreeze()
  return wrapper


@_gc_frozen
def export_encoder(*, checkpoint: str, output_dir: str, vocab: Optional[str] = None,
                   config=None, version: int = versions.LATEST, with_mlm: bool = False,
                   lower_case: Optional[bool] = None,
                   checkpoint_format: Optional[str] = None, overwrite: bool = False,
                   publisher: str = "bert-hub", name: Optional[str] = None,
                   language: str = "en", dataset: Optional[str] = None,
                   whole_word_masking: Optional[bool] = None,
                   serving_precision: str = "float32",
                   report: Report = print_report) -> ExportResult:
  """Exports a BERT checkpoint as an encoder SavedModel at DIR/<version>/.

  Beside the SavedModel, DIR/<version>/ gets its model page README.md and
  bert_hub.json (export/model_page.py), written after verification.

  Args:
    checkpoint: a TF1 or TF2 checkpoint prefix, or a Hugging Face model
      directory or .safetensors file.
    output_dir: DIR; the export becomes DIR/<version>/.
    vocab: the WordPiece vocab.txt (default: vocab.txt beside the checkpoint).
    config: a config path or BertConfig (default: the config beside the checkpoint).
    version: the interface version, 1, 2 or 3 (see versions.py).
    with_mlm: also export the `mlm` subobject (version 3 only).
    lower_case: the tokenizer's do_lower_case (default: see resolve_lower_case).
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    overwrite: replace an existing DIR/<version>.
    publisher, name: the page's handle <publisher>/<name>/<version> (name
      default: model_page.tfhub_name, e.g. bert_en_uncased_L-12_H-768_A-12).
    language, dataset, whole_word_masking: facts the checkpoint cannot tell,
      stated on the page; dataset and whole_word_masking None = not stated.
    serving_precision: "bfloat16" makes `serving_default` compute in bfloat16
      (float32 outputs; about 1.7x the float32 speed at batch 32 and 1.3x at
      batch 1 on this repo's AVX512-BF16 CPU, see benchmarks/README.md) and
      keeps float32 as `serving_float32`; `__call__` stays float32.
    report: called with (stage, detail) as the export goes.
  """
  from bert_hub import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  from export import model_page, saved_model  # pylint: disable=g-import-not-at-top

  clock = _Clock(report)
  spec = versions.get(version)
  saved_model.check_encoder_options(version=spec, with_mlm=with_mlm,
                                    serving_precision=serving_precision)
  model_page.check_facts(publisher=publisher, name=name, language=language,
                         dataset=dataset)
  publish.check_target(output_dir, version, overwrite=overwrite)
  config, vocab_path, words = resolve_config_and_vocab(
      checkpoint=checkpoint, vocab=vocab, config=config,
      checkpoint_format=checkpoint_format)
  lower = resolve_lower_case(lower_case, vocab=vocab_path, checkpoint=checkpoint,
                             report=clock)

  clock("reading", f"{checkpoint} ({config.describe()})")
  weights = encoder_lib.read_weights(checkpoint, config,
                                     checkpoint_format=checkpoint_format,
                                     with_mlm=with_mlm)
  clock("building", f"tf-models BertEncoderV2 from {weights.format} weights")
  model = encoder_lib.build_encoder(config, with_mlm=with_mlm, random_init=False)
  encoder_lib.assign_weights(model, weights)
  source = dataclasses.replace(weights, arrays={})  # for the metadata file
  del weights
  # The model page's checksums of the checkpoint (BERT-base: 0.4 GB, about
  # 0.3 s) are computed meanwhile, in a thread: hashlib releases the GIL.
  hashing = concurrent.futures.ThreadPoolExecutor(1)
  digests = hashing.submit(model_page.file_digests, source.files)
  hashing.shutdown(wait=False)  # the thread ends with its one task
  if name is None:
    name = model_page.tfhub_name(config, language=language, cased=not lower,
                                 whole_word_masking=whole_word_masking)

  with publish.staged(output_dir, version, overwrite=overwrite) as stage:
    os.makedirs(stage)
    normalized_vocab = os.path.join(stage, "vocab.txt")
    words.write_normalized(normalized_vocab)
    clock("tracing", f"version {version} interface")
    obj = saved_model.encoder_object(model, version=spec, vocab_file=normalized_vocab,
                                     do_lower_case=lower,
                                     serving_precision=serving_precision)
    clock("writing", stage)
    saved_model.save(obj, stage)
    os.remove(normalized_vocab)  # the SavedModel has its copy in assets/
    clock("verifying", "reloading and comparing with the in-memory model")
    expected = saved_model.expected_outputs(model)
    del obj, model  # not held twice while the export is reloaded
    gc.collect()  # Keras layers hold reference cycles
    max_diff = saved_model.verify_encoder(stage, version=spec, expected=expected,
                                          serving_precision=serving_precision)
    from export import warmup  # pylint: disable=g-import-not-at-top
    warmup.write(stage, warmup.encoder_requests(config, spec), output_dir=output_dir,
                 report=clock)
    clock("model page", f"{publisher}/{name}/{version}: {model_page.PAGE_FILE}, "
          f"{model_page.METADATA_FILE} (checksumming the checkpoint)")
    model_page.write(
        stage, config=config, version=version, lower_case=lower, publisher=publisher,
        name=name, language=language, dataset=dataset,
        whole_word_masking=whole_word_masking, source=source, digests=digests.result(),
        model_path=publish.version_dir(output_dir, version),
        verification=dict(passed=True, max_diff=max_diff,
                          tolerance=saved_model.VERIFY_TOLERANCE,
                          compared="reloaded __call__ and serving_default vs the "
                          "in-memory model on a padded two-segment batch"))
  clock("done", f"{publish.version_dir(output_dir, version)}: largest difference "
        f"after reload {max_diff:.2g} (tolerance {saved_model.VERIFY_TOLERANCE:g})")
  return ExportResult(path=publish.version_dir(output_dir, version), version=version,
                      seconds=clock.elapsed(), max_diff=max_diff)


def export_preprocessing(*, vocab: str, output_dir: str, version: int = versions.LATEST,
                         seq_length: int = 128, lower_case: Optional[bool] = None,
                         tokenize_with_offsets: bool = False,
                         normalization: str = "faithful", overwrite: bool = False,
                         report: Report = print_report) -> ExportResult:
  """Exports the preprocessing SavedModel for `vocab` at DIR/<version>/.

  See bert_hub/preprocessing.py for its API (root call, tokenize,
  tokenize_with_offsets, bert_pack_inputs) and its faithful tokenization.
  """
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  clock = _Clock(report)
  versions.get(version)
  check_seq_length(seq_length)
  publish.check_target(output_dir, version, overwrite=overwrite)
  lower = resolve_lower_case(lower_case, vocab=vocab, checkpoint=None, report=clock)
  clock("building", f"preprocessing for {vocab} (lower_case={lower}, "
        f"seq_length={seq_length}, normalization={normalization})")
  obj = preprocessing.create_preprocessing(
      vocab_file=vocab, lower_case=lower, default_seq_length=seq_length,
      tokenize_with_offsets=tokenize_with_offsets, normalization=normalization)
  sample = tf.constant(["Hello, world!", "BERT exports", ""])
  want = obj(sample)
  with publish.staged(output_dir, version, overwrite=overwrite) as stage:
    clock("writing", stage)
    tf.saved_model.save(obj, stage, signatures=preprocessing.preprocessing_signatures(obj))
    clock("verifying", "reloading and comparing ids")
    got = tf.saved_model.load(stage)(sample)
    for key in want:
      if not (got[key].numpy() == want[key].numpy()).all():
        raise ExportVerificationError(
            f"export verification failed: {key} differs after reload")
    from export import warmup  # pylint: disable=g-import-not-at-top
    warmup.write(stage, warmup.preprocessing_requests(), output_dir=output_dir,
                 report=clock)
  clock("done", f"{publish.version_dir(output_dir, version)}: ids identical after reload")
  return ExportResult(path=publish.version_dir(output_dir, version), version=version,
                      seconds=clock.elapsed(), max_diff=0.0)


def export_text_embedding(**kwargs) -> ExportResult:
  """Exports a checkpoint as a text-embedding SavedModel (sentences -> embeddings).

  Keyword arguments and behaviour: export/text_embedding.py::export_text_embedding.
  """
  from export import text_embedding  # pylint: disable=g-import-not-at-top
  return text_embedding.export_text_embedding(**kwargs)
