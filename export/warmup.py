"""The warmup requests every export writes into `assets.extra/`.

TF Serving replays `DIR/<version>/assets.extra/tf_serving_warmup_requests`
(TFRecord of PredictionLog) when it loads a version, before it marks the
version available, so the first user request does not pay for building the
graph's executors and allocating its buffers. A request that fails there makes
the server refuse the version, so every request here is checked against the
signature when written (export/serving.py) and run by the tests in a TF1
session as the server runs it.

  encoder_requests(config, version)   ids of a padded two-segment batch, at
                                      seq_length 128 (or max_position_embeddings)
  preprocessing_requests()            {"sentences": [...]}
  text_embedding_requests()           serving_default and pairs requests
  write(stage, requests, *, output_dir, report)
"""
from typing import Mapping, Sequence

import numpy as np

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

# Real text: a short sentence, a long one (packed to seq_length, truncated if
# it is longer), punctuation, non-ASCII, and the empty string.
SENTENCES = (
    "Hello, world!",
    "BERT turns sentences into vectors that a server can return in one request.",
    "Café, naïve, straße; 中国人 — “quotes” and emoji 🙂.",
    "",
)
SECOND_SENTENCES = (
    "Greetings to everyone.",
    "TF Serving replays these requests before the model takes traffic.",
    "Accents and other scripts are part of the warmup too.",
    "The first segment of this pair is empty.",
)
# A typical client seq_length; exports with a smaller max_position_embeddings
# use that instead.
ENCODER_SEQ_LENGTH = 128


def _strings(values) -> np.ndarray:
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def encoder_requests(config, version) -> list[dict[str, np.ndarray]]:
  """Two requests (batch 1 and 4) for an encoder's `serving_default`.

  Args:
    config: the encoder's BertConfig.
    version: its export/versions.py Version (for the input names: v1 and v2
      call the segment ids `segment_ids`).
  """
  from bert_hub.encoder import INPUT_NAMES, sample_inputs  # pylint: disable=g-import-not-at-top
  seq_length = min(ENCODER_SEQ_LENGTH, config.max_position_embeddings)
  requests = []
  for batch in (1, 4):
    inputs = sample_inputs(config, batch=batch, seq_length=seq_length, seed=batch)
    requests.append({name: inputs[canonical]
                     for name, canonical in zip(version.input_names, INPUT_NAMES)})
  return requests


def preprocessing_requests() -> list[dict[str, np.ndarray]]:
  """Two requests (batch 1 and all of SENTENCES) for `serving_default`."""
  return [{"sentences": _strings(SENTENCES[:1])}, {"sentences": _strings(SENTENCES)}]


def text_embedding_requests() -> dict[str, list[dict[str, np.ndarray]]]:
  """Requests for both signatures of a text-embedding export."""
  return {
      "serving_default": preprocessing_requests(),
      "pairs": [{"sentences": _strings(SENTENCES[:1]),
                 "second_sentences": _strings(SECOND_SENTENCES[:1])},
                {"sentences": _strings(SENTENCES),
                 "second_sentences": _strings(SECOND_SENTENCES)}],
  }


def model_name(output_dir: str) -> str:
  """The ModelSpec name in the records: DIR's name (TF Serving does not check it)."""
  import os  # pylint: disable=g-import-not-at-top
  return os.path.basename(os.path.abspath(output_dir)) or "model"


def write(stage: str, requests: Sequence[Mapping] | Mapping[str, Sequence], *,
          output_dir: str, report) -> str:
  """Writes the warmup file into the staged SavedModel `stage`; returns its path."""
  from export import serving  # pylint: disable=g-import-not-at-top
  count = (sum(len(r) for r in requests.values()) if isinstance(requests, Mapping)
           else len(requests))
  report("warmup", f"{count} requests -> {serving.WARMUP_RELATIVE_PATH}")
  return serving.write_warmup_requests(export_dir=stage, requests=requests,
                                       model_name=model_name(output_dir))
