"""The text-embedding servable against the benchmark's peers (benchmarks/text.py),
on the benchmark's own sentences: all-MiniLM-L6-v2, real weights (slow).

References, independent of our graph: SentenceTransformer(dir).encode (PyTorch)
and ONNX Runtime running the Hugging Face BertModel exported by
torch.onnx.export (HF fast tokenizer, mean pooling + normalize in numpy).
onnxruntime, onnx and onnxscript come with the .[test] extra (`make test` installs
them): never in the core install.
"""
import bert_hub  # noqa: F401  (legacy Keras first)

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the TF Text ops)

from benchmarks import text
from export import lib
from tests import fixtures

# Grappler on (tests/conftest.py): bfloat16's accuracy depends on its fusions.
pytestmark = [pytest.mark.slow, pytest.mark.optimized_graphs]
TOLERANCE = 1e-5  # float32, per element of L2-normalized embeddings

# bfloat16's cosine to float32 (MiniLM, these sentences): oneDNN's bfloat16
# kernels (CPUs with AVX512 or AMX) accumulate in float32 inside fused ops:
# >= 0.9999 (0.99997 on the Xeon of 2026-12-02). Without them (AVX2 only: an AMD
# EPYC here, 2026-12-06) 0.99954, the same as with TF_ENABLE_ONEDNN_OPTS=0
# (0.9995413 and 0.9995412): the computation without oneDNN.
BF16_FLAGS = ("avx512bw", "avx512_bf16", "amx_bf16", "avx_ne_convert")


def onednn_bfloat16() -> bool:
  """Whether this CPU has what oneDNN's bfloat16 kernels need (/proc/cpuinfo)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = set(next((l for l in f if l.startswith("flags")), "").split())
  except OSError:
    return False
  return any(flag in flags for flag in BF16_FLAGS)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, minilm_demo):
  """The published MiniLM exported float32 (the demo's export: default options)
  and bfloat16 (default seq_length), and the benchmark's sentences: short ones
  and texts filling 128 tokens."""
  root = tmp_path_factory.mktemp("bench_text")
  paths = {"float32": str(minilm_demo["output"] / "minilm_l6_embed" / "1"),
           "bfloat16": lib.export_text_embedding(
               checkpoint=fixtures.minilm_dir(), output_dir=str(root / "bfloat16"),
               serving_precision="bfloat16", report=lib.quiet_report).path}
  loads, short = text.workloads(count=96)
  sentences = short + loads["full128"][1][0][:8] + ["", "x"]
  embed = tf.saved_model.load(paths["float32"]).signatures["serving_default"]
  ours = np.concatenate([embed(sentences=tf.constant(sentences[i:i + 32]))["embedding"]
                         .numpy() for i in range(0, len(sentences), 32)])
  return dict(root=root, paths=paths, sentences=sentences, ours=ours, short=len(short))


def test_equals_sentence_transformers(minilm):
  from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  model = SentenceTransformer(fixtures.minilm_dir(), device="cpu")
  want = model.encode(minilm["sentences"], batch_size=32, convert_to_numpy=True)
  np.testing.assert_allclose(minilm["ours"], want, rtol=0, atol=TOLERANCE)


def test_equals_onnx_runtime(minilm):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top  (the .[test] extra)
  import transformers  # pylint: disable=g-import-not-at-top
  path = str(minilm["root"] / "minilm.onnx")
  text.export_onnx(fixtures.minilm_dir(), path)
  session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  tokenizer = transformers.AutoTokenizer.from_pretrained(fixtures.minilm_dir())
  got = []
  for i in range(0, len(minilm["sentences"]), 32):
    enc = tokenizer(minilm["sentences"][i:i + 32], padding=True, truncation=True,
                    max_length=256, return_tensors="np")
    hidden = session.run(None, {k: enc[k].astype(np.int64) for k in (
        "input_ids", "attention_mask", "token_type_ids")})[0]  # [b, T, H]
    got.append(text._normalized_mean(hidden, enc["attention_mask"]))  # pylint: disable=protected-access
  np.testing.assert_allclose(minilm["ours"], np.concatenate(got), rtol=0, atol=TOLERANCE)


def test_bfloat16_cosine_to_float32(minilm):
  """--serving-precision bfloat16 on real sentences: cosine to float32 >= 0.9999
  with oneDNN's bfloat16 kernels, >= 0.999 without (BF16_FLAGS)."""
  loaded = tf.saved_model.load(minilm["paths"]["bfloat16"])
  # 32 of the short sentences, the 128-token texts, "" and "x" (the lowest
  # cosine of all 106 on an AVX2 CPU, 0.99954; the others' >= 0.99959): without
  # bfloat16 hardware a sentence costs about 7x float32's (the benchmark
  # measures the cosine on all the short ones).
  rows = list(range(32)) + list(range(minilm["short"], len(minilm["sentences"])))
  sentences = [minilm["sentences"][i] for i in rows]
  got = np.concatenate([loaded.signatures["serving_default"](
      sentences=tf.constant(sentences[i:i + 32]))["embedding"].numpy()
                        for i in range(0, len(sentences), 32)])
  cosine = np.sum(got * minilm["ours"][rows], axis=1)  # both L2-normalized
  kernels = onednn_bfloat16()
  assert cosine.min() >= (0.9999 if kernels else 0.999), (cosine.min(),
                                                        "oneDNN bfloat16:", kernels)
  float32 = loaded.signatures["serving_float32"](sentences=tf.constant(sentences[:32]))
  np.testing.assert_allclose(float32["embedding"], minilm["ours"][:32], rtol=0,
                             atol=TOLERANCE)


def test_plot_draws_every_contender_of_every_workload(tmp_path):
  """benchmarks/text.py's plot (text.png): a panel per workload, a bar per
  contender (ONNX Runtime among them) at its median sentences/s."""
  times = {"short32": {"batch": 32, "seconds": {"ours": [0.2, 0.25, 0.3],
                                                "ort": [0.4, 0.5, 0.6]}},
           "short1": {"batch": 1, "seconds": {"ours": [0.02], "ort": [0.01],
                                              "st": [0.03, 0.01]}}}
  png = tmp_path / "text.png"
  drawn = text.plot({"times": times, "started": "2026-12-02 08:00", "cores": 2,
                     "load_average_start": [0.5]}, str(png))
  assert drawn == {
      "short sentences, batch 32": {text.LABEL["ours"]: 32 / 0.25, text.LABEL["ort"]: 32 / 0.5},
      "short sentences, batch 1": {text.LABEL["ours"]: 1 / 0.02, text.LABEL["ort"]: 1 / 0.01,
                                   text.LABEL["st"]: 1 / 0.02}}
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
