"""Tiny SavedModels for the TF Serving tooling tests, built by the tests themselves.

Small and random-free (the `serving_models` session fixture in tests/conftest.py
saves each once, as DIR/1):
  plain:  a tf.Module with variables, an asset and a two-input signature.
  text:   a FastWordpieceTokenizer (a TF Text op that TF Serving has).
  trim:   text.RoundRobinTrimmer, whose `TFText>RoundRobinTrim` TF Serving lacks.
The server itself is replaced by tests/serving_utils.py: a fresh process that
runs the signature in a TF1 session as TF Serving does.
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_text as text

VOCAB = ["[UNK]", "hello", "world", "serv", "##ing", "##s", "tf"]

# The TF1 session and the eager call run the same kernels, but the session's
# graph optimizer (grappler) may fuse MatMul+Add, which can round float32
# differently in the last bit. Integers and strings must match exactly.
FLOAT_RTOL = 1e-6

PLAIN_FEEDS = {"x": np.array([[1, 2, 3], [-1, 0, 0.5]], np.float32),
               "n": np.array([7, -2], np.int32)}
TEXT_FEEDS = {"sentences": np.array([b"hello world", b"tf servings", b"hello"],
                                    dtype=object)}


class _Plain(tf.Module):
  """x [batch, 3] float32, n [batch] int32 -> y = x @ w + b, n_doubled = 2 n."""

  def __init__(self, vocab_path):
    super().__init__()
    self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 10)
    self.b = tf.Variable([0.5, -0.5], dtype=tf.float32)
    self.vocab_file = tf.saved_model.Asset(vocab_path)
    self.do_lower_case = tf.Variable(True, trainable=False)

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def __call__(self, x, n):
    return {"y": tf.matmul(x, self.w) + self.b, "n_doubled": n * 2}


class _Text(tf.Module):
  """sentences [batch] string -> token_ids [batch, tokens] int64, num_tokens [batch]."""

  def __init__(self):
    super().__init__()
    self.tokenizer = text.FastWordpieceTokenizer(VOCAB, token_out_type=tf.int64)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(self, sentences):
    return self.tokenizer.tokenize(tf.strings.split(sentences)).merge_dims(-2, -1)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, sentences):
    ids = self.tokenize(sentences)
    return {"token_ids": ids.to_tensor(), "num_tokens": ids.row_lengths()}


class _Trim(tf.Module):
  """The op TF Serving's TF Text 2.12.1 lacks (tensorflow/serving#2267)."""

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
  def __call__(self, ids):
    ragged = tf.RaggedTensor.from_tensor(ids)
    first, _ = text.RoundRobinTrimmer(max_seq_length=4).trim([ragged, ragged])
    return {"trimmed": first.to_tensor()}


def _save(module, base: pathlib.Path, version=1) -> pathlib.Path:
  export_dir = base / str(version)
  tf.saved_model.save(module, str(export_dir),
                      signatures={"serving_default": module.__call__})
  return export_dir


def build(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Saves the three models under `root`; returns {"plain"|"text"|"trim": DIR/1}."""
  vocab = root / "vocab.txt"
  vocab.write_text("\n".join(VOCAB) + "\n")
  return {"plain": _save(_Plain(str(vocab)), root / "plain"),
          "text": _save(_Text(), root / "text"),
          "trim": _save(_Trim(), root / "trim")}


def eager(export_dir, feeds, signature_name="serving_default"):
  """The outputs of the reloaded signature called eagerly, as numpy arrays."""
  function = tf.saved_model.load(str(export_dir)).signatures[signature_name]
  return {k: v.numpy() for k, v in function(**{k: tf.constant(v)
                                               for k, v in feeds.items()}).items()}


def assert_same_outputs(actual, expected):
  """Same names; floats within FLOAT_RTOL, everything else exactly equal."""
  assert sorted(actual) == sorted(expected)
  for name in expected:
    if np.asarray(expected[name]).dtype.kind == "f":
      np.testing.assert_allclose(actual[name], expected[name], rtol=FLOAT_RTOL)
    else:
      np.testing.assert_array_equal(actual[name], expected[name])
