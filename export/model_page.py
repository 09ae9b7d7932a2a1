"""The model page and metadata file written beside every encoder export.

Every encoder export `DIR/<version>/` holds, next to its SavedModel:

  README.md      the model page, in the form of the TF Hub BERT pages
                 (shared/seeds/000_*.txt for version 3, 002_*.txt for versions 1
                 and 2): title with the handle `<publisher>/<name>/<version>`, the
                 metadata comment lines, the overview with the real L, H and A,
                 a usage snippet for that version's API that runs as written,
                 the outputs with their real sizes, and the changelog up to the
                 exported version (version 1's known defects included).
  bert_hub.json  the machine-readable record: source checkpoint (path, format,
                 size and SHA-256 of each file), config, version and its
                 interface, do_lower_case, the stated facts, package versions,
                 the verification result, export time (UTC).

Both are written into the staging directory after verification, so they appear
atomically with the SavedModel (export/publish.py). `hub.load`, `hub.KerasLayer`
and TF Serving read only `saved_model.pb`, `variables/`, `assets/` (and
`assets.extra/` for warmup), so the two files change nothing for them.

What the checkpoint cannot tell comes from the caller (bert-hub-export options),
and what is not stated is not invented:
  publisher           --publisher, default "bert-hub"
  name                --name, default tfhub_name(): bert_<lang>[_wwm][_<cased|uncased>]_L-<L>_H-<H>_A-<A>
  language            --language, default "en" (a BCP 47 code, or "multi")
  dataset             --dataset, default not stated ("unknown" on the page)
  whole_word_masking  --whole-word-masking / --no-whole-word-masking, default
                      not stated (the page then says nothing about masking)

  page = render(config=..., version=3, lower_case=True, publisher=..., name=...,
                language="en", dataset=None, whole_word_masking=None,
                model_path="models/bert/3")
  write(stage, ...)  -> (path of README.md, path of bert_hub.json)
  python_blocks(page) -> the page's ```python snippets, in order
"""
import datetime
import hashlib
import importlib.metadata
import json
import os
import re
from typing import Optional, Sequence

from bert_hub.errors import BertHubError
from export import versions

PAGE_FILE = "README.md"
METADATA_FILE = "bert_hub.json"
METADATA_FORMAT = 1  # bump when bert_hub.json changes incompatibly
DEFAULT_PUBLISHER = "bert-hub"
DEFAULT_LANGUAGE = "en"
PACKAGES = ("tensorflow", "tensorflow-text", "tf-keras", "tensorflow-hub",
            "tf-models-official", "bert-hub")

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

_FORMAT_NAMES = {
    "tf1": "TF1 (google-research BERT)",
    "tf2": "TF2 (TF Model Garden)",
    "hf": "Hugging Face safetensors",
}


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


# ---------------------------------------------------------------------------
# The page.

_INTRO = """\
BERT (Bidirectional Encoder Representations from Transformers)
provides dense vector representations for natural language
by using a deep, pre-trained neural network with the Transformer
architecture. It was originally published by

  * Jacob Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova:
    ["BERT: Pre-training of Deep Bidirectional Transformers for
    Language Understanding"](https://arxiv.org/abs/1810.04805), 2018.

This TF Hub model uses the implementation of BERT from the
TensorFlow Models repository on GitHub at
[tensorflow/models/official/nlp](https://github.com/tensorflow/models/tree/master/official/nlp)
(`BertEncoderV2`).
It uses L={L} hidden layers (i.e., Transformer blocks),
a hidden size of H={H},
and A={A} attention heads.
"""

_UNCASED = """\
Text inputs have been normalized the "uncased" way, meaning that the text has
been lower-cased before tokenization into word pieces, and any accent markers
have been stripped."""
_CASED = """\
Text inputs have been normalized the "cased" way, meaning that the distinction
between lower and upper case as well as accent markers have been preserved."""
_WWM = """\
For training, random input masking has been applied to whole words (i.e.,
the pieces of each input word are randomly masked all at once or not)."""
_NO_WWM = """\
For training, random input masking has been applied independently to word pieces
(as in the original BERT paper)."""

_TRAINABLE = """\
All parameters in the module are trainable, and fine-tuning all parameters is
the recommended practice.
"""

# TF 2.16+ makes Keras 3 the tf.keras; hub.KerasLayer is a Keras 2 layer.
_IMPORTS = """\
With TensorFlow 2.16 or newer, `hub.KerasLayer` needs Keras 2 (`pip install
tf-keras`) selected before TensorFlow is imported:

```python
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf-keras (Keras 2)
import tensorflow as tf
import tensorflow_hub as hub
```
"""


def _literal(text: str) -> str:
  return json.dumps(text)  # a valid Python string literal, quotes escaped


def _overview(config, *, lower_case, language, dataset, whole_word_masking,
              source, packages) -> str:
  out = [_INTRO.format(L=config.num_layers, H=config.hidden_size, A=config.num_heads)]
  if source is not None:
    converter = " ".join(filter(None, ["bert-hub", packages.get("bert-hub")]))
    out.append(
        f"The weights are those of the {_FORMAT_NAMES.get(source.format, source.format)}"
        f"\ncheckpoint `{os.path.basename(source.source.rstrip(os.sep))}`, converted by "
        f"{converter}\n(SHA-256 of its files in `{METADATA_FILE}`).\n")
  lines = [f"This model has been pre-trained for {language_name(language)}"]
  lines.append(f"on {dataset}." if dataset else
               "(the pre-training data was not stated when it was exported).")
  if not is_caseless(language):
    lines.append(_UNCASED if lower_case else _CASED)
  if whole_word_masking is not None:
    lines.append(_WWM if whole_word_masking else _NO_WWM)
  out.append("\n".join(lines) + "\n")
  out.append(_TRAINABLE)
  return "\n".join(out)


def _usage_dict(config, *, model_path, lower_case) -> str:
  L, H = config.num_layers, config.hidden_size  # pylint: disable=invalid-name
  flag = "--lower-case" if lower_case else "--no-lower-case"
  return f"""\
This model expects three int32 Tensors as input: numeric token ids,
an input mask to hold out padding tokens,
and input types to mark different segments within one input (if any).
The companion **preprocessing model** transforms plain text inputs into this
format; make it from this model's vocabulary with
`bert-hub-export preprocessing --vocab {model_path}/assets/vocab.txt {flag} --output DIR`.

{_IMPORTS}
```python
seq_length = {usage_seq_length(config)}  # Your choice here.
inputs = dict(
    input_word_ids=tf.keras.layers.Input(shape=(seq_length,), dtype=tf.int32),
    input_mask=tf.keras.layers.Input(shape=(seq_length,), dtype=tf.int32),
    input_type_ids=tf.keras.layers.Input(shape=(seq_length,), dtype=tf.int32))
encoder = hub.KerasLayer(
    {_literal(model_path)},
    trainable=True)
outputs = encoder(inputs)
pooled_output = outputs["pooled_output"]      # [batch_size, {H}].
sequence_output = outputs["sequence_output"]  # [batch_size, seq_length, {H}].
```

The encoder's outputs are the `pooled_output` to represent each input sequence
as a whole, and the `sequence_output` to represent each input token in context.

For advanced uses, the intermediate activations of all L={L}
Transformer blocks (hidden layers) are returned as a Python list:
`outputs["encoder_outputs"][i]` is a Tensor
of shape `[batch_size, seq_length, {H}]`
with the outputs of the i-th Transformer block, for `0 <= i < L`.
The last value of the list is equal to `sequence_output`.

For TF Serving, the `serving_default` signature takes `input_word_ids`,
`input_mask` and `input_type_ids` and returns `pooled_output`, `sequence_output`,
`default` (= `pooled_output`) and `encoder_outputs_0` ... `encoder_outputs_{L - 1}`.
"""


def _usage_list(config, *, model_path, spec) -> str:
  H = config.hidden_size  # pylint: disable=invalid-name
  static = "" if spec.static_seq_length else f"""
In this version, Keras does not see the static `max_seq_length` of the inputs:
`sequence_output.shape` is `[None, None, {H}]` when the model is built (the
tensors have their full shape when run); version 2 fixed this.
"""
  return f"""\
This model is called as follows on tokenized text input,
an input mask to hold out padding tokens,
and segment types when input mixes with different segments.

{_IMPORTS}
```python
max_seq_length = {usage_seq_length(config)}  # Your choice here.
input_word_ids = tf.keras.layers.Input(shape=(max_seq_length,), dtype=tf.int32,
                                       name="input_word_ids")
input_mask = tf.keras.layers.Input(shape=(max_seq_length,), dtype=tf.int32,
                                   name="input_mask")
segment_ids = tf.keras.layers.Input(shape=(max_seq_length,), dtype=tf.int32,
                                    name="segment_ids")
bert_layer = hub.KerasLayer({_literal(model_path)},
                            trainable=True)
pooled_output, sequence_output = bert_layer([input_word_ids, input_mask, segment_ids])
```

There are two outputs:
a `pooled_output` of shape `[batch_size, {H}]` with
representations for the entire input sequences and
a `sequence_output` of shape `[batch_size, max_seq_length, {H}]`
with representations for each input token (in context).
{static}
The tokenization of input text can be performed in Python with the
`FullTokenizer` class from
[tensorflow/models/official/nlp/tools/tokenization.py](https://github.com/tensorflow/models/blob/master/official/nlp/tools/tokenization.py).
Its vocab_file is stored as a `tf.saved_model.Asset` and
the do_lower_case flag is stored as a `tf.Variable` object
on the SavedModel. They can be retrieved (using TensorFlow Hub 0.7.0 or newer)
as follows:

```python
from official.nlp.tools import tokenization

vocab_file = bert_layer.resolved_object.vocab_file.asset_path.numpy()
do_lower_case = bert_layer.resolved_object.do_lower_case.numpy()
tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
```

For TF Serving, the `serving_default` signature takes `input_word_ids`,
`input_mask` and `segment_ids` and returns `pooled_output` and `sequence_output`.
"""


def _changelog(version: int) -> str:
  out = ["## Changelog\n"]
  for number in range(version, 0, -1):
    spec = versions.get(number)
    out.append(f"### Version {number}\n")
    out.extend(f"  * {_wrap_item(line)}" for line in spec.changes)
    defects = []  # of the exported version; later versions list their fixes
    if number == version and not spec.dropout_when_training:
      defects.append("Dropout is not applied when re-training the SavedModel "
                     "(`training=True` computes the same as inference), possibly "
                     "resulting in a loss of quality. Fixed in version 2.")
    if number == version and not spec.static_seq_length:
      defects.append("A statically known `max_seq_length` of the inputs does not "
                     "reach `sequence_output` (its dimension 1 is unknown). "
                     "Fixed in version 2.")
    out.extend(f"  * {_wrap_item('Known defect: ' + line)}" for line in defects)
    out.append("")
  return "\n".join(out)


def _wrap_item(text: str, width: int = 76) -> str:
  words, lines, line = text.split(), [], ""
  for word in words:
    if line and len(line) + 1 + len(word) > width:
      lines.append(line)
      line = word
    else:
      line = f"{line} {word}" if line else word
  lines.append(line)
  return "\n    ".join(lines)


def render(*, config, version: int, lower_case: bool, publisher: str, name: str,
           language: str = DEFAULT_LANGUAGE, dataset: Optional[str] = None,
           whole_word_masking: Optional[bool] = None, model_path: str,
           source=None, packages: Optional[dict] = None) -> str:
  """The model page (Markdown) of an export, in the form of the TF Hub pages.

  Args:
    config: the BertConfig exported (L, H, A).
    version: the interface version, 1, 2 or 3.
    lower_case: the do_lower_case of the export ("uncased" iff True).
    publisher, name: the handle is `<publisher>/<name>/<version>`.
    language: a language code ("en", "zh-cn", ...).
    dataset: the pre-training data as stated by the user, or None.
    whole_word_masking: True, False, or None (not stated: no sentence).
    model_path: where the snippets load the model from (DIR/<version>).
    source: the checkpoint (`.source`, `.format`), or None to leave it out.
    packages: package versions (default: those installed).
  """
  spec = versions.get(version)
  packages = package_versions() if packages is None else packages
  meta = [("dataset", dataset or "unknown"), ("asset-path", model_path),
          ("fine-tunable", "true"), ("format", "saved_model_2"), ("language", language),
          ("module-type", "text-embedding"), ("network-architecture", "Transformer")]
  out = [f"# Module {publisher}/{name}/{version}",
         "Bidirectional Encoder Representations from Transformers (BERT).", ""]
  out += [f"<!-- {k}: {v} -->" for k, v in meta]
  out.append("")
  if not spec.dict_api:  # 002's form
    out += ["", "## TF2 SavedModel", "",
            "This is a [SavedModel in TensorFlow 2",
            "format](https://www.tensorflow.org/hub/tf2_saved_model).",
            f"It was written by TensorFlow {packages.get('tensorflow') or 2}; using it",
            "requires TensorFlow 2 and TensorFlow Hub 0.7.0 or newer.", ""]
  out += ["## Overview", "",
          _overview(config, lower_case=lower_case, language=language, dataset=dataset,
                    whole_word_masking=whole_word_masking, source=source,
                    packages=packages), "", "## Usage", ""]
  if spec.dict_api:
    out.append(_usage_dict(config, model_path=model_path, lower_case=lower_case))
  else:
    out.append(_usage_list(config, model_path=model_path, spec=spec))
  out += ["", _changelog(version)]
  return "\n".join(out).rstrip("\n") + "\n"


def python_blocks(page: str) -> list:
  """The ```python code blocks of a page, in order (to run its snippets)."""
  return re.findall(r"^```python\n(.*?)^```", page, flags=re.DOTALL | re.MULTILINE)


# ---------------------------------------------------------------------------
# The metadata file.

def package_versions(names: Sequence[str] = PACKAGES) -> dict:
  """Installed versions of `names` (None for a package not installed)."""
  out = {}
  for name in names:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def file_digest(path: str) -> dict:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return dict(path=os.path.abspath(path), bytes=os.path.getsize(path),
              sha256=h.hexdigest())


def file_digests(paths) -> list:
  """[file_digest(path) for each path]."""
  return [file_digest(path) for path in paths]


def metadata(*, config, version: int, lower_case: bool, publisher: str, name: str,
             language: str, dataset: Optional[str], whole_word_masking: Optional[bool],
             source, verification: dict, packages: Optional[dict] = None,
             digests: Optional[list] = None) -> dict:
  """The content of bert_hub.json (see the module docstring).

  digests: file_digests(source.files), if already computed.
  """
  spec = versions.get(version)
  return {
      "bert_hub_metadata": METADATA_FORMAT,
      "handle": f"{publisher}/{name}/{version}",
      "publisher": publisher,
      "name": name,
      "version": version,
      "interface": {
          "api": "dict" if spec.dict_api else "list",
          "inputs": list(spec.input_names),
          "outputs": (["pooled_output", "sequence_output", "encoder_outputs", "default"]
                      if spec.dict_api else list(spec.list_output_names)),
          "dropout_when_training": spec.dropout_when_training,
          "static_seq_length": spec.static_seq_length,
      },
      "checkpoint": {
          "path": os.path.abspath(source.source),
          "format": source.format,
          "files": file_digests(source.files) if digests is None else digests,
      },
      "config": config.to_dict(),
      "lower_case": lower_case,
      "stated": {"language": language, "dataset": dataset,
                 "whole_word_masking": whole_word_masking},
      "packages": package_versions() if packages is None else packages,
      "verification": dict(verification),
      "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
  }


def write(stage_dir: str, *, config, version: int, lower_case: bool, publisher: str,
          name: str, language: str, dataset: Optional[str],
          whole_word_masking: Optional[bool], source, verification: dict,
          model_path: str, digests: Optional[list] = None):
  """Writes README.md and bert_hub.json into `stage_dir`; returns their paths.

  `model_path` is where the export will be (DIR/<version>), not the staging dir.
  `verification` is what verify_encoder measured, e.g.
  dict(passed=True, max_diff=9e-7, tolerance=5e-5, compared=[...]).
  `digests`: file_digests(source.files), if computed already (export.lib
  computes them while it exports).
  """
  packages = package_versions()
  page = render(config=config, version=version, lower_case=lower_case,
                publisher=publisher, name=name, language=language, dataset=dataset,
                whole_word_masking=whole_word_masking, model_path=model_path,
                source=source, packages=packages)
  page_path = os.path.join(stage_dir, PAGE_FILE)
  with open(page_path, "w", encoding="utf-8") as f:
    f.write(page)
  meta = metadata(config=config, version=version, lower_case=lower_case,
                  publisher=publisher, name=name, language=language, dataset=dataset,
                  whole_word_masking=whole_word_masking, source=source,
                  verification=verification, packages=packages, digests=digests)
  meta_path = os.path.join(stage_dir, METADATA_FILE)
  with open(meta_path, "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2, ensure_ascii=False)
    f.write("\n")
  return page_path, meta_path
