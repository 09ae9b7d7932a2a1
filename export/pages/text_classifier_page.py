"""The model page and bert_hub.json of a text-classifier export.

  files(config=, head=, labels=, seq_length=, tokenizer=, normalization=,
        source=, verification=, model_path=, model_name=, digests=)
      -> {"README.md": page, "bert_hub.json": text}

The page states the labels (in the head's order), the head function and how
it was decided, every signature with its shapes, and curl requests for
`:predict` (serving_default and pairs) and `:classify` (or `:regress`) with
the shape of their responses; bert_hub.json has the same facts for machines
(export/pages/metadata.py `common(...)` plus the head and signatures).
"""
import json
import os
from typing import Optional

from bert_hub.checkpoints import heads
from export.pages import metadata as metadata_lib
from export.pages.encoder_page import tokenizer_sentence
from export.pages.metadata import METADATA_FILE, PAGE_FILE

_FORMAT_NAMES = {"tf1": "TF1 run_classifier.py (google-research BERT)",
                 "hf": "Hugging Face BertForSequenceClassification (safetensors)",
                 "tf2": "TF2 (TF Model Garden)"}
_FUNCTION_WORDS = {
    heads.SOFTMAX: "softmax: single-label classification, `probabilities` sum to 1",
    heads.SIGMOID: "sigmoid: multi-label classification, one independent "
                   "probability per label",
    heads.IDENTITY: "none: regression, the head's one output is the `score`",
}


def _signatures(*, regression: bool, n: int, s: int) -> str:
  if regression:
    outputs = ("    score            float32 [B]      the head's one output\n"
               "    logits           float32 [B, 1]")
    example = ("regression (method tensorflow/serving/regress; `:regress`)\n"
               "  inputs:  inputs    string [B]   serialized tf.Examples: bytes "
               "feature `sentences`,\n"
               "                                  optional `second_sentences` (a pair)\n"
               "  outputs: outputs   float32 [B]  the score")
  else:
    outputs = (f"    probabilities    float32 [B, {n}]   softmax/sigmoid of the logits\n"
               "    label            string [B]       name of the most probable label\n"
               f"    logits           float32 [B, {n}]   the head's raw outputs")
    example = ("classification (method tensorflow/serving/classify; `:classify`)\n"
               "  inputs:  inputs    string [B]      serialized tf.Examples: bytes "
               "feature `sentences`,\n"
               "                                     optional `second_sentences` (a pair)\n"
               f"  outputs: classes   string [B, {n}]   the label names, in head order\n"
               f"           scores    float32 [B, {n}]  the probabilities")
  return f"""\
```
B = batch size, S = {s} tokens per input ([CLS] ... [SEP] ... [SEP], trimmed round-robin)
serving_default
  inputs:  sentences        string [B]
  outputs:
{outputs}
pairs
  inputs:  sentences, second_sentences   string [B] each
  outputs: as serving_default, for [CLS] sentence [SEP] second_sentence [SEP]
{example}
```
"""


def _curl(*, regression: bool, name: str, labels) -> str:
  predict = f"""\
```sh
curl -s -d '{{"signature_name": "serving_default", "inputs": {{"sentences": ["What a great movie!"]}}}}' \\
  http://localhost:8501/v1/models/{name}:predict
curl -s -d '{{"signature_name": "pairs", "inputs": {{"sentences": ["A man plays a guitar."], "second_sentences": ["Someone makes music."]}}}}' \\
  http://localhost:8501/v1/models/{name}:predict
```
"""
  if regression:
    example = f"""\
```sh
curl -s -d '{{"signature_name": "regression", "examples": [{{"sentences": "how to export BERT", "second_sentences": "Exporting SavedModels for TF Serving."}}]}}' \\
  http://localhost:8501/v1/models/{name}:regress
```
answers `{{"results": [score, ...]}}`, one score per example.
"""
    answer = '`{"outputs": {"score": [...], "logits": [[...]]}}`'
  else:
    pairs = ", ".join(f'["{label}", p{i}]' for i, label in enumerate(labels[:3]))
    example = f"""\
```sh
curl -s -d '{{"signature_name": "classification", "examples": [{{"sentences": "What a great movie!"}}, {{"sentences": "A man plays a guitar.", "second_sentences": "Someone makes music."}}]}}' \\
  http://localhost:8501/v1/models/{name}:classify
```
answers `{{"results": [[{pairs}{", ..." if len(labels) > 3 else ""}], ...]}}`: for each
example every label name with its probability, in head order.
"""
    answer = ('`{"outputs": {"probabilities": [[...]], "label": ["..."], '
              '"logits": [[...]]}}`')
  return (f"TF Serving's REST API (`tensorflow_model_server --rest_api_port=8501 "
          f"--model_name={name} --model_base_path=...`):\n\n{predict}\n"
          f"`:predict` answers {answer}.\n\n{example}")


def render(*, config, head, labels, seq_length, tokenizer, normalization, source,
           model_path: str, model_name: str, verification: dict) -> str:
  regression = head.function == heads.IDENTITY
  n = head.num_labels
  checkpoint = os.path.basename(source.source.rstrip(os.sep)) if source else "?"
  label_rows = "\n".join(f"| {i} | `{label}` |" for i, label in enumerate(labels))
  return f"""\
# {model_name}: BERT {"cross-encoder (regression)" if regression else "text classifier"}

A fine-tuned BERT {"regression head" if regression else f"classifier with {n} labels"}
as one TF Serving servable: text in, {"scores" if regression else "label names and probabilities"}
out, in one request (preprocessing, encoder and head in one graph).

## Overview

* Encoder: BERT with L={config.num_layers} layers, H={config.hidden_size},
  A={config.num_heads} (tf-models `BertEncoderV2`).
* Weights: the {_FORMAT_NAMES.get(head.format, head.format)} checkpoint
  `{checkpoint}` (SHA-256 of its files in `{METADATA_FILE}`).
* Head: tf-models `ClassificationHead` over the pooled output, {n} output{"s" if n != 1 else ""};
  function {_FUNCTION_WORDS[head.function]} ({head.function_reason}).
* Inputs are tokenized in the graph ({normalization} normalization), packed to
  S={seq_length} tokens. {tokenizer_sentence(tokenizer)}

## Labels

In the order of the head's outputs (also in `assets/labels.txt` and from
`obj.get_labels()`):

| index | label |
|---|---|
{label_rows}

## Signatures

{_signatures(regression=regression, n=n, s=seq_length)}
A `tf.Example` is a pair if it has a `second_sentences` feature (even empty);
one batch may mix pairs and single sentences.

## Requests

{_curl(regression=regression, name=model_name, labels=labels)}
## Python

```python
import tensorflow as tf
model = tf.saved_model.load({json.dumps(model_path)})
outputs = model(tf.constant(["What a great movie!"]))
labels = model.get_labels()   # string [{n}]
```

`hub.KerasLayer({json.dumps(model_path)})` gives the same dict (needs
`TF_USE_LEGACY_KERAS=1` and tf-keras with TensorFlow 2.16+).

## Verification

After saving, every signature of the reloaded SavedModel was compared with the
in-memory model ({verification.get("compared", "")}): largest difference
{verification.get("max_diff", 0):.2g} (tolerance {verification.get("tolerance", 0):g}).
"""


def metadata(*, config, head, labels, seq_length, tokenizer, normalization, source,
             verification: dict, serving_precision: str = "float32",
             digests: Optional[list] = None, packages: Optional[dict] = None) -> dict:
  meta = metadata_lib.common(kind="text-classifier", source=source,
                             verification=verification,
                             serving_precision=serving_precision, packages=packages,
                             digests=digests)
  regression = head.function == heads.IDENTITY
  meta.update({
      "head": {"num_labels": head.num_labels, "labels": list(labels),
               "function": head.function, "function_reason": head.function_reason,
               "format": head.format},
      "seq_length": seq_length,
      "normalization": normalization,
      "config": config.to_dict(),
      "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
      "signatures": {
          "serving_default": {"method": "tensorflow/serving/predict",
                              "inputs": ["sentences"],
                              "outputs": ["score", "logits"] if regression else
                              ["probabilities", "label", "logits"]},
          "pairs": {"method": "tensorflow/serving/predict",
                    "inputs": ["sentences", "second_sentences"],
                    "outputs": ["score", "logits"] if regression else
                    ["probabilities", "label", "logits"]},
          ("regression" if regression else "classification"): {
              "method": "tensorflow/serving/regress" if regression
                        else "tensorflow/serving/classify",
              "inputs": ["inputs"],
              "outputs": ["outputs"] if regression else ["classes", "scores"],
              "example_features": ["sentences", "second_sentences (optional)"]},
      },
  })
  return meta


def files(*, config, head, labels, seq_length, tokenizer, normalization, source,
          verification: dict, model_path: str, model_name: str,
          serving_precision: str = "float32", digests: Optional[list] = None) -> dict:
  """{README.md: the page, bert_hub.json: the metadata}, as text."""
  page = render(config=config, head=head, labels=labels, seq_length=seq_length,
                tokenizer=tokenizer, normalization=normalization, source=source,
                model_path=model_path, model_name=model_name, verification=verification)
  page += metadata_lib.precision_section(serving_precision)
  meta = metadata(config=config, head=head, labels=labels, seq_length=seq_length,
                  tokenizer=tokenizer, normalization=normalization, source=source,
                  verification=verification, serving_precision=serving_precision,
                  digests=digests)
  return {PAGE_FILE: page, METADATA_FILE: metadata_lib.dumps(meta)}
