"""The text-classifier servable: a fine-tuned BERT classifier (or cross-encoder
reranker), text in, label names and scores out, in one request.

The SavedModel (export/classifier_object.py: its signatures, shapes and object
API) holds the preprocessing model (bert_hub/preprocessing, faithful to BERT's
FullTokenizer), the encoder's variables and the head's, and runs all three in
one graph: serving_default (sentences), pairs (sentences, second_sentences),
and classification (TF Serving's Classify API, tf.Examples in, label names and
scores out) or, for a regression head, regression (the Regress API). The head
is tf-models' `layers.ClassificationHead`, read strictly from the checkpoint
(bert_hub/checkpoints/heads.py): Hugging Face BertForSequenceClassification,
google-research run_classifier.py (TF1) or tf-models' BertClassifier (TF2).

The head function turns logits into the served numbers:
  softmax   single-label classification: probabilities sum to 1 per input.
  sigmoid   multi-label classification: one independent probability per label.
  identity  regression (one output, e.g. a cross-encoder reranker): the logit
            is the score. (transformers' text-classification pipeline applies a
            sigmoid to a one-output head without problem_type; this export
            serves the raw score, as the model's forward/loss treats it; the
            ranking order is the same.)

Label names: --labels, else the checkpoint's (HF config.json id2label), else
"score" for a regression head; TF1 and TF2 checkpoints store none, so a
classifier from them needs --labels. A count that differs from the head's
outputs is a one-line error, as is a checkpoint without a head.

Every op is registered by core TensorFlow or by TF Text 2.12.1 (the tests
check export/data/serving_ops_allowlist.txt).

  export_text_classifier(checkpoint=..., output_dir=..., labels=..., ...)
      -> pipeline.ExportResult
"""
import os
from typing import Optional, Sequence, Union

import numpy as np

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from bert_hub import encoder as encoder_lib
from bert_hub.checkpoints import heads
from bert_hub.errors import BertHubError
from export import classifier_object as co
from export import pipeline, publish, sources, warmup
from export.kinds.preprocessing import create_from_settings
from export.saved_model import FLOAT32_SIGNATURE, check_serving_precision
from export.verify import Check, output_check, signature_checks

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

DEFAULT_VERSION = 1
LABELS_FILE = "labels.txt"


# ---------------------------------------------------------------- labels


def check_labels(labels: Sequence[str], *, num_labels: int, what: str) -> tuple:
  """The label names for a head with `num_labels` outputs, or a BertHubError."""
  labels = tuple(labels)
  if len(labels) != num_labels:
    raise BertHubError(
        f"{what} do not match the classification head",
        expected=f"{num_labels} names (the head has {num_labels} output"
        f"{'s' if num_labels != 1 else ''})",
        received=f"{len(labels)}: {','.join(labels)}",
        fix=f"pass --labels with {num_labels} comma-separated names, in the "
        "order of the head's outputs")
  bad = [l for l in labels if not l.strip() or "\n" in l or "\r" in l]
  if bad or len(set(labels)) != len(labels):
    raise BertHubError(
        f"bad {what}", expected="distinct, non-empty, one-line names",
        received=",".join(labels) if not bad else f"{bad!r}",
        fix="pass --labels NAME_0,NAME_1,... with distinct names")
  return labels


def parse_labels(text: Optional[Union[str, Sequence[str]]]) -> Optional[tuple]:
  """--labels "A,B,C" (or a sequence of names) -> ("A", "B", "C"); None stays None."""
  if text is None:
    return None
  if isinstance(text, str):
    return tuple(part.strip() for part in text.split(","))
  return tuple(str(part) for part in text)


def resolve_labels(head: heads.ClassifierHead, labels: Optional[Sequence[str]]) -> tuple:
  """--labels, else the checkpoint's names, else (regression) "score"."""
  if labels is not None:
    return check_labels(labels, num_labels=head.num_labels, what="--labels")
  if head.labels is not None:
    return check_labels(head.labels, num_labels=head.num_labels,
                        what="the label names in config.json")
  if head.function == heads.IDENTITY:
    return ("score",)
  n = head.num_labels
  example = ",".join(f"NAME_{i}" for i in range(n)) if n <= 3 else f"NAME_0,...,NAME_{n - 1}"
  stored_by = {"tf1": "a TF1 run_classifier.py checkpoint"}.get(
      head.format, f"this {head.format} checkpoint")
  raise BertHubError(
      "label names needed", expected=f"--labels with {n} names ({stored_by} "
      "stores no label names)", received="no --labels",
      fix=f"pass --labels {example} in the order of the head's outputs (for "
      "run_classifier.py: its processor's get_labels())")


def check_head_function(head: heads.ClassifierHead) -> None:
  if head.function == heads.IDENTITY and head.num_labels != 1:
    raise BertHubError(
        "regression head with several outputs", expected="a regression head with "
        "one output (the score)", received=f"{head.num_labels} outputs "
        f"({head.function_reason})", fix="set problem_type in config.json to "
        "single_label_classification or multi_label_classification")
  if head.function == heads.SOFTMAX and head.num_labels < 2:
    raise BertHubError(
        "softmax over one output", expected="at least 2 labels for "
        "single-label classification", received="1 output",
        fix="set problem_type to regression in config.json")


def _strings(values) -> np.ndarray:
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def requests(function: str, seq_length: int, serving_precision: str = "float32") -> dict:
  """{signature: [feeds]}: warmup requests, also the verification cases.

  The warmup sentences (short, long, non-ASCII, empty) plus one longer than
  seq_length; the Example signature gets a batch mixing pairs and singles;
  a bfloat16 export's serving_float32 the requests of serving_default.
  """
  sentences = list(warmup.SENTENCES) + [" ".join(["hello world"] * seq_length)]
  second = list(warmup.SECOND_SENTENCES) + ["a short second segment"]
  mixed = [s if i % 2 else None for i, s in enumerate(second)]
  single = [{"sentences": _strings(sentences[:1])}, {"sentences": _strings(sentences)}]
  return {
      "serving_default": single,
      co.PAIRS_SIGNATURE: [{"sentences": _strings(sentences[:1]),
                            "second_sentences": _strings(second[:1])},
                           {"sentences": _strings(sentences),
                            "second_sentences": _strings(second)}],
      co.example_signature(function): [{"inputs": co.example_bytes(sentences[:1])},
                                       {"inputs": co.example_bytes(sentences, mixed)}],
      **({FLOAT32_SIGNATURE: single} if serving_precision == "bfloat16" else {}),
  }


# ---------------------------------------------------------------- the kind


class TextClassifierExport(pipeline.ExportKind):
  """The text-classifier servable of a fine-tuned checkpoint (module docstring)."""
  compared = ("every signature vs the in-memory preprocessing, Keras encoder and head "
              "called eagerly, on the warmup sentences and one longer than seq_length "
              "(tf.Examples: singles and pairs mixed), and the signatures' method "
              "names in saved_model.pb")

  def __init__(self, *, source: sources.ModelSource, head: heads.ClassifierHead,
               labels: tuple, seq_length: int, normalization: str, page: dict, clock,
               serving_precision: str = "float32"):
    self.source, self.head, self.labels = source, head, labels
    self.serving_precision = serving_precision
    self.seq_length, self.normalization, self.page = seq_length, normalization, page
    self.function = head.function
    self.noun = (f"{head.num_labels}-output {head.function} head: serving_default, "
                 f"pairs, {co.example_signature(head.function)}")
    clock("reading", f"{source.checkpoint} ({source.config.describe()})")
    if head.encoder is not None:  # TF2: read together with the head
      self.model = encoder_lib.build_encoder(source.config, random_init=False)
      encoder_lib.assign_weights(self.model, head.encoder)
    else:
      self.model = encoder_lib.load_encoder(source.checkpoint, source.config,
                                            checkpoint_format=source.checkpoint_format)
    if not head.inner_dim and not self.model.source.has_pooler:
      raise BertHubError(
          "classifier without a pooler", expected="the pooler weights the head "
          "reads (pooled_output)", received=f"no pooler in {source.checkpoint}",
          fix="pass the complete fine-tuned checkpoint")
    self.weights_source = self.model.source
    self.source_files = self.model.source.files
    self.head_layer = co.build_head(source.config, head)
    clock("building", f"preprocessing for {source.vocab_path} "
          f"({source.tokenizer.describe()}, seq_length={seq_length}, "
          f"normalization={normalization})")
    self.preprocessor = create_from_settings(
        vocab_file=source.vocab_path, tokenizer=source.tokenizer,
        seq_length=seq_length, normalization=normalization)
    self.obj = None  # the object built, for reference()
    self.stage = None  # the staging directory, for checks()

  def build(self, stage, clock):
    labels_copy = os.path.join(stage, LABELS_FILE)  # the Asset's source
    with open(labels_copy, "w", encoding="utf-8") as f:
      f.write("".join(f"{label}\n" for label in self.labels))
    obj, signatures = co.classifier_object(
        self.model, self.head_layer, self.preprocessor, seq_length=self.seq_length,
        labels=self.labels, function=self.function, labels_file=labels_copy,
        serving_precision=self.serving_precision)
    self.obj = obj
    return pipeline.Built(obj=obj, signatures=signatures, temporary_files=[labels_copy])

  def after_save(self, stage):
    co.set_example_method_names(stage, {co.example_signature(self.function):
                                        co.example_method(self.function)})
    self.stage = stage

  def reference(self):
    """Every request's outputs from the in-memory Keras model and head, eagerly.

    Not through the traced signatures: packing, encoder and head are called
    one by one, and the Example signature's rows are picked from the single or
    pair results by what each tf.Example holds (parsed here in Python).
    """
    from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top

    def outputs(inputs):
      out = self.model(inputs, training=False)
      features = out["sequence_output" if self.head.inner_dim else "pooled_output"]
      return {k: v.numpy() for k, v in co.head_outputs(
          self.head_layer(features), function=self.function, labels=self.labels).items()}

    def classify(sentences, second=None):
      tokens = [self.preprocessor.tokenize(tf.constant(sentences))]
      if second is not None:
        tokens.append(self.preprocessor.tokenize(tf.constant(second)))
      return outputs(preprocessing.pack_inputs(tokens, self.seq_length,
                                               self.preprocessor.special_tokens))

    out = {}
    for name, batch in self.warmup_requests().items():
      out[name] = []
      for feeds in batch:
        if name in ("serving_default", FLOAT32_SIGNATURE):
          out[name].append(classify(feeds["sentences"]))
          continue
        if name == co.PAIRS_SIGNATURE:
          out[name].append(classify(feeds["sentences"], feeds["second_sentences"]))
          continue
        examples = [tf.train.Example.FromString(e).features.feature
                    for e in feeds["inputs"]]
        first = [f["sentences"].bytes_list.value[0] for f in examples]
        second = [f["second_sentences"].bytes_list.value[0]
                  if "second_sentences" in f else b"" for f in examples]
        is_pair = np.array(["second_sentences" in f for f in examples])
        single, pair = classify(first), classify(first, second)
        rows = {k: np.where(is_pair.reshape((-1,) + (1,) * (v.ndim - 1)), pair[k], v)
                for k, v in single.items()}
        if self.function == heads.IDENTITY:
          out[name].append({"outputs": rows["score"]})
        else:
          out[name].append({"scores": rows["probabilities"], "classes": np.array(
              [[l.encode("utf-8") for l in self.labels]] * len(examples), dtype=object)})
    return out

  def release(self):
    del self.model, self.head_layer, self.obj

  def checks(self, loaded, reference):
    bfloat16 = self.serving_precision == "bfloat16"

    def check(signature, key, got, want, name):
      # A bfloat16 export's `label`, an argmax that may flip on a near tie, is
      # not compared: its probabilities are.
      in_bfloat16 = bfloat16 and signature != FLOAT32_SIGNATURE
      if key == "label" and in_bfloat16:
        return None
      return output_check(name, got, want, bfloat16=in_bfloat16)
    checks = signature_checks(loaded, self.warmup_requests(), reference, check)
    got_labels = loaded.get_labels().numpy()
    checks.append(Check("get_labels", got_labels, np.array(
        [l.encode("utf-8") for l in self.labels], dtype=object), measure="exact"))
    methods = co.signature_method_names(self.stage)
    want_methods = {"serving_default": co.PREDICT_METHOD,
                    co.PAIRS_SIGNATURE: co.PREDICT_METHOD,
                    co.example_signature(self.function): co.example_method(self.function),
                    **({FLOAT32_SIGNATURE: co.PREDICT_METHOD} if bfloat16 else {})}
    checks.append(Check("signature method names", np.array(sorted(methods.items())),
                        np.array(sorted(want_methods.items())), measure="exact"))
    return checks

  def warmup_requests(self):
    return requests(self.function, self.seq_length, self.serving_precision)

  def files(self, *, model_path, verification, digests):
    from export.pages import text_classifier_page  # pylint: disable=g-import-not-at-top
    return text_classifier_page.files(
        config=self.source.config, head=self.head, labels=self.labels,
        seq_length=self.seq_length, tokenizer=self.source.tokenizer,
        normalization=self.normalization, source=self.weights_source,
        verification=verification.to_dict(), model_path=model_path,
        serving_precision=self.serving_precision, digests=digests, **self.page)


def export_text_classifier(*, checkpoint: str, output_dir: str,
                           labels: Optional[Union[str, Sequence[str]]] = None,
                           vocab: Optional[str] = None, config=None,
                           seq_length: Optional[int] = None,
                           version: int = DEFAULT_VERSION,
                           lower_case: Optional[bool] = None,
                           normalization: str = "faithful",
                           checkpoint_format: Optional[str] = None,
                           overwrite: bool = False, model_name: Optional[str] = None,
                           serving_precision: str = "float32",
                           report: pipeline.Report = pipeline.print_report
                           ) -> pipeline.ExportResult:
  """Exports a fine-tuned classifier / reranker as a SavedModel at DIR/<version>/.

  Args:
    checkpoint: a Hugging Face BertForSequenceClassification directory (or its
      model.safetensors), or a TF1 run_classifier.py checkpoint prefix.
    output_dir: DIR; the export becomes DIR/<version>/.
    labels: the label names in the head's output order, "A,B,C" or a
      sequence; overrides config.json's id2label; required for TF1.
    vocab: the checkpoint's WordPiece vocab.txt (default: beside it).
    config: a config path or BertConfig (default: the config beside it).
    seq_length: S, from 3 to max_position_embeddings (default:
      max_position_embeddings; requests compute on their own lengths).
    version: the model version directory, an integer >= 1 (default 1).
    lower_case: the tokenizer's do_lower_case (default: from the model's files
      or its vocab, bert_hub/tokenizer_settings.py).
    normalization: "faithful" (FullTokenizer's ids) or "tf_text".
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    overwrite: replace an existing DIR/<version>.
    model_name: the name in the model page's title (default: DIR's name).
    serving_precision: "bfloat16": the encoder computes in bfloat16 in every
      signature (float32 head and outputs; faster on CPUs with AVX512-BF16 or
      AMX) but `serving_float32`, serving_default in float32; the object API
      stays float32.
    report: called with (stage, detail) as the export goes.

  Returns:
    pipeline.ExportResult (path DIR/<version>, seconds, largest difference).
  """
  clock = pipeline.Clock(report)
  sources.check_model_version(version)
  check_serving_precision(serving_precision)
  source = sources.model_source(checkpoint=checkpoint, vocab=vocab, config=config,
                                checkpoint_format=checkpoint_format,
                                lower_case=lower_case, report=clock)
  seq_length = sources.text_seq_length(
      seq_length, max_positions=source.config.max_position_embeddings, report=clock)
  publish.check_target(output_dir, version, overwrite=overwrite)
  head = heads.read_classifier_head(checkpoint, source.config,
                                    checkpoint_format=checkpoint_format)
  check_head_function(head)
  names_ = resolve_labels(head, parse_labels(labels))
  kind = TextClassifierExport(
      source=source, head=head, labels=names_, seq_length=seq_length,
      normalization=normalization, clock=clock, serving_precision=serving_precision,
      page=dict(model_name=model_name or warmup.model_name(output_dir)))
  return pipeline.run(kind, output_dir=output_dir, version=version,
                      overwrite=overwrite, clock=clock)
