"""Sequence-classification heads of fine-tuned checkpoints, read strictly.

    read_classifier_head(checkpoint, config, *, checkpoint_format=None) -> ClassifierHead

The encoder of such a checkpoint is read by `checkpoints.read_weights` (the
Hugging Face reader takes the weights under `bert.`, the TF1 reader those under
`bert/`); this module reads what lies beside it:

  hf_h5 transformers 4.x `TFBertForSequenceClassification` (tf_model.h5, read
       with h5py): `classifier/kernel:0` [H, N], `classifier/bias:0` [N]; labels
       and function from config.json as for hf.
  hf   transformers `BertForSequenceClassification` (model.safetensors):
       `classifier.weight` [N, H], `classifier.bias` [N] over the pooled output;
       label names from config.json `id2label`; the head function from
       `problem_type` (see HF_FUNCTIONS and `hf_head_function`).
  tf1  google-research `run_classifier.py`: `output_weights` [N, H],
       `output_bias` [N] over the pooled output, softmax; no label names.
  tf2  TF Model Garden `BertClassifier` (tf.train.Checkpoint(model=...)):
       read through tf-models' own classes, encoder and head together
       (`_read_tf2`); head ClassificationHead: out_proj over the pooled output,
       or (use_encoder_pooler=False, tf-models' default) dense + tanh over the
       [CLS] token then out_proj; softmax, or the score for one output; no
       label names.

Strict like the encoder readers: a missing, unused or mis-shaped head weight is
listed together in one CheckpointMismatchError; a checkpoint with no head at
all gets its own one-line BertHubError; non-finite values are refused.
Head names live in names.py (CLASSIFIER_HEAD), canonical layout: tf-models
`layers.ClassificationHead` out_proj, kernel [H, N], bias [N].
"""
import dataclasses
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np

from bert_hub.checkpoints import Weights, names, resolve
from bert_hub.checkpoints.common import (check_finite, open_tf_checkpoint,
                                         read_tf_tensor, unreadable_safetensors)
from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError, CheckpointMismatchError

# The head functions: what turns logits [B, N] into the served numbers.
SOFTMAX, SIGMOID, IDENTITY = "softmax", "sigmoid", "identity"
HEAD_FUNCTIONS = (SOFTMAX, SIGMOID, IDENTITY)
# Hugging Face config.json problem_type -> head function.
HF_FUNCTIONS = {"single_label_classification": SOFTMAX,
                "multi_label_classification": SIGMOID,
                "regression": IDENTITY}


@dataclasses.dataclass
class ClassifierHead:
  """A classification head in canonical names, and what it came with.

  arrays:    canonical name (names.CLASSIFIER_HEAD) -> float32 array:
             "classification_head/logits" kernel [H, N], bias [N].
  num_labels: N.
  labels:    the label names the checkpoint's files give (HF id2label, in id
             order), or None (TF1: none).
  function:  softmax | sigmoid | identity (regression: the logit is the score).
  inner_dim: 0, or H for a TF2 BertClassifier(use_encoder_pooler=False) head:
             tanh(sequence_output[:, 0] @ dense kernel + bias) is its input
             (arrays then also hold TF2_DENSE) instead of the pooled output.
  encoder:   TF2 only: the encoder's Weights, read through the same
             BertClassifier (the encoder reader knows no classifier roots).
  function_reason: how `function` was decided, in words (for the model page).
  format, source, files: as checkpoints.Weights.
  """
  arrays: Dict[str, np.ndarray]
  num_labels: int
  labels: Optional[Tuple[str, ...]]
  function: str
  function_reason: str
  format: str
  source: str
  files: tuple
  inner_dim: int = 0  # H: dense + tanh over the [CLS] token first (TF2, TF2_DENSE)
  encoder: Optional[Weights] = None  # TF2: the encoder, read with the head


class HeadMismatchError(CheckpointMismatchError):
  """The head's weights do not fit; lists every problem at once (like the encoder's)."""

  def __init__(self, source: str, *, missing=(), unused=(), mismatched=(),
               expected: str, fix: str):
    super().__init__(source, missing=missing, unused=unused, mismatched=mismatched,
                     fix=fix)
    parts = self.received
    BertHubError.__init__(self, f"classification head of {source} does not fit",
                          expected=expected, received=parts, fix=fix)


def _no_head(path, *, fmt, found):
  want = {"hf": "classifier.weight [N, H] and classifier.bias [N] beside the "
                "bert.* encoder (transformers BertForSequenceClassification)",
          "tf1": "output_weights [N, H] and output_bias [N] beside the bert/* "
                 "encoder (google-research run_classifier.py)",
          "hf_h5": "classifier/kernel:0 [H, N] and classifier/bias:0 [N] beside the "
                   "bert/* encoder (transformers 4.x TFBertForSequenceClassification)"}[fmt]
  shown = sorted(found)[:6]
  others = (f"the encoder and {len(found)} other weights ({', '.join(shown)}"
            f"{', ...' if len(found) > len(shown) else ''}), none a classification "
            "head" if found else "the encoder alone")
  return BertHubError(
      f"no classification head in {path}", expected=want, received=others,
      fix="pass the checkpoint saved after fine-tuning, or export the bare encoder "
      "with `bert-hub-export encoder` / `text-embedding`")


def _match_head(source: Dict[str, np.ndarray], *, fmt: str, hidden: int, path: str,
                head_keys) -> Dict[str, np.ndarray]:
  """Maps the head's source arrays to canonical names, strictly."""
  col = fmt if fmt in ("tf1", "hf_h5") else "hf"
  kernel_w, bias_w = names.CLASSIFIER_HEAD
  kernel_key, bias_key = (names.head_source_name(w, col) for w in (kernel_w, bias_w))
  if kernel_key not in source and bias_key not in source:
    raise _no_head(path, fmt=fmt, found=head_keys)
  num_labels = (source[kernel_key].shape[1 if col == "hf_h5" else 0]  # h5: [H, N]
                if kernel_key in source and
                source[kernel_key].ndim == 2 else
                source[bias_key].shape[0] if bias_key in source and
                source[bias_key].ndim == 1 else 0)
  out, missing, mismatched = {}, [], []
  for w in names.CLASSIFIER_HEAD:
    key = names.head_source_name(w, col)
    if key not in source:
      missing.append(key)
      continue
    want = names.head_source_shape(w, hidden, num_labels, col)
    if tuple(source[key].shape) != want:
      mismatched.append((key, want, tuple(source[key].shape)))
      continue
    out[w.canonical] = names.head_to_canonical(source[key], w, col)
  unused = sorted(set(head_keys) - {kernel_key, bias_key})
  if missing or unused or mismatched or not num_labels:
    raise HeadMismatchError(
        path, missing=missing, unused=unused, mismatched=mismatched,
        expected=f"the classification head {kernel_key} [N, H={hidden}] and "
        f"{bias_key} [N], and no other weights beside the encoder",
        fix=f"pass the fine-tuned checkpoint as saved (its head is exactly "
        f"{kernel_key} and {bias_key})")
  check_finite(out, path)
  return out


def hf_head_function(problem_type: Optional[str], num_labels: int) -> Tuple[str, str]:
  """(function, reason) of a Hugging Face head, as transformers decides.

  transformers 5 `BertForSequenceClassification.forward` picks its loss from
  `config.problem_type`; when that is absent it takes num_labels == 1 as
  regression (MSELoss) and num_labels > 1 with integer labels as single-label
  classification (CrossEntropyLoss), the Trainer's usual case. Inference does
  the same: absent + N == 1 -> the score (identity), absent + N > 1 -> softmax
  (also what the text-classification pipeline applies for N > 1).
  """
  if problem_type is not None:
    if problem_type not in HF_FUNCTIONS:
      raise BertHubError(
          "unknown problem_type in config.json", expected=" or ".join(HF_FUNCTIONS),
          received=repr(problem_type), fix="set problem_type to one of those")
    return HF_FUNCTIONS[problem_type], f"config.json problem_type={problem_type}"
  if num_labels == 1:
    return IDENTITY, "one output and no problem_type in config.json: regression"
  return SOFTMAX, ("no problem_type in config.json and num_labels > 1: "
                   "single-label classification")


def _hf_config(path: str) -> dict:
  config_path = os.path.join(os.path.dirname(path), "config.json")
  if not os.path.isfile(config_path):
    return {}
  with open(config_path, encoding="utf-8") as f:
    return json.load(f)


def _read_hf(path: str, config: BertConfig):
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  prefix = names.HF_CLASSIFIER_ENCODER_PREFIX
  try:
    with safe_open(path, framework="np") as f:
      keys = list(f.keys())
      head_keys = [k for k in keys if not k.startswith(prefix)]
      if not any(k.startswith(prefix) for k in keys):  # a bare BertModel
        raise _no_head(path, fmt="hf", found=[])
      source = {k: f.get_tensor(k) for k in head_keys}
  except BertHubError:
    raise
  except Exception as e:  # safetensors raises its own error types, and OSError
    raise unreadable_safetensors(path, e) from None
  arrays = _match_head(source, fmt="hf", hidden=config.hidden_size, path=path,
                       head_keys=head_keys)
  return (arrays,) + _hf_labels_and_function(path, arrays)


def _read_h5(path: str, config: BertConfig):
  """transformers 4.x TFBertForSequenceClassification's tf_model.h5 (h5py, as data)."""
  import h5py  # pylint: disable=g-import-not-at-top
  from bert_hub.checkpoints import h5  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, "r") as f:
      found = h5.datasets(f)
      head_keys = [k for k in found if not k.startswith(names.HF_H5_ENCODER_PREFIX)]
      source = {k: np.asarray(found[k]) for k in head_keys}
  except Exception as e:  # h5py raises OSError, KeyError, ValueError
    raise h5.open_error(path, e) from None
  arrays = _match_head(source, fmt="hf_h5", hidden=config.hidden_size, path=path,
                       head_keys=head_keys)
  return (arrays,) + _hf_labels_and_function(path, arrays)


def _hf_labels_and_function(path: str, arrays):
  """(labels, function, reason) from the config.json beside a Hugging Face head."""
  num_labels = arrays[names.CLASSIFIER_HEAD[1].canonical].shape[0]
  hf = _hf_config(path)
  labels = None
  id2label = hf.get("id2label")
  if id2label:
    try:
      labels = tuple(str(id2label[str(i)] if str(i) in id2label else id2label[i])
                     for i in range(len(id2label)))
    except KeyError:
      raise BertHubError(
          "bad id2label in config.json", expected="ids 0 to N-1",
          received=f"ids {sorted(id2label)}", fix="number the labels 0 to N-1 "
          "in config.json, or pass --labels") from None
    if len(labels) != num_labels:
      raise BertHubError(
          "config.json disagrees with the classification head",
          expected=f"{num_labels} labels in id2label (classifier.weight has "
          f"{num_labels} rows)", received=f"{len(labels)}: {', '.join(labels)}",
          fix="pass the config.json saved with this checkpoint, or --labels with "
          f"{num_labels} names")
  function, reason = hf_head_function(hf.get("problem_type"), num_labels)
  return labels, function, reason


def _read_tf1(prefix: str, config: BertConfig):
  reader = open_tf_checkpoint(prefix)
  head_keys = [k for k in reader.get_variable_to_shape_map()
               if k not in names.TF1_IGNORED and not k.endswith(names.TF1_IGNORED_SUFFIXES)
               and not k.startswith(names.TF1_ENCODER_PREFIX)]
  source = {k: read_tf_tensor(reader, k, prefix) for k in head_keys}
  arrays = _match_head(source, fmt="tf1", hidden=config.hidden_size, path=prefix,
                       head_keys=head_keys)
  num_labels = arrays[names.CLASSIFIER_HEAD[1].canonical].shape[0]
  if num_labels == 1:
    return arrays, None, IDENTITY, "one output: regression (the logit is the score)"
  return arrays, None, SOFTMAX, "run_classifier.py: softmax over the logits"


# TF2: tf-models layers.ClassificationHead's inner dense (name "pooler_dense").
TF2_DENSE = (f"{names.CLASSIFIER_HEAD_SCOPE}/pooler_dense/kernel",
             f"{names.CLASSIFIER_HEAD_SCOPE}/pooler_dense/bias")
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def _read_tf2(prefix: str, config: BertConfig):
  """A TF Model Garden BertClassifier checkpoint, read through tf-models' classes.

  What tf-models' trainer saves for sentence_prediction:
  tf.train.Checkpoint(model=BertClassifier(network=BertEncoderV2, ...)), keys
  model/layer_with_weights-0/... (the encoder) and model/layer_with_weights-1/
  {dense,out_proj}/... (ClassificationHead; dense only with
  use_encoder_pooler=False, tf-models' default). As bert_hub/checkpoints/tf2.py
  does for encoders, the same BertClassifier is built without values, TensorFlow
  names each variable's key, and every key and shape is compared before
  anything is read.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
  from bert_hub._tf_private import (checkpoint_keys, uninitialized_variables,  # pylint: disable=g-import-not-at-top
                                    without_autograph)
  from bert_hub.encoder import build_network  # pylint: disable=g-import-not-at-top

  reader = open_tf_checkpoint(prefix)
  shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()
            if k.endswith(_VALUE) and ".OPTIMIZER_SLOT" not in k}
  ours = [k for k in shapes if k.startswith("model/")]
  out_proj = [k for k in ours if k.endswith("/out_proj/kernel" + _VALUE)]
  if not out_proj:
    roots = sorted({k.split("/")[0] for k in shapes} - {"save_counter"})
    raise BertHubError(
        f"no classification head in {prefix}",
        expected="a TF Model Garden BertClassifier saved as tf.train.Checkpoint("
        "model=classifier) (model/.../out_proj/kernel)",
        received=f"roots {', '.join(roots)}" + (
            " (an encoder checkpoint)" if roots == ["encoder"] else ""),
        fix="pass the checkpoint tf-models' trainer wrote after fine-tuning, or "
        "export the bare encoder with `bert-hub-export encoder` / `text-embedding`")
  num_labels = shapes[out_proj[0]][-1]
  head_path = out_proj[0][:-len("/out_proj/kernel" + _VALUE)]
  pooler = head_path + "/dense/kernel" + _VALUE not in shapes
  with uninitialized_variables(), without_autograph():
    network = build_network(config)
    classifier = models.BertClassifier(network=network, num_classes=num_labels,
                                       use_encoder_pooler=pooler, dropout_rate=0.0)
  keys = checkpoint_keys(tf.train.Checkpoint(model=classifier))
  head = classifier.classifier
  head_names = {id(head.out_proj.kernel): names.CLASSIFIER_HEAD[0].canonical,
                id(head.out_proj.bias): names.CLASSIFIER_HEAD[1].canonical}
  if not pooler:
    head_names.update({id(head.dense.kernel): TF2_DENSE[0],
                       id(head.dense.bias): TF2_DENSE[1]})
  expected = {}
  for v in classifier.variables:
    canonical = head_names.get(id(v)) or names.canonical_name(v.name)
    expected[keys[id(v)] + _VALUE] = (canonical, tuple(v.shape), id(v) in head_names)
  missing = sorted(k for k in expected if k not in shapes)
  unused = sorted(k for k in ours if k not in expected)
  mismatched = sorted((k, shape, shapes[k]) for k, (_, shape, _) in expected.items()
                      if k in shapes and shapes[k] != shape)
  if missing or unused or mismatched:
    raise CheckpointMismatchError(
        prefix, missing=missing, unused=unused, mismatched=mismatched,
        fix="pass the config that belongs to this checkpoint (a tf-models "
        "BertClassifier over BertEncoderV2)")
  encoder, arrays = {}, {}
  for key, (canonical, _, is_head) in expected.items():
    value = np.asarray(read_tf_tensor(reader, key, prefix), np.float32)
    if not np.all(np.isfinite(value)):
      raise BertHubError(
          f"non-finite weights in {prefix}", expected="finite float weights",
          received=f"NaN or Inf in {key}",
          fix="the checkpoint is corrupt or diverged; export a healthy one")
    (arrays if is_head else encoder)[canonical] = value
  if num_labels == 1:
    return encoder, arrays, None, IDENTITY, ("BertClassifier num_classes=1: "
                                             "regression (the logit is the score)")
  return encoder, arrays, None, SOFTMAX, ("tf-models sentence_prediction: softmax "
                                          "over the logits")


def read_classifier_head(checkpoint: str, config: BertConfig, *,
                         checkpoint_format: Optional[str] = None) -> ClassifierHead:
  """Reads the sequence-classification head of a fine-tuned checkpoint.

  Args:
    checkpoint: a Hugging Face directory / model.safetensors, or a TF1 prefix.
    config: the encoder's BertConfig (H).
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.

  Raises:
    BertHubError: no head, a head that does not fit (CheckpointMismatchError,
      every problem listed), a config.json whose labels disagree, or a format
      whose heads are not read.
  """
  fmt, path, files = resolve(checkpoint, checkpoint_format)
  if fmt in ("hf", "hf_h5"):
    read = _read_hf if fmt == "hf" else _read_h5
    arrays, labels, function, reason = read(path, config)
  elif fmt == "tf1":
    arrays, labels, function, reason = _read_tf1(path, config)
  elif fmt == "tf2":
    encoder, arrays, labels, function, reason = _read_tf2(path, config)
    num_labels = arrays[names.CLASSIFIER_HEAD[1].canonical].shape[0]
    return ClassifierHead(arrays=arrays, num_labels=num_labels, labels=labels,
                          function=function, function_reason=reason, format=fmt,
                          source=path, files=files,
                          inner_dim=config.hidden_size if TF2_DENSE[0] in arrays else 0,
                          encoder=Weights(arrays=encoder, source=path, format=fmt,
                                          files=files))
  else:
    raise BertHubError(
        f"classification heads of {fmt} checkpoints are not read",
        expected="a Hugging Face BertForSequenceClassification model.safetensors, a "
        "TF1 run_classifier.py checkpoint or a TF2 tf-models BertClassifier checkpoint",
        received=f"{path}, a {fmt} checkpoint",
        fix="save the classifier with save_pretrained(..., safe_serialization=True)")
  num_labels = arrays[names.CLASSIFIER_HEAD[1].canonical].shape[0]
  return ClassifierHead(arrays=arrays, num_labels=num_labels, labels=labels,
                        function=function, function_reason=reason, format=fmt,
                        source=path, files=files)
