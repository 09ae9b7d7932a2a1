"""The one table of foreign weight names: TF1 and Hugging Face -> our canonical names.

Canonical names are the variable names of tf-models' BERT encoder networks
(`BertEncoderV2` and the legacy `BertEncoder` share them) without the model prefix
and `:0`, in tf-models' layouts; the MLM head uses the names of tf-models'
`layers.MaskedLM` inside `BertPretrainerV2`. TF2 checkpoints need no table: they
are read through tf-models' own networks (see tf2.py).

Hugging Face TensorFlow's tf_model.h5 names derive from the TF1 column
(`hf_h5_name`); its layouts are TF1's.

Layouts (how a source tensor becomes the canonical one; shapes use
V=vocab, P=positions, T=types, H=hidden, A=heads, D=H/A, I=intermediate):
  copy     same layout in every format (embeddings, LayerNorm, biases).
  kernel   a dense kernel: TF1 [in, out] as is; HF Linear weight [out, in], transposed.
  qkv_k    query/key/value kernel: [H, H] as `kernel` -> reshape [H, A, D].
  qkv_b    query/key/value bias: [H] -> reshape [A, D].
  out_k    attention output kernel: [H, H] as `kernel` -> reshape [A, D, H].
"""
import dataclasses
import re
from typing import Callable, List, Tuple

from bert_hub.config import BertConfig


@dataclasses.dataclass(frozen=True)
class Weight:
  canonical: str  # tf-models variable name; "{i}" for the layer index
  tf1: str  # google-research BERT checkpoint name
  hf: str  # Hugging Face BertModel state_dict name (without "bert.")
  layout: str  # copy | kernel | qkv_k | qkv_b | out_k
  shape: Callable[[BertConfig], Tuple[int, ...]]  # canonical shape


def _h(c):
  return (c.hidden_size,)


EMBEDDINGS = [
    Weight("word_embeddings/embeddings", "bert/embeddings/word_embeddings",
           "embeddings.word_embeddings.weight", "copy",
           lambda c: (c.vocab_size, c.hidden_size)),
    Weight("position_embedding/embeddings", "bert/embeddings/position_embeddings",
           "embeddings.position_embeddings.weight", "copy",
           lambda c: (c.max_position_embeddings, c.hidden_size)),
    Weight("type_embeddings/embeddings", "bert/embeddings/token_type_embeddings",
           "embeddings.token_type_embeddings.weight", "copy",
           lambda c: (c.type_vocab_size, c.hidden_size)),
    Weight("embeddings/layer_norm/gamma", "bert/embeddings/LayerNorm/gamma",
           "embeddings.LayerNorm.weight", "copy", _h),
    Weight("embeddings/layer_norm/beta", "bert/embeddings/LayerNorm/beta",
           "embeddings.LayerNorm.bias", "copy", _h),
]

_T = "transformer/layer_{i}/"
_TF1 = "bert/encoder/layer_{i}/"
_HF = "encoder.layer.{i}."


def _qkv(name: str) -> List[Weight]:
  return [
      Weight(f"{_T}self_attention/{name}/kernel", f"{_TF1}attention/self/{name}/kernel",
             f"{_HF}attention.self.{name}.weight", "qkv_k",
             lambda c: (c.hidden_size, c.num_heads, c.head_size)),
      Weight(f"{_T}self_attention/{name}/bias", f"{_TF1}attention/self/{name}/bias",
             f"{_HF}attention.self.{name}.bias", "qkv_b",
             lambda c: (c.num_heads, c.head_size)),
  ]


LAYER = _qkv("query") + _qkv("key") + _qkv("value") + [
    Weight(f"{_T}self_attention/attention_output/kernel",
           f"{_TF1}attention/output/dense/kernel",
           f"{_HF}attention.output.dense.weight", "out_k",
           lambda c: (c.num_heads, c.head_size, c.hidden_size)),
    Weight(f"{_T}self_attention/attention_output/bias",
           f"{_TF1}attention/output/dense/bias",
           f"{_HF}attention.output.dense.bias", "copy", _h),
    Weight(f"{_T}self_attention_layer_norm/gamma", f"{_TF1}attention/output/LayerNorm/gamma",
           f"{_HF}attention.output.LayerNorm.weight", "copy", _h),
    Weight(f"{_T}self_attention_layer_norm/beta", f"{_TF1}attention/output/LayerNorm/beta",
           f"{_HF}attention.output.LayerNorm.bias", "copy", _h),
    Weight(f"{_T}intermediate/kernel", f"{_TF1}intermediate/dense/kernel",
           f"{_HF}intermediate.dense.weight", "kernel",
           lambda c: (c.hidden_size, c.intermediate_size)),
    Weight(f"{_T}intermediate/bias", f"{_TF1}intermediate/dense/bias",
           f"{_HF}intermediate.dense.bias", "copy", lambda c: (c.intermediate_size,)),
    Weight(f"{_T}output/kernel", f"{_TF1}output/dense/kernel",
           f"{_HF}output.dense.weight", "kernel",
           lambda c: (c.intermediate_size, c.hidden_size)),
    Weight(f"{_T}output/bias", f"{_TF1}output/dense/bias",
           f"{_HF}output.dense.bias", "copy", _h),
    Weight(f"{_T}output_layer_norm/gamma", f"{_TF1}output/LayerNorm/gamma",
           f"{_HF}output.LayerNorm.weight", "copy", _h),
    Weight(f"{_T}output_layer_norm/beta", f"{_TF1}output/LayerNorm/beta",
           f"{_HF}output.LayerNorm.bias", "copy", _h),
]

POOLER = [
    Weight("pooler_transform/kernel", "bert/pooler/dense/kernel",
           "pooler.dense.weight", "kernel", lambda c: (c.hidden_size, c.hidden_size)),
    Weight("pooler_transform/bias", "bert/pooler/dense/bias",
           "pooler.dense.bias", "copy", _h),
]

# The masked-language-model head (tf-models layers.MaskedLM named "cls/predictions");
# its output projection is tied to the word embeddings in every format.
MLM = [
    Weight("cls/predictions/transform/dense/kernel", "cls/predictions/transform/dense/kernel",
           "cls.predictions.transform.dense.weight", "kernel",
           lambda c: (c.hidden_size, c.hidden_size)),
    Weight("cls/predictions/transform/dense/bias", "cls/predictions/transform/dense/bias",
           "cls.predictions.transform.dense.bias", "copy", _h),
    Weight("cls/predictions/transform/LayerNorm/gamma",
           "cls/predictions/transform/LayerNorm/gamma",
           "cls.predictions.transform.LayerNorm.weight", "copy", _h),
    Weight("cls/predictions/transform/LayerNorm/beta",
           "cls/predictions/transform/LayerNorm/beta",
           "cls.predictions.transform.LayerNorm.bias", "copy", _h),
    Weight("cls/predictions/output_bias/bias", "cls/predictions/output_bias",
           "cls.predictions.bias", "copy", lambda c: (c.vocab_size,)),
]

# Source names that hold no weight of the model (buffers, training state) and
# are skipped silently; anything else that is not used is an error.
TF1_IGNORED_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1")
TF1_IGNORED = ("global_step",)
TF1_ENCODER_PREFIX = "bert/"
TF1_MLM_PREFIX = "cls/predictions/"
HF_IGNORED = ("embeddings.position_ids",)
HF_ENCODER_PREFIXES = ("embeddings.", "encoder.", "pooler.")
HF_MLM_PREFIX = "cls.predictions."
# Tied to word embeddings in BertForPreTraining / BertForMaskedLM; not a weight of its own.
HF_MLM_TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")


# Hugging Face TensorFlow (`tf_model.h5` of transformers 4.x's TFBertModel,
# TFBertForPreTraining/MaskedLM/SequenceClassification): the TF1 names and
# layouts (kernels [in, out]) with the layers as "layer_._{i}", ":0", the MLM
# head under "mlm___cls/", and these three embeddings and the MLM bias renamed.
# In the file each name is under the model's own scope ("tf_bert_model/...",
# stripped on reading as transformers does: h5.py).
HF_H5_RENAMED = {
    "bert/embeddings/word_embeddings": "bert/embeddings/word_embeddings/weight",
    "bert/embeddings/position_embeddings": "bert/embeddings/position_embeddings/embeddings",
    "bert/embeddings/token_type_embeddings":
        "bert/embeddings/token_type_embeddings/embeddings",
    "cls/predictions/output_bias": "cls/predictions/bias",
}
HF_H5_ENCODER_PREFIX = "bert/"
HF_H5_MLM_PREFIX = "mlm___cls/predictions/"


def hf_h5_name(weight: Weight) -> str:
  """The name of a (layer-indexed) weight in a Hugging Face tf_model.h5."""
  name = HF_H5_RENAMED.get(weight.tf1, weight.tf1)
  name = re.sub(r"/layer_(\d+)/", r"/layer_._\1/", name)
  return ("mlm___" + name if name.startswith("cls/") else name) + ":0"


def source_name(weight: Weight, fmt: str) -> str:
  """The weight's name in a checkpoint of format tf1 | hf | hf_h5."""
  return hf_h5_name(weight) if fmt == "hf_h5" else getattr(weight, fmt)


def expected_weights(config: BertConfig, *, with_mlm: bool) -> List[Weight]:
  """Every weight of the encoder (and MLM head), with layer indices filled in."""
  weights = list(EMBEDDINGS)
  for i in range(config.num_layers):
    weights += [
        dataclasses.replace(w, canonical=w.canonical.format(i=i),
                            tf1=w.tf1.format(i=i), hf=w.hf.format(i=i))
        for w in LAYER
    ]
  weights += POOLER
  if with_mlm:
    weights += MLM
  return weights


def source_shape(weight: Weight, config: BertConfig, fmt: str) -> Tuple[int, ...]:
  """The shape the weight has in a TF1, HF or HF h5 checkpoint (h5: as TF1)."""
  shape = weight.shape(config)
  if weight.layout in ("qkv_k", "out_k"):
    shape = (config.hidden_size, config.hidden_size)  # [in, out]
  elif weight.layout == "qkv_b":
    shape = (config.hidden_size,)
  if fmt == "hf" and weight.layout in ("kernel", "qkv_k", "out_k"):
    shape = shape[::-1]  # torch.nn.Linear.weight is [out, in]
  return shape


def to_canonical(array, weight: Weight, config: BertConfig, fmt: str):
  """Transforms a TF1/HF array (of source_shape) into the canonical layout."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  array = np.asarray(array, dtype=np.float32)
  if fmt == "hf" and weight.layout in ("kernel", "qkv_k", "out_k"):
    array = array.T  # [out, in] -> [in, out]
  h, a, d = config.hidden_size, config.num_heads, config.head_size
  if weight.layout == "qkv_k":
    array = array.reshape(h, a, d)  # [H, H] -> [H, A, D]
  elif weight.layout == "qkv_b":
    array = array.reshape(a, d)  # [H] -> [A, D]
  elif weight.layout == "out_k":
    array = array.reshape(a, d, h)  # [H, H] -> [A, D, H]
  return np.ascontiguousarray(array)


MLM_SCOPE = "cls/predictions"


# The sequence-classification head over the pooled output (logits = pooled @
# kernel + bias), N = number of labels: google-research `run_classifier.py`
# (top-level `output_weights` [N, H], `output_bias` [N]) and Hugging Face
# `BertForSequenceClassification` (`classifier.weight` [N, H], `.bias` [N]).
# Canonical: tf-models `layers.ClassificationHead(inner_dim=0)` named
# "classification_head", whose out_proj is a Dense named "logits": kernel
# [H, N], bias [N]. Layouts: head_k is
# [N, H] in both formats -> transposed; copy as above.
@dataclasses.dataclass(frozen=True)
class HeadWeight:
  canonical: str
  tf1: str
  hf: str  # full state_dict name (the encoder is under "bert.")
  layout: str  # head_k | copy
  shape: Callable[[int, int], Tuple[int, ...]]  # (H, N) -> canonical shape


CLASSIFIER_HEAD_SCOPE = "classification_head"
CLASSIFIER_HEAD = [
    HeadWeight(f"{CLASSIFIER_HEAD_SCOPE}/logits/kernel", "output_weights",
               "classifier.weight", "head_k", lambda h, n: (h, n)),
    HeadWeight(f"{CLASSIFIER_HEAD_SCOPE}/logits/bias", "output_bias",
               "classifier.bias", "copy", lambda h, n: (n,)),
]
HF_CLASSIFIER_ENCODER_PREFIX = "bert."
# transformers 4.x TFBertForSequenceClassification (tf_model.h5, without the
# model scope): the Dense "classifier", kernel [H, N] (the canonical layout:
# no transpose), bias [N].
HF_H5_CLASSIFIER_HEAD = {f"{CLASSIFIER_HEAD_SCOPE}/logits/kernel": "classifier/kernel:0",
                         f"{CLASSIFIER_HEAD_SCOPE}/logits/bias": "classifier/bias:0"}


def head_source_name(weight: HeadWeight, fmt: str) -> str:
  """The head weight's name in a tf1 | hf | hf_h5 checkpoint."""
  return HF_H5_CLASSIFIER_HEAD[weight.canonical] if fmt == "hf_h5" else getattr(weight, fmt)


def head_source_shape(weight: HeadWeight, hidden: int, num_labels: int, fmt: str = "hf"):
  """The shape a head weight has in a TF1, HF or HF h5 checkpoint."""
  shape = weight.shape(hidden, num_labels)
  return shape[::-1] if weight.layout == "head_k" and fmt != "hf_h5" else shape


def head_to_canonical(array, weight: HeadWeight, fmt: str = "hf"):
  import numpy as np  # pylint: disable=g-import-not-at-top
  array = np.asarray(array, dtype=np.float32)
  transpose = weight.layout == "head_k" and fmt != "hf_h5"
  return np.ascontiguousarray(array.T if transpose else array)


def canonical_name(variable_name: str) -> str:
  """A tf-models variable's canonical name.

  "bert_encoder/transformer/layer_0/intermediate/kernel:0" (BertEncoderV2, a
  Layer: its name is the prefix), "transformer/layer_0/intermediate/kernel:0"
  (the legacy functional BertEncoder: no prefix), ".../cls/predictions/..."
  (MaskedLM, inside whatever scope) -> "transformer/layer_0/intermediate/kernel".
  """
  name = variable_name.rsplit(":", 1)[0]
  if MLM_SCOPE + "/" in name:
    return name[name.index(MLM_SCOPE + "/"):]
  for anchor in ("word_embeddings/", "position_embedding/", "type_embeddings/",
                 "embeddings/layer_norm/", "transformer/", "pooler_transform/"):
    if anchor in name:
      return name[name.index(anchor):]
  raise ValueError(f"not a tf-models BERT variable: {variable_name}")
