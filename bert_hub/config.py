"""The BERT architecture config: one frozen type, read from the three sources.

Sources (a .yaml/.yml file is an encoder YAML; a JSON file with "model_type" is a
Hugging Face config, any other JSON an original bert_config.json):
  * `bert_config.json` of the original google-research BERT (and TF Model Garden's
    legacy BERT): keys `vocab_size`, `hidden_size`, `num_hidden_layers`, ...
  * a Hugging Face `config.json` with `"model_type": "bert"`: the same keys plus
    `layer_norm_eps`, `position_embedding_type`, ...
  * a TF Model Garden encoder YAML: `encoder: {type: bert, bert: {...}}` (or the
    `bert:` block alone), with keys `num_layers`, `hidden_activation`, ...

Activation semantics differ by source, and the built model must compute exactly
what the source computed (mixing them up costs about 2e-3 in outputs):
  * original BERT and TF Model Garden "gelu" is the tanh approximation;
  * Hugging Face "gelu" is the exact erf form; its "gelu_new", "gelu_pytorch_tanh"
    and "gelu_fast" are the tanh approximation.
So each reader maps its names into our own unambiguous names (ACTIVATIONS below).
"""
import dataclasses
import json
import os
from typing import Any, Callable, Mapping

from bert_hub.errors import BertHubError

# Our activation names -> the function (tf imported lazily: configs are cheap).
ACTIVATION_NAMES = ("gelu_tanh", "gelu_erf", "relu", "silu", "tanh")

# Each source's activation names -> ours. One table per source, the only place
# where foreign activation names appear.
_TF_ACTIVATIONS = {  # google-research BERT, TF Model Garden (tf_utils.get_activation)
    "gelu": "gelu_tanh", "relu": "relu", "swish": "silu", "tanh": "tanh",
}
_HF_ACTIVATIONS = {  # transformers.activations.ACT2FN
    "gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu",
    "tanh": "tanh",
}

# tf-models' BertEncoderV2 fixes LayerNormalization epsilon at this value.
SUPPORTED_LAYER_NORM_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """A BERT encoder architecture. Sizes as in the BERT paper: L, H, A."""
  vocab_size: int
  hidden_size: int  # H
  num_layers: int  # L
  num_heads: int  # A
  intermediate_size: int  # usually 4H
  activation: str = "gelu_tanh"  # one of ACTIVATION_NAMES
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  initializer_range: float = 0.02
  layer_norm_eps: float = 1e-12
  source: str = ""  # where it was read from, for error messages

  def __post_init__(self):
    problems = []
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                 "intermediate_size", "max_position_embeddings",
                 "type_vocab_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{name}={value!r} (a positive integer)")
    for name in ("hidden_dropout", "attention_dropout"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        problems.append(f"{name}={value!r} (a number in [0, 1))")
    for name in ("initializer_range", "layer_norm_eps"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        problems.append(f"{name}={value!r} (a positive number)")
    if problems:
      raise BertHubError(
          f"invalid BERT config {self.source}".rstrip(),
          expected="positive integer sizes and dropout rates in [0, 1)",
          received=", ".join(problems),
          fix="correct these values in the config file")
    if self.hidden_size % self.num_heads:
      raise BertHubError(
          f"invalid BERT config {self.source}".rstrip(),
          expected="hidden_size divisible by the number of attention heads",
          received=f"hidden_size={self.hidden_size}, heads={self.num_heads} "
          f"(remainder {self.hidden_size % self.num_heads})",
          fix="check num_attention_heads / hidden_size in the config")
    if self.activation not in ACTIVATION_NAMES:
      raise BertHubError(
          f"invalid BERT config {self.source}".rstrip(),
          expected=f"an activation among {', '.join(ACTIVATION_NAMES)}",
          received=repr(self.activation),
          fix="use a supported hidden_act")
    if abs(self.layer_norm_eps - SUPPORTED_LAYER_NORM_EPS) > 1e-15:
      raise BertHubError(
          f"unsupported BERT config {self.source}".rstrip(),
          expected=f"layer_norm_eps={SUPPORTED_LAYER_NORM_EPS} (fixed in "
          "tf-models' BertEncoderV2, as in the original BERT)",
          received=f"layer_norm_eps={self.layer_norm_eps}",
          fix="export a BERT-family model that uses 1e-12")

  @property
  def head_size(self) -> int:
    return self.hidden_size // self.num_heads

  def activation_fn(self) -> Callable:
    """The activation as a function of a float32 tensor."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return {
        "gelu_tanh": _gelu_tanh,
        "gelu_erf": _gelu_erf,
        "relu": tf.nn.relu,
        "silu": tf.nn.silu,
        "tanh": tf.math.tanh,
    }[self.activation]

  def to_dict(self) -> dict:
    return {k: v for k, v in dataclasses.asdict(self).items() if k != "source"}

  def describe(self) -> str:
    return (f"L={self.num_layers} H={self.hidden_size} A={self.num_heads} "
            f"vocab={self.vocab_size} act={self.activation}")


def _gelu_tanh(x):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.nn.gelu(x, approximate=True)


def _gelu_erf(x):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.nn.gelu(x, approximate=False)


def _activation(name: Any, table: Mapping[str, str], source: str, kind: str) -> str:
  if isinstance(name, str) and name in table:
    return table[name]
  raise BertHubError(
      f"unknown activation in {source}",
      expected=f"one of {', '.join(sorted(table))} ({kind} names)",
      received=repr(name),
      fix="set the activation to one the source framework defines")


def _require(data: Mapping[str, Any], keys, source: str, kind: str):
  missing = [k for k in keys if k not in data]
  if missing:
    raise BertHubError(
        f"incomplete {kind} {source}",
        expected=f"keys {', '.join(keys)}",
        received=f"no {', '.join(missing)}",
        fix=f"add the missing keys, or pass the right {kind}")


_BERT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size")


def _from_bert_keys(data: Mapping[str, Any], *, activations: Mapping[str, str],
                    kind: str, source: str, **extra) -> BertConfig:
  """The keys original BERT and Hugging Face share (`num_hidden_layers`, ...)."""
  _require(data, _BERT_KEYS, source, kind)
  return BertConfig(
      vocab_size=data["vocab_size"],
      hidden_size=data["hidden_size"],
      num_layers=data["num_hidden_layers"],
      num_heads=data["num_attention_heads"],
      intermediate_size=data["intermediate_size"],
      activation=_activation(data.get("hidden_act", "gelu"), activations, source, kind),
      hidden_dropout=data.get("hidden_dropout_prob", 0.1),
      attention_dropout=data.get("attention_probs_dropout_prob", 0.1),
      max_position_embeddings=data.get("max_position_embeddings", 512),
      type_vocab_size=data.get("type_vocab_size", 2),
      initializer_range=data.get("initializer_range", 0.02),
      source=source, **extra)


def from_bert_config_json(data: Mapping[str, Any], *, source: str = "") -> BertConfig:
  """Original BERT `bert_config.json` (google-research, TF Model Garden legacy)."""
  return _from_bert_keys(data, activations=_TF_ACTIVATIONS, kind="bert_config.json",
                         source=source)


def from_hf_config(data: Mapping[str, Any], *, source: str = "") -> BertConfig:
  """Hugging Face `config.json` of a `model_type: bert` model."""
  if data.get("model_type") != "bert":
    raise BertHubError(
        f"unsupported Hugging Face config {source}",
        expected='"model_type": "bert"',
        received=f'"model_type": {json.dumps(data.get("model_type"))}',
        fix="export a BERT model (other architectures have other weights)")
  if data.get("position_embedding_type", "absolute") != "absolute":
    raise BertHubError(
        f"unsupported Hugging Face config {source}",
        expected='"position_embedding_type": "absolute" (as in BERT)',
        received=json.dumps(data["position_embedding_type"]),
        fix="export a model with absolute position embeddings")
  return _from_bert_keys(data, activations=_HF_ACTIVATIONS,
                         kind="Hugging Face config.json", source=source,
                         layer_norm_eps=data.get("layer_norm_eps", 1e-12))


def _mapping(value: Any, key: str, source: str) -> Mapping[str, Any]:
  if not isinstance(value, Mapping):
    raise BertHubError(
        f"unreadable encoder YAML {source}".rstrip(),
        expected=f"a mapping of config keys under {key}:",
        received=f"{key}: {value!r}"[:200],
        fix="pass the encoder YAML of the checkpoint (encoder: {type: bert, bert: {...}})")
  return value


def from_encoder_yaml(data: Mapping[str, Any], *, source: str = "") -> BertConfig:
  """TF Model Garden `EncoderConfig` YAML: `encoder: {type: bert, bert: {...}}`."""
  if "encoder" in data:
    data = _mapping(data["encoder"], "encoder", source)
  if "type" in data and data["type"] != "bert":
    raise BertHubError(
        f"unsupported encoder YAML {source}",
        expected="encoder type 'bert'",
        received=repr(data["type"]),
        fix="export a BERT encoder config")
  data = _mapping(data.get("bert", data), "bert", source)
  keys = ("vocab_size", "hidden_size", "num_layers", "num_attention_heads",
          "intermediate_size")
  _require(data, keys, source, "encoder YAML")
  if data.get("embedding_size") not in (None, data["hidden_size"]):
    raise BertHubError(
        f"unsupported encoder YAML {source}",
        expected="embedding_size unset or equal to hidden_size",
        received=f"embedding_size={data['embedding_size']}",
        fix="factorized embeddings are not BERT's; export a plain BERT")
  if data.get("norm_first"):
    raise BertHubError(
        f"unsupported encoder YAML {source}",
        expected="norm_first: false (post-norm, as in BERT)",
        received="norm_first: true",
        fix="export a post-norm BERT encoder")
  return BertConfig(
      vocab_size=data["vocab_size"],
      hidden_size=data["hidden_size"],
      num_layers=data["num_layers"],
      num_heads=data["num_attention_heads"],
      intermediate_size=data["intermediate_size"],
      activation=_activation(data.get("hidden_activation", "gelu"),
                             _TF_ACTIVATIONS, source, "TF Model Garden"),
      hidden_dropout=data.get("dropout_rate", 0.1),
      attention_dropout=data.get("attention_dropout_rate", 0.1),
      max_position_embeddings=data.get("max_position_embeddings", 512),
      type_vocab_size=data.get("type_vocab_size", 16),
      initializer_range=data.get("initializer_range", 0.02),
      source=source)


def load_config(path: str) -> BertConfig:
  """Reads a config file of any of the three kinds (see the module docstring).

  Args:
    path: a `bert_config.json`, a Hugging Face `config.json`, a TF Model Garden
      encoder `.yaml`, or a directory holding `config.json` or `bert_config.json`.
  """
  if os.path.isdir(path):
    for name in ("config.json", "bert_config.json"):
      if os.path.isfile(os.path.join(path, name)):
        path = os.path.join(path, name)
        break
    else:
      raise BertHubError(
          "no config in directory",
          expected="config.json or bert_config.json in it",
          received=f"{path} without either",
          fix="pass --config with the config file's path")
  if not os.path.isfile(path):
    raise BertHubError(
        "config file not found",
        expected="an existing bert_config.json, config.json or encoder YAML",
        received=repr(path),
        fix="check the --config path")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise BertHubError(
        "unreadable config", expected="a UTF-8 JSON or YAML file",
        received=f"{path} with invalid UTF-8 at byte {e.start}",
        fix="pass the model's JSON config or encoder YAML") from None
  is_yaml = path.endswith((".yaml", ".yml"))
  try:
    if is_yaml:
      import yaml  # pylint: disable=g-import-not-at-top
      data = yaml.safe_load(text)
    else:
      data = json.loads(text)
  except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
    raise BertHubError(
        "unreadable config",
        expected="valid YAML" if is_yaml else "valid JSON",
        received=f"{path}: {str(e).splitlines()[0]}",
        fix="repair the file or pass the right one") from None
  if not isinstance(data, dict):
    raise BertHubError(
        "unreadable config", expected="a mapping of config keys",
        received=f"{path} holding a {type(data).__name__}",
        fix="pass the model's config file")
  if is_yaml:
    return from_encoder_yaml(data, source=path)
  if "model_type" in data:
    return from_hf_config(data, source=path)
  return from_bert_config_json(data, source=path)

