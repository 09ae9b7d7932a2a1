"""The model page and bert_hub.json of a text-embedding export.

Every text-embedding export `DIR/<version>/` holds, next to its SavedModel:

  README.md      what the servable computes (the embedding head: pooling,
                 Dense, normalization, and where it came from), the tokenizer
                 settings and where each came from, every signature with its
                 shapes, a Python example (hub.KerasLayer) and a curl request
                 for TF Serving, both runnable as written.
  bert_hub.json  export/pages/metadata.py's common keys, plus the config, the
                 head, seq_length, the signatures and the tokenizer settings.

  files(config=, head=, seq_length=, signature_names=, tokenizer=, ...)
      -> {"README.md": page, "bert_hub.json": text}
  python_blocks(page), curl_bodies(page)   the page's examples, for the tests
"""
import json
import os
import re
from typing import Optional, Sequence

from export.pages import metadata as metadata_lib
from export.pages.encoder_page import tokenizer_sentence
from export.pages.metadata import METADATA_FILE, PAGE_FILE

EXAMPLE_SENTENCES = ("The cat sits outside.", "A man is playing a guitar.")


def _signature_rows(*, head, seq_length: int, hidden_size: int, dimension: int,
                    signature_names: Sequence[str]) -> list:
  S, H, D = seq_length, hidden_size, dimension  # pylint: disable=invalid-name
  default = (f" (after the default prompt `{head.default_prompt_name}`: "
             f"{json.dumps(head.default_prompt)})" if head.default_prompt_name else "")
  rows = ["| signature | inputs | outputs |", "|---|---|---|",
          f"| `serving_default` | `sentences` string `[batch]` | `embedding` float32 "
          f"`[batch, {D}]`{default} |",
          f"| `pairs` | `sentences`, `second_sentences` string `[batch]` each | "
          f"`embedding` float32 `[batch, {D}]` of `[CLS] sentence [SEP] second_sentence "
          f"[SEP]` trimmed to {S} tokens |",
          f"| `token_embeddings` | `sentences` string `[batch]` | `sequence_output` float32 "
          f"`[batch, {S}, {H}]`, `input_mask` int32 `[batch, {S}]` (1 on tokens) |"]
  prompts = dict(head.prompts)
  for name in signature_names:
    if name in prompts:
      rows.append(f"| `{name}` | `sentences` string `[batch]` | `embedding` float32 "
                  f"`[batch, {D}]` of the prompt {json.dumps(prompts[name])} + sentence |")
  return rows


def render(*, config, head, seq_length: int, signature_names: Sequence[str],
           tokenizer, normalization: str, model_path: str, source=None,
           packages: Optional[dict] = None) -> str:
  """The page (Markdown) of a text-embedding export.

  Args:
    config: the BertConfig exported (L, H, A).
    head: the export's kinds.text_embedding.Head.
    seq_length: S, the tokens per input.
    signature_names: every signature, in order.
    tokenizer: the bert_hub.tokenizer_settings.TokenizerSettings used.
    normalization: "faithful" or "tf_text".
    model_path: where the examples load the model from (DIR/<version>).
    source: the checkpoint read (`.source`, `.format`), or None.
    packages: package versions (default: those installed).
  """
  packages = metadata_lib.package_versions() if packages is None else packages
  D = head.dimension(config.hidden_size)  # pylint: disable=invalid-name
  name = os.path.basename(os.path.dirname(os.path.abspath(model_path)))
  version = os.path.basename(os.path.abspath(model_path))
  checkpoint = (os.path.basename(source.source.rstrip(os.sep)) if source is not None
                else "the checkpoint")
  out = [f"# Text embedding {name}/{version}",
         "Sentences in, one embedding per sentence out, in one request.", ""]
  meta = [("asset-path", model_path), ("format", "saved_model_2"),
          ("module-type", "text-embedding"), ("network-architecture", "Transformer")]
  out += [f"<!-- {k}: {v} -->" for k, v in meta]
  converter = " ".join(filter(None, ["bert-hub", packages.get("bert-hub")]))
  out += ["", "## Overview", "",
          f"A BERT encoder (L={config.num_layers} hidden layers, hidden size "
          f"H={config.hidden_size}, A={config.num_heads} attention heads) from "
          f"`{checkpoint}`, converted by {converter} (SHA-256 of its files in "
          f"`{METADATA_FILE}`), with its tokenizer and its embedding in the graph: a "
          "client sends strings and gets vectors back.", "",
          f"The embedding (D={D}) is computed as {head.describe()}, taken from "
          f"{head.origin}.",
          "", tokenizer_sentence(tokenizer) + f" Each input is packed to "
          f"seq_length={seq_length} tokens (longer ones are truncated) and tokenized "
          f"with `{normalization}` normalization; the encoder computes on each "
          "request's own lengths (rows ordered by length, chunks trimmed to their "
          "longest), so short requests do not pay for seq_length.", ""]
  if head.prompts:
    out += ["The model's prompts are prepended in the graph, as sentence-transformers' "
            "`encode(..., prompt_name=...)` does" +
            ("" if head.include_prompt else ", and left out of the pooling "
             "(include_prompt false)") + "; each has its own signature.", ""]
  out += ["## Signatures (TF Serving)", ""]
  out += _signature_rows(head=head, seq_length=seq_length, hidden_size=config.hidden_size,
                         dimension=D, signature_names=signature_names)
  out += ["", f"A REST response carries {D} floats per sentence; only "
          f"`token_embeddings` returns {seq_length} x {config.hidden_size} per sentence "
          "(zeros where `input_mask` is 0).", ""]
  out += ["## Usage", "", "In Python (`hub.KerasLayer` or `tf.saved_model.load` call the "
          "embedding; with TensorFlow 2.16 or newer, hub.KerasLayer needs tf-keras):", "",
          "```python", "import os",
          'os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is tf-keras (Keras 2)',
          "import tensorflow as tf", "import tensorflow_hub as hub",
          "import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)", "",
          f"embed = hub.KerasLayer({json.dumps(model_path)})",
          f"embeddings = embed(tf.constant({json.dumps(list(EXAMPLE_SENTENCES))}))"
          f"  # [2, {D}]",
          "similarity = tf.reduce_sum(tf.math.l2_normalize(embeddings[0], -1) *",
          "                           tf.math.l2_normalize(embeddings[1], -1))",
          "print(embeddings.shape, float(similarity))", "```", ""]
  body = {"instances": [{"sentences": s} for s in EXAMPLE_SENTENCES]}
  model_name = name or "embed"
  out += [f"On TF Serving (model name `{model_name}`, REST port 8501):", "", "```sh",
          f"curl -d '{json.dumps(body, ensure_ascii=False)}' \\",
          f"    http://localhost:8501/v1/models/{model_name}:predict",
          f'# {{"predictions": [[{D} floats], [{D} floats]]}}']
  for prompt_name, _ in head.prompts[:1]:
    prompt_body = {"signature_name": prompt_name,
                   "instances": [{"sentences": EXAMPLE_SENTENCES[0]}]}
    out += [f"curl -d '{json.dumps(prompt_body, ensure_ascii=False)}' \\",
            f"    http://localhost:8501/v1/models/{model_name}:predict"]
  out += ["```", ""]
  return "\n".join(out).rstrip("\n") + "\n"


def python_blocks(page: str) -> list:
  """The ```python code blocks of a page, in order."""
  return re.findall(r"^```python\n(.*?)^```", page, flags=re.DOTALL | re.MULTILINE)


def curl_bodies(page: str) -> list:
  """The JSON bodies of the page's curl commands (curl -d '...'), parsed."""
  return [json.loads(body) for body in re.findall(r"^curl -d '(.*)' \\$", page,
                                                    flags=re.MULTILINE)]


def metadata(*, config, head, seq_length: int, signature_names: Sequence[str],
             tokenizer, normalization: str, source, verification: dict,
             serving_precision: str = "float32",
             packages: Optional[dict] = None, digests: Optional[list] = None) -> dict:
  meta = metadata_lib.common(kind="text-embedding", source=source,
                             verification=verification,
                             serving_precision=serving_precision, packages=packages,
                             digests=digests)
  meta.update({
      "config": config.to_dict(),
      "seq_length": seq_length,
      "embedding": {
          "dimension": head.dimension(config.hidden_size),
          "pooling": list(head.pooling),
          "include_prompt": head.include_prompt,
          "dense": [dict(path=d.path, in_features=d.in_features,
                         out_features=d.out_features, activation=d.activation,
                         bias=d.bias is not None) for d in head.dense],
          "normalize": head.normalize,
          "origin": head.origin,
      },
      "prompts": dict(head.prompts),
      "default_prompt_name": head.default_prompt_name,
      "signatures": list(signature_names),
      "tokenizer": tokenizer.to_dict(),
      "normalization": normalization,
  })
  return meta


def files(*, config, head, seq_length: int, signature_names: Sequence[str], tokenizer,
          normalization: str, source, verification: dict, model_path: str,
          serving_precision: str = "float32", digests: Optional[list] = None) -> dict:
  """{README.md: the page, bert_hub.json: the metadata}, as text.

  `model_path` is where the export will be (DIR/<version>), not the staging dir.
  """
  packages = metadata_lib.package_versions()
  page = render(config=config, head=head, seq_length=seq_length,
                signature_names=signature_names, tokenizer=tokenizer,
                normalization=normalization, model_path=model_path, source=source,
                packages=packages)
  page += metadata_lib.precision_section(serving_precision)
  meta = metadata(config=config, head=head, seq_length=seq_length,
                  signature_names=signature_names, tokenizer=tokenizer,
                  normalization=normalization, source=source, verification=verification,
                  serving_precision=serving_precision, packages=packages, digests=digests)
  return {PAGE_FILE: page, METADATA_FILE: metadata_lib.dumps(meta)}
