"""A sentence-transformers model directory, read into one frozen spec value.

Sentence-embedding models (all-MiniLM-L6-v2, bge, e5, gte, LaBSE) are
sentence-transformers directories: BERT weights at the root plus modules.json
(the pipeline: Transformer, Pooling, then any Dense and Normalize), each
module's <path>/config.json (1_Pooling: the pooling mode(s), include_prompt), a
Dense module's <path>/model.safetensors (linear.weight [out, in], linear.bias),
sentence_bert_config.json (max_seq_length; its do_lower_case is
bert_hub/tokenizer_settings.py's business) and config_sentence_transformers.json
(prompts {"query": "query: ", ...}, default_prompt_name).

`read(folder, hidden_size=H)` returns a `SentenceTransformerSpec` (None when the
folder has no modules.json), with the semantics of the installed
sentence-transformers 6.x (sentence_transformer/modules/pooling.py,
base/modules/dense.py, normalize.py, base/model.py's encode), which
bert_hub/pooling.py reproduces as TF ops. Whatever the export cannot reproduce
exactly (an unknown module type, a Dense module on token embeddings, a residual
Dense, an activation not in ACTIVATIONS, Transformer settings that change its
inputs) is a one-line BertHubError naming the module: never skipped.
"""
import dataclasses
import json
import os
import re
from typing import Dict, Optional, Tuple

import numpy as np

from bert_hub.errors import BertHubError

MODULES_JSON = "modules.json"
SENTENCE_BERT_CONFIG = "sentence_bert_config.json"
MODEL_CONFIG = "config_sentence_transformers.json"

# sentence-transformers' Pooling.POOLING_MODES, in its order.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# The legacy boolean keys of 1_Pooling/config.json, in the order Pooling
# concatenates their outputs (pooling.py's _LEGACY_POOLING_MODE_KWARGS).
_LEGACY_POOLING_KEYS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
# A Dense module's activation_function (a torch.nn class path) -> our name.
# Dense instantiates the class without arguments: nn.GELU() is the erf GELU.
ACTIVATIONS = {"Tanh": "tanh", "Identity": "identity", "ReLU": "relu",
               "Sigmoid": "sigmoid", "GELU": "gelu"}
_DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"  # Dense's default
# Module classes by the last part of their modules.json type
# ("sentence_transformers.models.Pooling",
# "sentence_transformers.sentence_transformer.modules.pooling.Pooling", ...).
SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
# sentence_bert_config.json keys that do not change what the encoder sees, with
# the values that keep it so (None: any value).
_TRANSFORMER_KEYS = {
    "max_seq_length": None, "do_lower_case": None, "modality_config": None,
    "unpad_inputs": None, "transformer_task": ("feature-extraction",),
    "module_output_name": ("token_embeddings",), "processing_kwargs": ({},),
    "query_length": (None,), "document_length": (None,), "query_expansion": (None,)}


@dataclasses.dataclass(frozen=True)
class DenseLayer:
  """One Dense module: y = activation(x @ kernel + bias).

  path: the module's folder, relative to the model folder (e.g. "2_Dense").
  kernel: float32 [in_features, out_features] (torch's Linear weight, transposed).
  bias: float32 [out_features], or None (bias: false).
  activation: one of ACTIVATIONS' values.
  """
  path: str
  in_features: int
  out_features: int
  activation: str
  kernel: np.ndarray = dataclasses.field(repr=False, compare=False)
  bias: Optional[np.ndarray] = dataclasses.field(repr=False, compare=False)

  def describe(self) -> str:
    return (f"Dense {self.in_features} -> {self.out_features}"
            f"{'' if self.bias is not None else ' (no bias)'}, {self.activation}")


@dataclasses.dataclass(frozen=True)
class SentenceTransformerSpec:
  """What a sentence-transformers directory computes after its Transformer.

  folder: the model folder.
  modules: the modules.json entries as "Type (path)", in order, for the page.
  pooling_modes: Pooling's modes in concatenation order (POOLING_MODES' names).
  include_prompt: False: the prompt's tokens ([CLS] included) are left out of
    the pooling (sentence-transformers' prompt_length masking).
  dense: the Dense modules after Pooling, in order.
  normalize: a Normalize module ends the pipeline (L2, eps 1e-12).
  embedding_dimension: D, the size of the final embedding.
  max_seq_length: sentence_bert_config.json's, or None.
  prompts: (name, prompt text) pairs, in the file's order.
  default_prompt_name: the prompt encode() applies when given none, or None.
  """
  folder: str
  modules: Tuple[str, ...]
  pooling_modes: Tuple[str, ...]
  include_prompt: bool
  dense: Tuple[DenseLayer, ...]
  normalize: bool
  embedding_dimension: int
  max_seq_length: Optional[int]
  prompts: Tuple[Tuple[str, str], ...] = ()
  default_prompt_name: Optional[str] = None

  def describe(self) -> str:
    parts = ["pooling " + " + ".join(self.pooling_modes)]
    if not self.include_prompt:
      parts[0] += " (prompt tokens excluded)"
    parts += [d.describe() for d in self.dense]
    if self.normalize:
      parts.append("Normalize")
    return ", ".join(parts) + f" -> D={self.embedding_dimension}"


def _read_json(path: str, *, what: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, OSError) as e:
    raise BertHubError(
        f"unreadable {what}", expected="a UTF-8 JSON file",
        received=f"{path}: {str(e).splitlines()[0][:200]}",
        fix="repair the file (as sentence-transformers' save() writes it)") from None


def _refuse(module: str, *, expected: str, received: str, fix: str):
  raise BertHubError(f"cannot reproduce sentence-transformers module {module}",
                     expected=expected, received=received, fix=fix)


def _class_name(type_ref) -> Optional[str]:
  """The module class of a modules.json type, if it is one of sentence-transformers'."""
  if isinstance(type_ref, str) and type_ref.startswith("sentence_transformers."):
    name = type_ref.rsplit(".", 1)[-1]
    return name if name in SUPPORTED_MODULES else None
  return None


def _pooling(folder: str, entry: dict, label: str, *, dimension: int):
  """(modes, include_prompt) of a Pooling module."""
  path = os.path.join(folder, entry["path"], "config.json")
  config = _read_json(path, what=f"{label} config") if os.path.isfile(path) else {}
  config = config if isinstance(config, dict) else {"config": config}
  known = {"word_embedding_dimension", "embedding_dimension", "pooling_mode",
           "include_prompt"} | {k for k, _ in _LEGACY_POOLING_KEYS}
  unknown = sorted(set(config) - known)
  if unknown:
    _refuse(label, expected=f"Pooling settings {sorted(known)}",
            received=f"{', '.join(unknown)} in {path}",
            fix="export a model whose Pooling module sentence-transformers 6 defines")
  legacy = [mode for key, mode in _LEGACY_POOLING_KEYS if config.get(key)]
  mode = config.get("pooling_mode")
  if mode is None:
    modes = tuple(legacy) or ("mean",)  # no mode set: Pooling's default
  else:
    modes = (mode,) if isinstance(mode, str) else tuple(mode) if isinstance(
        mode, (list, tuple)) else ()
  bad = [m for m in modes if m not in POOLING_MODES]
  if not modes or bad:
    _refuse(label, expected=f"pooling modes from {', '.join(POOLING_MODES)}",
            received=f"pooling_mode {json.dumps(mode)}", fix="repair 1_Pooling/config.json")
  size = config.get("embedding_dimension", config.get("word_embedding_dimension", dimension))
  if size != dimension:
    _refuse(label, expected=f"embedding_dimension {dimension} (the encoder's hidden size)",
            received=str(size), fix="export the Pooling module that belongs to these weights")
  include_prompt = config.get("include_prompt", True)
  if not isinstance(include_prompt, bool):
    _refuse(label, expected="include_prompt true or false",
            received=json.dumps(include_prompt), fix="repair 1_Pooling/config.json")
  return modes, include_prompt


def _refuse_pickle(path: str):
  raise BertHubError(
      "pickled checkpoint refused",
      expected="model.safetensors (loading a pickle runs code from the file)",
      received=path,
      fix="convert it once where you trust it: python -c \"from sentence_transformers "
      "import SentenceTransformer as S; S('DIR').save('DIR', safe_serialization=True)\"")


def _dense(folder: str, entry: dict, label: str, *, dimension: int) -> DenseLayer:
  module_dir = os.path.join(folder, entry["path"])
  path = os.path.join(module_dir, "config.json")
  config = _read_json(path, what=f"{label} config") if os.path.isfile(path) else None
  if not isinstance(config, dict):
    _refuse(label, expected=f"a Dense config.json in {module_dir}",
            received="none" if config is None else repr(config)[:100],
            fix="export the model as sentence-transformers saves it")
  known = {"in_features", "out_features", "bias", "activation_function",
           "module_input_name", "module_output_name", "use_residual"}
  unknown = sorted(set(config) - known)
  if unknown:
    _refuse(label, expected=f"Dense settings {sorted(known)}",
            received=f"{', '.join(unknown)} in {path}",
            fix="export a model whose Dense modules sentence-transformers 6 defines")
  if config.get("module_input_name", "sentence_embedding") != "sentence_embedding" or (
      config.get("module_output_name") not in (None, "sentence_embedding")):
    _refuse(label, expected="a Dense module on the sentence embedding",
            received=f"module_input_name {config.get('module_input_name')!r}, "
            f"module_output_name {config.get('module_output_name')!r}",
            fix="bert-hub exports Dense modules that follow Pooling only")
  if config.get("use_residual", False):
    _refuse(label, expected="use_residual false", received="use_residual true",
            fix="bert-hub does not reproduce residual Dense modules")
  activation_ref = config.get("activation_function", _DEFAULT_ACTIVATION)
  name = activation_ref.rsplit(".", 1)[-1] if isinstance(activation_ref, str) else None
  if not (isinstance(activation_ref, str) and activation_ref.startswith("torch.")
          and name in ACTIVATIONS):
    _refuse(label, expected="activation_function torch.nn " + "|".join(ACTIVATIONS),
            received=repr(activation_ref),
            fix="export a model whose Dense activation is one of these")
  in_features, out_features = config.get("in_features"), config.get("out_features")
  if in_features != dimension or not isinstance(out_features, int) or out_features < 1:
    _refuse(label, expected=f"in_features {dimension} (the size of the embedding before "
            "it) and out_features >= 1",
            received=f"in_features {in_features}, out_features {out_features}",
            fix="check modules.json's order against the modules' configs")
  has_bias = bool(config.get("bias", True))
  weights_path = os.path.join(module_dir, "model.safetensors")
  if not os.path.isfile(weights_path):
    pickled = os.path.join(module_dir, "pytorch_model.bin")
    if os.path.isfile(pickled):
      _refuse_pickle(os.path.join(entry["path"], "pytorch_model.bin"))
    _refuse(label, expected=f"the Dense weights in {weights_path}", received="no such file",
            fix="copy the module's model.safetensors too")
  arrays = _read_safetensors(weights_path)
  want = {"linear.weight": (out_features, in_features)}
  if has_bias:
    want["linear.bias"] = (out_features,)
  got = {k: tuple(v.shape) for k, v in arrays.items()}
  if got != want:
    _refuse(label, expected=f"exactly {want} in model.safetensors", received=str(got),
            fix="export the Dense weights that belong to its config.json")
  return DenseLayer(
      path=entry["path"], in_features=in_features, out_features=out_features,
      activation=ACTIVATIONS[name],
      kernel=np.ascontiguousarray(arrays["linear.weight"].T, dtype=np.float32),
      bias=arrays["linear.bias"].astype(np.float32) if has_bias else None)


def _read_safetensors(path: str) -> Dict[str, np.ndarray]:
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  try:
    with safe_open(path, framework="np") as f:
      return {k: np.asarray(f.get_tensor(k)) for k in f.keys()}
  except Exception as e:  # safetensors raises its own error types, and OSError
    raise BertHubError(
        "unreadable safetensors file", expected="a complete model.safetensors",
        received=f"{path}: {str(e).splitlines()[0][:200]}",
        fix="copy the file again (as sentence-transformers saved it)") from None


def _normalize(folder: str, entry: dict, label: str) -> None:
  path = os.path.join(folder, entry["path"], "config.json")
  config = _read_json(path, what=f"{label} config") if os.path.isfile(path) else {}
  config = config if isinstance(config, dict) else {"config": config}
  if config.get("module_input_name", "sentence_embedding") != "sentence_embedding" or (
      config.get("module_output_name") not in (None, "sentence_embedding")) or (
          set(config) - {"module_input_name", "module_output_name"}):
    _refuse(label, expected="a Normalize module on the sentence embedding",
            received=json.dumps(config)[:200],
            fix="bert-hub exports Normalize modules that follow Pooling only")


def _transformer(folder: str, entry: dict, label: str) -> Optional[int]:
  """max_seq_length of the Transformer module; refuses settings that change its inputs."""
  if entry.get("path") not in ("", "."):
    _refuse(label, expected='the Transformer at path "" (the BERT weights at the root)',
            received=f"path {entry.get('path')!r}",
            fix=f"pass --checkpoint {os.path.join(folder, str(entry.get('path')))} "
            "with a copy of modules.json whose Transformer path is \"\"")
  path = os.path.join(folder, SENTENCE_BERT_CONFIG)
  config = _read_json(path, what=SENTENCE_BERT_CONFIG) if os.path.isfile(path) else {}
  if not isinstance(config, dict):
    config = {}
  for key, value in config.items():
    if key not in _TRANSFORMER_KEYS:
      _refuse(label, expected=f"settings from {sorted(_TRANSFORMER_KEYS)}",
              received=f"{key} in {path}", fix="export a plain BERT sentence-transformers model")
    allowed = _TRANSFORMER_KEYS[key]
    if allowed is not None and value not in allowed:
      _refuse(label, expected=f"{key} {' or '.join(json.dumps(a) for a in allowed)}",
              received=f"{key} {json.dumps(value)[:100]} in {path}",
              fix="bert-hub reproduces plain tokenization and truncation only")
  max_seq_length = config.get("max_seq_length")
  if max_seq_length is not None and (type(max_seq_length) is not int or max_seq_length < 3):
    _refuse(label, expected="max_seq_length an integer >= 3",
            received=repr(max_seq_length), fix=f"repair {path}")
  return max_seq_length


def _prompts(folder: str):
  path = os.path.join(folder, MODEL_CONFIG)
  config = _read_json(path, what=MODEL_CONFIG) if os.path.isfile(path) else {}
  config = config if isinstance(config, dict) else {}
  prompts = config.get("prompts") or {}
  if not isinstance(prompts, dict) or not all(
      isinstance(k, str) and isinstance(v, (str, type(None))) for k, v in prompts.items()):
    raise BertHubError(f"bad prompts in {path}", expected="an object of name: prompt text",
                       received=json.dumps(prompts)[:200], fix=f"repair {path}")
  default = config.get("default_prompt_name")
  if default is not None and default not in prompts:
    raise BertHubError(
        f"bad default_prompt_name in {path}",
        expected=f"one of the prompts' names {sorted(prompts)}", received=repr(default),
        fix=f"repair {path} (sentence-transformers refuses to load it too)")
  # sentence-transformers replaces a null prompt by "".
  return tuple((k, v or "") for k, v in prompts.items()), default


def read(folder: str, *, hidden_size: int) -> Optional[SentenceTransformerSpec]:
  """The spec of the sentence-transformers model in `folder`, or None without modules.json.

  Args:
    folder: the model directory (holding modules.json and the BERT weights).
    hidden_size: H of the BERT encoder, the token embeddings' size.

  Raises:
    BertHubError: a module or setting the export cannot reproduce exactly.
  """
  if not (folder and os.path.isfile(os.path.join(folder, MODULES_JSON))):
    return None
  path = os.path.join(folder, MODULES_JSON)
  entries = _read_json(path, what=MODULES_JSON)
  if not isinstance(entries, list) or not all(
      isinstance(e, dict) and isinstance(e.get("path"), str) for e in entries):
    raise BertHubError(f"bad {MODULES_JSON}", expected="a list of {idx, name, path, type}",
                       received=json.dumps(entries)[:200], fix=f"repair {path}")
  entries = sorted(entries, key=lambda e: e.get("idx", 0))
  modules, modes, include_prompt, dense, normalize = [], None, True, [], False
  max_seq_length, dimension = None, hidden_size
  for i, entry in enumerate(entries):
    type_ref = entry.get("type")
    label = f"{entry.get('idx', i)} {type_ref} ({entry['path'] or '.'})"
    name = _class_name(type_ref)
    if name is None:
      _refuse(label, expected="only sentence-transformers' " + ", ".join(SUPPORTED_MODULES),
              received=f"type {type_ref!r} in {path}",
              fix="export a model made of these modules; bert-hub never skips a module")
    if entry.get("kwargs"):
      _refuse(label, expected="no module kwargs", received=json.dumps(entry["kwargs"])[:100],
              fix="export a model without task-specific module kwargs")
    if (i == 0) != (name == "Transformer"):
      _refuse(label, expected="the Transformer first, then Pooling, then Dense/Normalize",
              received=f"{name} at position {i}", fix=f"check {path}")
    if name == "Transformer":
      max_seq_length = _transformer(folder, entry, label)
    elif name == "Pooling":
      if modes is not None or dense or normalize:
        _refuse(label, expected="one Pooling module, right after the Transformer",
                received=f"Pooling at position {i}", fix=f"check {path}")
      modes, include_prompt = _pooling(folder, entry, label, dimension=hidden_size)
      dimension = hidden_size * len(modes)
    elif modes is None:
      _refuse(label, expected="Pooling before Dense and Normalize (they act on the "
              "sentence embedding)", received=f"{name} before any Pooling",
              fix="export a model whose token embeddings are pooled first")
    elif name == "Dense":
      if normalize:
        _refuse(label, expected="Dense before Normalize", received="Dense after Normalize",
                fix="export a model whose Normalize module comes last")
      layer = _dense(folder, entry, label, dimension=dimension)
      dense.append(layer)
      dimension = layer.out_features
    else:
      if normalize:
        _refuse(label, expected="one Normalize module", received="two",
                fix=f"check {path}")
      _normalize(folder, entry, label)
      normalize = True
    modules.append(f"{name} ({entry['path'] or '.'})")
  if modes is None:
    raise BertHubError(
        f"no Pooling module in {path}", expected="Transformer then Pooling (the sentence "
        "embedding)", received=", ".join(modules) or "no modules",
        fix="export a sentence-transformers model with a Pooling module, or pass a "
        "plain BERT checkpoint with --pooling")
  prompts, default_prompt_name = _prompts(folder)
  return SentenceTransformerSpec(
      folder=folder, modules=tuple(modules), pooling_modes=modes,
      include_prompt=include_prompt, dense=tuple(dense), normalize=normalize,
      embedding_dimension=dimension, max_seq_length=max_seq_length, prompts=prompts,
      default_prompt_name=default_prompt_name)


_PROMPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def valid_signature_name(name: str) -> bool:
  """A prompt name usable as a SavedModel signature name and in a REST body."""
  return bool(_PROMPT_NAME.match(name))
