"""Checkpoints as people have them (issue #18): half precision, tf_model.h5, no pooler.

  * bfloat16 / float16 model.safetensors (`model.to(dtype).save_pretrained`):
    read, widened to float32, exported; the page and bert_hub.json say how
    they were stored. Compared with the float32 export of the same model.
  * Hugging Face TensorFlow `tf_model.h5` (TFBertModel,
    TFBertForSequenceClassification), written here with h5py in the layout
    Keras 2's `save_weights` gives transformers 4.x's TF classes (transformers
    5 has no TF classes): compared with the safetensors export.
  * a checkpoint without pooler weights: refused by the encoder export with
    one line, read by `load_encoder` (sequence_output equal to Hugging Face's
    BertModel(add_pooling_layer=False)), exported as a mean-pooled text
    embedding equal to sentence-transformers.

The half-precision and TFBertModel tests use the real all-MiniLM-L6-v2 weights
(slow); the TFBertForSequenceClassification and no-pooler ones a small random
BERT with MiniLM's files (SMALL); the MLM head of tf_model.h5 is checked on a
tiny BertForPreTraining.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from export import lib
from tests import fixtures
from tests.cli_utils import cli_error

import tensorflow as tf  # pylint: disable=wrong-import-order

TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def _copy_tokenizer(src, dst):
  for name in TOKENIZER_FILES:
    if os.path.isfile(os.path.join(src, name)):
      shutil.copy(os.path.join(src, name), dst)


def _torch_copy(folder, dtype):
  """MiniLM's BertModel saved by transformers in `dtype` (safetensors)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.BertModel.from_pretrained(fixtures.minilm_dir())
  model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
  _copy_tokenizer(fixtures.minilm_dir(), folder)
  return str(folder)


def _serve(path, encoded):
  serve = tf.saved_model.load(path).signatures["serving_default"]
  return {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in
                                            encoded.items()}).items()}


def _metadata(path):
  with open(os.path.join(path, "bert_hub.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def encoded():
  return fixtures.hf_encode_pairs(fixtures.minilm_dir())


@pytest.fixture(scope="module")
def float32_export(minilm_demo):
  """MiniLM's encoder export with the default options (the demo's)."""
  return str(minilm_demo["output"] / "minilm_l6_encoder" / "3")


@pytest.fixture(scope="module")
def float32_served(float32_export, encoded):
  """float32_export's serving_default on `encoded`, loaded and run once."""
  return _serve(float32_export, encoded)


# ------------------------------------------------------------ half precision


@pytest.mark.slow
@pytest.mark.parametrize("dtype,tolerance", [("bfloat16", 2e-2), ("float16", 2e-3)])
def test_half_precision_safetensors_export(tmp_path, encoded, float32_export,
                                           float32_served, dtype, tolerance):
  checkpoint = _torch_copy(tmp_path / dtype, dtype)
  path = lib.export_encoder(checkpoint=checkpoint, output_dir=str(tmp_path / "out"),
                            report=lib.quiet_report).path
  got, want = _serve(path, encoded), float32_served
  for key in ("sequence_output", "pooled_output"):
    error = np.max(np.abs(got[key] - want[key])) / np.max(np.abs(want[key]))
    assert error < tolerance, (key, error)
    assert error > 0, key  # the weights really were rounded to half precision
  meta = _metadata(path)
  assert meta["checkpoint"]["dtype"] == dtype
  assert meta["checkpoint"]["pooler"] is True
  with open(os.path.join(path, "README.md"), encoding="utf-8") as f:
    assert f"(stored as {dtype}, widened to float32)" in f.read()
  assert _metadata(float32_export)["checkpoint"]["dtype"] == "float32"


# ------------------------------------------------------------ tf_model.h5


def tf_weight_name(torch_name):
  """transformers 4.x's PyTorch -> TF name rule for BERT (modeling_tf_pytorch_utils,
  TFBertEmbeddings' scopes): (TF name without the model scope, transpose?)."""
  name = torch_name
  for torch_part, tf_part in (("word_embeddings.weight", "word_embeddings.weight"),
                              ("position_embeddings.weight", "position_embeddings.embeddings"),
                              ("token_type_embeddings.weight",
                               "token_type_embeddings.embeddings")):
    if name.endswith(torch_part):
      return name[:-len(torch_part)].replace(".", "/") + tf_part.replace(".", "/") + ":0", False
  name = re.sub(r"\.layer\.(\d+)\.", r".layer_#_\1.", name)  # "#": not a separator
  transpose = False
  if "LayerNorm" in name:
    name = re.sub(r"\.weight$", ".gamma", re.sub(r"\.bias$", ".beta", name))
  elif name.endswith(".weight"):
    name, transpose = name[:-len(".weight")] + ".kernel", True  # nn.Linear [out, in]
  return name.replace(".", "/").replace("#", ".") + ":0", transpose


def write_tf_model_h5(path, layers, *, model_scope):
  """A Keras 2 `save_weights` HDF5 file: {layer name: {TF name: array}}.

  As hdf5_format.save_weights_to_hdf5_group writes it: `layer_names` on the
  file, a group per top-level layer with `weight_names` (full names, under the
  model's scope), each weight a dataset at its full name inside that group.
  """
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [name.encode("utf8") for name in layers]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.15.0"
    for layer, weights in layers.items():
      group = f.create_group(layer)
      full = [f"{model_scope}/{name}" for name in weights]
      group.attrs["weight_names"] = [n.encode("utf8") for n in full]
      for name, value in zip(full, weights.values()):
        group.create_dataset(name, data=value)


# A small random BERT (L=2, H=32) with MiniLM's vocab, tokenizer and
# sentence-transformers files, where the real weights are not what is tested:
# the classifier's h5 head, a missing pooler (in `make test`, 2026-12-07: the
# no-pooler text embedding 21 s -> 12 s, the h5 classifier 14-16 s -> 9-11 s).
SMALL = fixtures.tiny_config(vocab_size=30522, hidden_size=32, max_position_embeddings=512)


def _tf_weights(folder):
  """The BertModel in `folder` under transformers' TF names (bert/...:0)."""
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.BertModel.from_pretrained(folder)
  weights = {}
  for torch_name, tensor in model.state_dict().items():
    if torch_name.endswith("position_ids"):
      continue
    name, transpose = tf_weight_name("bert." + torch_name)
    value = tensor.detach().numpy()
    weights[name] = np.ascontiguousarray(value.T if transpose else value)
  return weights


@pytest.fixture(scope="module")
def h5_dirs(tmp_path_factory):
  """TFBertModel: MiniLM's real weights; TFBertForSequenceClassification: SMALL's
  with a random 3-label head. {"model", "classifier": the h5 folders, "source":
  {which: the safetensors folder of its encoder}, "head": the head's arrays}."""
  root = tmp_path_factory.mktemp("h5")
  small = fixtures.write_hf_checkpoint(root / "small", SMALL, pretraining=False)
  _copy_tokenizer(fixtures.minilm_dir(), small)
  model = root / "TFBertModel"
  classifier = root / "TFBertForSequenceClassification"
  source = {"model": fixtures.minilm_dir(), "classifier": str(small)}
  rng = np.random.default_rng(0)
  head = {"classifier/kernel:0": rng.standard_normal((SMALL.hidden_size, 3)).astype(np.float32),
          "classifier/bias:0": rng.standard_normal(3).astype(np.float32)}
  labels = dict(id2label={"0": "neg", "1": "neu", "2": "pos"},
                label2id={"neg": 0, "neu": 1, "pos": 2},
                problem_type="single_label_classification")
  for folder, which, arch, scope, extra in (
      (model, "model", "TFBertModel", "tf_bert_model", {}),
      (classifier, "classifier", "TFBertForSequenceClassification",
       "tf_bert_for_sequence_classification", labels)):
    folder.mkdir()
    weights = _tf_weights(source[which])
    assert "bert/encoder/layer_._0/attention/self/query/kernel:0" in weights
    layers = {"bert": weights}
    if which == "classifier":
      layers.update({"dropout_37": {}, "classifier": head})
    write_tf_model_h5(folder / "tf_model.h5", layers, model_scope=scope)
    with open(os.path.join(source[which], "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    with open(folder / "config.json", "w", encoding="utf-8") as f:
      json.dump(dict(config, architectures=[arch], **extra), f)
    _copy_tokenizer(fixtures.minilm_dir(), folder)
  return dict(model=str(model), classifier=str(classifier), head=head, source=source)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["model", "classifier"])
def test_tf_model_h5_reads_the_safetensors_weights(h5_dirs, which):
  """Both h5 layouts (TFBertModel; TFBertForSequenceClassification, whose
  encoder the encoder export takes) give exactly the safetensors' weights."""
  from bert_hub.checkpoints import read_weights  # pylint: disable=g-import-not-at-top
  from bert_hub.config import load_config  # pylint: disable=g-import-not-at-top
  source = h5_dirs["source"][which]
  config = load_config(os.path.join(source, "config.json"))
  got = read_weights(h5_dirs[which], config)
  want = read_weights(source, config)
  assert got.format == "hf_h5" and want.format == "hf"
  assert sorted(got.arrays) == sorted(want.arrays)
  for name, value in want.arrays.items():
    np.testing.assert_array_equal(got.arrays[name], value, err_msg=name)


@pytest.mark.slow
def test_tf_model_h5_exports_like_safetensors(tmp_path, encoded, float32_served, h5_dirs):
  """The whole export from tf_model.h5 (the classifier's h5 through the same
  reader is test_tf_model_h5_reads_the_safetensors_weights and the classifier
  export below)."""
  path = lib.export_encoder(checkpoint=h5_dirs["model"], output_dir=str(tmp_path / "out"),
                            report=lib.quiet_report).path
  got, want = _serve(path, encoded), float32_served
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5, err_msg=key)
  meta = _metadata(path)
  assert meta["checkpoint"]["format"] == "hf_h5"
  assert meta["checkpoint"]["dtype"] == "float32"
  assert os.path.basename(meta["checkpoint"]["path"]) == "tf_model.h5"


@pytest.mark.slow
def test_tf_model_h5_classifier_equals_hugging_face(tmp_path, h5_dirs):
  """TFBertForSequenceClassification's head (classifier/kernel:0 [H, N]) in the
  text-classifier export, against BertForSequenceClassification in PyTorch."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  path = lib.export_text_classifier(checkpoint=h5_dirs["classifier"],
                                    output_dir=str(tmp_path / "out"), seq_length=32,
                                    report=lib.quiet_report).path
  sentences = [a for a, _ in fixtures.PAIRS]
  got = tf.saved_model.load(path).signatures["serving_default"](
      sentences=tf.constant(sentences))
  model = transformers.BertForSequenceClassification.from_pretrained(
      h5_dirs["source"]["classifier"], num_labels=3).eval()
  with torch.no_grad():
    model.classifier.weight.copy_(torch.tensor(h5_dirs["head"]["classifier/kernel:0"].T))
    model.classifier.bias.copy_(torch.tensor(h5_dirs["head"]["classifier/bias:0"]))
    encoded = transformers.BertTokenizerFast.from_pretrained(fixtures.minilm_dir())(
        sentences, padding=True, truncation=True, max_length=32, return_tensors="pt")
    want = model(**encoded).logits.numpy()
  np.testing.assert_allclose(got["logits"].numpy(), want, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(
      got["label"].numpy(), np.array([[b"neg", b"neu", b"pos"][i] for i in want.argmax(-1)]))


@pytest.mark.slow
def test_tf_model_h5_file_path_and_format_flag(h5_dirs):
  from bert_hub.checkpoints import resolve  # pylint: disable=g-import-not-at-top
  h5 = os.path.join(h5_dirs["model"], "tf_model.h5")
  assert resolve(h5)[0] == "hf_h5"
  assert resolve(h5_dirs["model"], "hf_h5")[:2] == ("hf_h5", h5)


# ------------------------------------------------------------ no pooler


def _without(folder, drop):
  """A copy of the MiniLM sentence-transformers folder with SMALL's random
  weights, whose safetensors lacks the weights matching `drop`."""
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  shutil.copytree(fixtures.minilm_dir(), folder)
  fixtures.write_hf_checkpoint(folder, SMALL, pretraining=False)  # model.safetensors, config.json
  pooling = os.path.join(folder, "1_Pooling", "config.json")
  with open(pooling, encoding="utf-8") as f:
    config = json.load(f)
  config["word_embedding_dimension"] = SMALL.hidden_size
  with open(pooling, "w", encoding="utf-8") as f:
    json.dump(config, f)
  path = os.path.join(folder, "model.safetensors")
  arrays = load_file(path)
  kept = {k: v for k, v in arrays.items() if not re.match(drop, k)}
  assert len(kept) < len(arrays)
  save_file(kept, path, metadata={"format": "pt"})
  return str(folder)


@pytest.fixture(scope="module")
def no_pooler(tmp_path_factory):
  return _without(tmp_path_factory.mktemp("no_pooler") / "model", r"pooler\.")


@pytest.mark.slow
def test_no_pooler_encoder_export_is_one_line_error(tmp_path, capsys, no_pooler):
  cli_error(capsys, "encoder", "--checkpoint", no_pooler, "--output", tmp_path / "out",
            needles=("no pooler weights", "pooler.dense.weight", "pooled_output",
                     "--pooling mean"))
  assert not os.path.exists(tmp_path / "out" / "3")


@pytest.mark.slow
def test_no_pooler_text_embedding_with_pooler_pooling_is_refused(tmp_path, capsys,
                                                                 no_pooler):
  bare = tmp_path / "bare"  # no sentence-transformers files: --pooling applies
  bare.mkdir()
  for name in ("model.safetensors", "config.json") + TOKENIZER_FILES:
    shutil.copy(os.path.join(no_pooler, name), bare)
  cli_error(capsys, "text-embedding", "--checkpoint", bare, "--output", tmp_path / "out",
            "--pooling", "pooler", needles=("no pooler weights", "--pooling mean"))
  assert not os.path.exists(tmp_path / "out")  or not os.listdir(tmp_path / "out")


@pytest.mark.slow
def test_no_pooler_load_encoder_equals_hugging_face_without_pooling_layer(no_pooler,
                                                                         encoded):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from bert_hub.encoder import load_encoder  # pylint: disable=g-import-not-at-top
  encoder = load_encoder(no_pooler)
  assert not encoder.has_pooler and not encoder.source.has_pooler
  got = encoder(encoded)["sequence_output"].numpy()
  hf = transformers.BertModel.from_pretrained(no_pooler, add_pooling_layer=False).eval()
  assert hf.pooler is None
  with torch.no_grad():
    want = hf(input_ids=torch.tensor(encoded["input_word_ids"]).long(),
              attention_mask=torch.tensor(encoded["input_mask"]).long(),
              token_type_ids=torch.tensor(encoded["input_type_ids"]).long()
              ).last_hidden_state.numpy()
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  # The pooler's variables exist (tf-models builds them) and hold zeros.
  pooler = [v for v in encoder.variables if "pooler_transform" in v.name]
  assert len(pooler) == 2 and all(not np.any(v.numpy()) for v in pooler)


@pytest.mark.slow
def test_no_pooler_text_embedding_equals_sentence_transformers(tmp_path, no_pooler):
  from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  path = lib.export_text_embedding(checkpoint=no_pooler, output_dir=str(tmp_path / "out"),
                                   report=lib.quiet_report).path
  sentences = [a for a, _ in fixtures.PAIRS] + [b for _, b in fixtures.PAIRS]
  got = tf.saved_model.load(path).signatures["serving_default"](
      sentences=tf.constant(sentences))["embedding"].numpy()
  want = SentenceTransformer(no_pooler, device="cpu").encode(sentences)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  assert _metadata(path)["checkpoint"]["pooler"] is False


@pytest.mark.slow
def test_half_a_pooler_is_a_mismatch(tmp_path):
  from bert_hub.checkpoints import read_weights  # pylint: disable=g-import-not-at-top
  from bert_hub.config import load_config  # pylint: disable=g-import-not-at-top
  from bert_hub.errors import CheckpointMismatchError  # pylint: disable=g-import-not-at-top
  folder = _without(tmp_path / "half", r"pooler\.dense\.bias$")
  with pytest.raises(CheckpointMismatchError, match=r"pooler\.dense\.bias"):
    read_weights(folder, load_config(os.path.join(folder, "config.json")))


def test_tf_model_h5_mlm_head_equals_safetensors(tmp_path):
  """TFBertForPreTraining's tf_model.h5 (mlm___cls/, nsp___cls/ beside bert/),
  read with_mlm: the same encoder and MLM logits as its safetensors twin."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  from bert_hub.encoder import load_encoder, sample_inputs  # pylint: disable=g-import-not-at-top
  config = fixtures.tiny_config()
  hf = tmp_path / "hf"
  fixtures.write_hf_checkpoint(hf, config, pretraining=True)
  layers = {"bert": {}, "nsp___cls": {}, "mlm___cls": {}}
  for torch_name, value in load_file(str(hf / "model.safetensors")).items():
    name, transpose = tf_weight_name(torch_name)
    value = np.ascontiguousarray(value.T if transpose else value)
    if name.startswith("cls/predictions/"):
      layers["mlm___cls"]["mlm___" + name] = value
    elif name.startswith("cls/seq_relationship/"):
      layers["nsp___cls"]["nsp___" + name] = value
    else:
      layers["bert"][name] = value
  assert "mlm___cls/predictions/bias:0" in layers["mlm___cls"]
  h5 = tmp_path / "h5"
  h5.mkdir()
  write_tf_model_h5(h5 / "tf_model.h5", layers, model_scope="tf_bert_for_pre_training")
  shutil.copy(hf / "config.json", h5)
  inputs = sample_inputs(config, batch=2, seq_length=8)
  mlm_inputs = dict(inputs, masked_lm_positions=np.array([[1, 2], [3, 4]], np.int32))
  want = load_encoder(str(hf), with_mlm=True).mlm(mlm_inputs)
  encoder = load_encoder(str(h5), with_mlm=True)
  assert encoder.source.format == "hf_h5" and encoder.has_pooler
  got = encoder.mlm(mlm_inputs)
  for key in ("mlm_logits", "sequence_output", "pooled_output"):
    np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=0, atol=1e-6)


def test_damaged_tf_model_h5_is_one_line_error(tmp_path, capsys, hf_dir):
  folder = tmp_path / "h5"
  folder.mkdir()
  shutil.copy(hf_dir / "config.json", folder)
  fixtures.write_vocab(folder)
  (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
  cli_error(capsys, "encoder", "--checkpoint", folder, "--output", tmp_path / "out",
            needles=("unreadable tf_model.h5", "tf_model.h5", "copy the file again"))
  assert not os.path.exists(tmp_path / "out" / "3")
