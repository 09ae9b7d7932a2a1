"""The model page and bert_hub.json of an encoder export, in the TF Hub pages' form.

Every encoder export `DIR/<version>/` holds, next to its SavedModel:

  README.md      the model page, in the form of the TF Hub BERT pages
                 (shared/seeds/000_*.txt for version 3, 002_*.txt for versions 1
                 and 2): title with the handle `<publisher>/<name>/<version>`, the
                 metadata comment lines, the overview with the real L, H and A
                 and the tokenizer settings with where they came from, a usage
                 snippet for that version's API that runs as written, the
                 outputs with their real sizes, and the changelog up to the
                 exported version with its known defects (export/versions.py).
  bert_hub.json  the machine-readable record (export/pages/metadata.py), plus
                 the handle, config, interface, tokenizer settings and the
                 stated facts (export/pages/naming.py).

`hub.load`, `hub.KerasLayer` and TF Serving read only `saved_model.pb`,
`variables/`, `assets/` (and `assets.extra/` for warmup), so the two files
change nothing for them.

  page = render(config=..., version=3, lower_case=True, publisher=..., name=...,
                language="en", dataset=None, whole_word_masking=None,
                model_path="models/bert/3")
  files(...) -> {"README.md": page, "bert_hub.json": text}
  python_blocks(page) -> the page's ```python snippets, in order
"""
import json
import os
import re
from typing import Optional

from export import versions
from export.pages import metadata as metadata_lib
from export.pages.metadata import METADATA_FILE, PAGE_FILE
from export.pages.naming import (DEFAULT_LANGUAGE, is_caseless, language_name,
                                 usage_seq_length)

_FORMAT_NAMES = {
    "tf1": "TF1 (google-research BERT)",
    "tf2": "TF2 (TF Model Garden)",
    "hf": "Hugging Face safetensors",
    "hf_h5": "Hugging Face TensorFlow (tf_model.h5)",
}



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


def stored_as(source) -> str:
  """' (stored as bfloat16, widened to float32)' for a half-precision checkpoint, else ''."""
  dtype = getattr(source, "dtype", "float32")
  return "" if dtype == "float32" else f" (stored as {dtype}, widened to float32)"


def _overview(config, *, lower_case, language, dataset, whole_word_masking,
              source, packages, tokenizer=None) -> str:
  out = [_INTRO.format(L=config.num_layers, H=config.hidden_size, A=config.num_heads)]
  if source is not None:
    converter = " ".join(filter(None, ["bert-hub", packages.get("bert-hub")]))
    out.append(
        f"The weights are those of the {_FORMAT_NAMES.get(source.format, source.format)}"
        f"\ncheckpoint `{os.path.basename(source.source.rstrip(os.sep))}`"
        f"{stored_as(source)}, converted by "
        f"{converter}\n(SHA-256 of its files in `{METADATA_FILE}`).\n")
  lines = [f"This model has been pre-trained for {language_name(language)}"]
  lines.append(f"on {dataset}." if dataset else
               "(the pre-training data was not stated when it was exported).")
  if not is_caseless(language):
    lines.append(_UNCASED if lower_case else _CASED)
  if tokenizer is not None:
    lines.append(tokenizer_sentence(tokenizer))
  if whole_word_masking is not None:
    lines.append(_WWM if whole_word_masking else _NO_WWM)
  out.append("\n".join(lines) + "\n")
  out.append(_TRAINABLE)
  return "\n".join(out)


def tokenizer_sentence(tokenizer) -> str:
  """One sentence: the tokenizer settings exported and where each came from."""
  parts = [f"`do_lower_case={tokenizer.lower_case}` "
           f"({tokenizer.sources.get('lower_case', 'default')})"]
  for name in ("strip_accents", "tokenize_chinese_chars"):
    if name in tokenizer.sources:
      parts.append(f"`{name}={getattr(tokenizer, name)}` ({tokenizer.sources[name]})")
  return "The tokenizer settings exported are " + ", ".join(parts) + "."


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
    # The exported version's own defects; later versions list their fixes.
    defects = spec.defects if number == version else ()
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
           source=None, packages: Optional[dict] = None, tokenizer=None) -> str:
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
    tokenizer: the bert_hub.tokenizer_settings.TokenizerSettings used, to state
      where the casing came from (None: not stated).
  """
  spec = versions.get(version)
  packages = metadata_lib.package_versions() if packages is None else packages
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
                    packages=packages, tokenizer=tokenizer), "", "## Usage", ""]
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

def metadata(*, config, version: int, lower_case: bool, publisher: str, name: str,
             language: str, dataset: Optional[str], whole_word_masking: Optional[bool],
             source, verification: dict, tokenizer=None, serving_precision: str = "float32",
             packages: Optional[dict] = None, digests: Optional[list] = None) -> dict:
  """The content of bert_hub.json (see the module docstring).

  digests: metadata.file_digests(source.files), if already computed.
  """
  spec = versions.get(version)
  meta = metadata_lib.common(kind="encoder", source=source, verification=verification,
                             serving_precision=serving_precision, packages=packages,
                             digests=digests)
  meta.update({
      "handle": f"{publisher}/{name}/{version}",
      "publisher": publisher,
      "name": name,
      "version": version,
      "interface": {
          "api": "dict" if spec.dict_api else "list",
          "inputs": list(spec.input_names),
          "outputs": list(spec.output_names),
          "dropout_when_training": spec.dropout_when_training,
          "static_seq_length": spec.static_seq_length,
      },
      "config": config.to_dict(),
      "lower_case": lower_case,
      "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
      "stated": {"language": language, "dataset": dataset,
                 "whole_word_masking": whole_word_masking},
  })
  return meta


def files(*, config, version: int, lower_case: bool, publisher: str, name: str,
          language: str, dataset: Optional[str], whole_word_masking: Optional[bool],
          source, verification: dict, model_path: str, tokenizer=None,
          serving_precision: str = "float32", digests: Optional[list] = None) -> dict:
  """{README.md: the page, bert_hub.json: the metadata}, as text.

  `model_path` is where the export will be (DIR/<version>), not the staging dir.
  """
  packages = metadata_lib.package_versions()
  page = render(config=config, version=version, lower_case=lower_case,
                publisher=publisher, name=name, language=language, dataset=dataset,
                whole_word_masking=whole_word_masking, model_path=model_path,
                source=source, packages=packages, tokenizer=tokenizer)
  page += metadata_lib.precision_section(serving_precision)
  meta = metadata(config=config, version=version, lower_case=lower_case,
                  publisher=publisher, name=name, language=language, dataset=dataset,
                  whole_word_masking=whole_word_masking, source=source,
                  verification=verification, tokenizer=tokenizer, packages=packages,
                  serving_precision=serving_precision, digests=digests)
  return {PAGE_FILE: page, METADATA_FILE: metadata_lib.dumps(meta)}
