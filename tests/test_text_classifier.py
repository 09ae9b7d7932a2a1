"""The text-classifier export (export/kinds/text_classifier.py) against Hugging Face.

Reference: transformers' BertForSequenceClassification (PyTorch, CPU), tokenized
by BertTokenizerFast. The model is a small random BERT (L=2, H=32, A=4; the
rest of all-MiniLM-L6-v2's config.json, so its "gelu" is the exact erf) with
MiniLM's real vocab.txt and tokenizer_config.json: accents, CJK and emoji
tokenize as for the real model. Its weights are scaled so that the erf/tanh
GELU, the token types and the mask each move the logits far beyond the
tolerance (test_reference_model_tells_what_the_checks_need). Three heads with
seeded random weights: 3-label single-label (softmax), 4-label multi-label
(sigmoid), 1-output regression (the score); the 3-label model also as a
google-research run_classifier.py TF1 checkpoint, written here with its own
names. Also: tf-models' own BertClassifier (TF2; both head variants) against
tf-models, and a tiny classifier served in bfloat16.

Each SavedModel is exported once per module (an export costs its fixed
TensorFlow work whatever the model's size). The exports run as TF Serving runs
them (tests/serving_utils.py: a fresh process, TF1 sessions, tag serve): every
request this module serves goes to ONE child process (the `served` fixture),
and the tests assert on its answers.
"""
import functools
import json
import os
import re
import shutil

import numpy as np
import pytest

from bert_hub import _keras  # noqa: F401
from export import cli, warmup
from export import classifier_object
from export.kinds import text_classifier
from export.serving import files, ops
from tests import fixtures
from tests.serving_utils import run_many_in_serving_sessions

import tensorflow as tf  # pylint: disable=wrong-import-order

SEQ_LENGTH = 64
TOLERANCE = 1e-5
SENTENCES = ["What a great movie!", "", "Café, naïve — “quotes” and emoji 🙂.",
             "中国人喜欢喝茶。", " ".join(["hello world"] * 40)]  # the last is truncated
SECOND = ["I loved every minute of it.", "The first segment is empty.", "",
          "我是中国人", "short"]
EXAMPLE_SECOND = [s if i % 2 else None for i, s in enumerate(SECOND)]  # tf.Examples: some pairs
HEADS = {  # name: (num_labels, problem_type, label names)
    "single": (3, "single_label_classification", ["negative", "neutral", "positive"]),
    "multi": (4, "multi_label_classification", ["sports", "politics", "science", "art"]),
    "regression": (1, None, None),
}
TF1_LABELS = "negative,neutral,positive"
# The small model: MiniLM's config.json but for these sizes and the weights'
# scale (HF's default 0.02 would leave the GELU's pre-activations so small
# that erf and tanh agree within TOLERANCE).
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, initializer_range=0.2)
TF2_SENTENCES = ["the cat sat on the mat .", "", "我是中国人", "hello world " * 10]


def _strings(values):
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def write_hf_classifier(folder, *, num_labels, problem_type, labels, seed=0):
  """A small random BertForSequenceClassification with MiniLM's vocab and tokenizer files."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  with open(os.path.join(fixtures.minilm_dir(), "config.json"), encoding="utf-8") as f:
    minilm = json.load(f)
  kw = {k: minilm[k] for k in ("vocab_size", "hidden_act", "max_position_embeddings",
                               "type_vocab_size", "layer_norm_eps", "pad_token_id")}
  assert kw["hidden_act"] == "gelu"  # HF's "gelu" is the exact erf
  kw.update(SMALL, num_labels=num_labels)
  if problem_type:
    kw["problem_type"] = problem_type
  if labels:
    kw.update(id2label=dict(enumerate(labels)),
              label2id={label: i for i, label in enumerate(labels)})
  torch.manual_seed(seed)
  model = transformers.BertForSequenceClassification(transformers.BertConfig(**kw)).eval()
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():  # non-trivial LayerNorm / bias values
      if "LayerNorm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn(p.shape, generator=generator))
    for p in (model.classifier.weight, model.classifier.bias):
      p.copy_(0.5 * torch.randn(p.shape, generator=generator))
  model.save_pretrained(folder, safe_serialization=True)
  for name in ("vocab.txt", "tokenizer_config.json"):
    shutil.copy(os.path.join(fixtures.minilm_dir(), name), folder)
  return str(folder)


@functools.lru_cache(maxsize=None)
def _hf_tokenizer(folder):
  import transformers  # pylint: disable=g-import-not-at-top
  return transformers.BertTokenizerFast.from_pretrained(folder)


@functools.lru_cache(maxsize=None)
def _hf_model(folder, **config_overrides):
  """BertForSequenceClassification (PyTorch) of `folder`, read once."""
  import transformers  # pylint: disable=g-import-not-at-top
  return transformers.BertForSequenceClassification.from_pretrained(
      folder, **config_overrides).eval()


def hf_logits(folder, sentences, second=None, **overrides):
  """Hugging Face's logits [B, N] (PyTorch), tokenized by BertTokenizerFast."""
  import torch  # pylint: disable=g-import-not-at-top
  tokenizer, model = _hf_tokenizer(folder), _hf_model(folder, **overrides)
  args = (sentences,) if second is None else (sentences, second)
  encoded = tokenizer(*args, padding=True, truncation=True, max_length=SEQ_LENGTH,
                      return_tensors="pt")
  with torch.no_grad():
    return model(**encoded).logits.numpy()


def _hf_packed(folder, sentences, *, seq_length) -> dict:
  """BERT's encoder inputs by Hugging Face's BertTokenizerFast (the folder's
  vocab.txt, lower-cased), padded to seq_length: int32 [B, seq_length] each."""
  import transformers  # pylint: disable=g-import-not-at-top
  tokenizer = transformers.BertTokenizerFast(os.path.join(folder, "vocab.txt"),
                                             do_lower_case=True)
  encoded = tokenizer(sentences, padding="max_length", truncation=True,
                      max_length=seq_length, return_tensors="np")
  return dict(input_word_ids=encoded["input_ids"].astype(np.int32),
              input_mask=encoded["attention_mask"].astype(np.int32),
              input_type_ids=encoded["token_type_ids"].astype(np.int32))


def hf_to_run_classifier_names(folder) -> dict:
  """A BertForSequenceClassification's weights under google-research's TF1 names.

  Written out here, rule by rule (as transformers' former
  convert_bert_pytorch_checkpoint_to_original_tf.py did), not with bert_hub's
  table: Linear weights [out, in] become kernels [in, out]; run_classifier.py's
  head is output_weights [N, H] (not transposed) and output_bias [N].
  """
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  out = {}
  for key, value in load_file(os.path.join(folder, "model.safetensors")).items():
    if key == "classifier.weight":
      out["output_weights"] = value
      continue
    if key == "classifier.bias":
      out["output_bias"] = value
      continue
    name = re.sub(r"layer\.(\d+)\.", r"layer_\1.", key).replace(".", "/")
    if "LayerNorm" in name:
      name = name.replace("/weight", "/gamma").replace("/bias", "/beta")
    elif name.endswith("_embeddings/weight"):
      name = name[:-len("/weight")]
    elif name.endswith("/weight"):
      name, value = name[:-len("/weight")] + "/kernel", value.T
    out[name] = np.ascontiguousarray(value)
  return out


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
  """{head name: a Hugging Face BertForSequenceClassification directory}."""
  root = tmp_path_factory.mktemp("hf_classifiers")
  return {name: write_hf_classifier(root / name, num_labels=num_labels,
                                    problem_type=problem_type, labels=labels)
          for name, (num_labels, problem_type, labels) in HEADS.items()}


@pytest.fixture(scope="module")
def exports(tmp_path_factory, hf_folders):
  """Each head exported once: {name: (hf folder, DIR/1)} plus "tf1"."""
  root = tmp_path_factory.mktemp("text_classifier")
  out = {}
  for name, folder in hf_folders.items():
    result = text_classifier.export_text_classifier(
        checkpoint=folder, output_dir=str(root / f"out_{name}"),
        seq_length=SEQ_LENGTH, report=lambda *_: None)
    out[name] = (folder, result.path)
  # The same 3-label model as a run_classifier.py checkpoint (TF1 names, Adam
  # slots and global_step as the original wrote them) with its HF config.json
  # beside it (MiniLM's "gelu": the exact erf, as MiniLM was trained).
  tf1 = root / "tf1"
  tf1.mkdir()
  arrays = hf_to_run_classifier_names(out["single"][0])
  arrays.update({f"{k}/adam_m": np.zeros_like(v) for k, v in list(arrays.items())[:3]})
  prefix = fixtures.write_tf1_arrays(str(tf1 / "model.ckpt"), arrays)
  for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
    shutil.copy(os.path.join(out["single"][0], name), tf1)
  code = cli.main(["text-classifier", "--checkpoint", prefix, "--labels", TF1_LABELS,
                   "--output", str(root / "out_tf1"), "--seq-length", str(SEQ_LENGTH)])
  assert code == 0
  out["tf1"] = (out["single"][0], str(root / "out_tf1" / "1"))
  return out


@pytest.fixture(scope="module")
def tf2_exports(tmp_path_factory):
  """tf-models' own BertClassifier, saved as its trainer saves it (model=...),
  with use_encoder_pooler False (the default) and True, each exported:
  {use_encoder_pooler: (DIR/1, the classifier's logits on TF2_SENTENCES packed
  by Hugging Face's BertTokenizerFast, lower-cased, padded to S = 16)}."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
  from bert_hub.encoder import build_network  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("tf2_classifier")
  config = fixtures.tiny_config()
  out = {}
  for use_encoder_pooler in (False, True):
    tmp_path = root / f"use_encoder_pooler_{use_encoder_pooler}"
    tf_keras.utils.set_random_seed(0)
    classifier = models.BertClassifier(network=build_network(config), num_classes=3,
                                       use_encoder_pooler=use_encoder_pooler)
    ids = tf.zeros([1, 4], tf.int32)
    classifier(dict(input_word_ids=ids, input_mask=ids + 1, input_type_ids=ids))
    for v in classifier.variables:  # non-trivial LayerNorm / bias values
      v.assign(v + 0.1 * tf.random.normal(v.shape))
    folder = tmp_path / "tf2"
    prefix = tf.train.Checkpoint(model=classifier).save(str(folder / "ckpt"))
    with open(folder / "bert_config.json", "w") as f:
      json.dump(fixtures.bert_config_json(config), f)
    fixtures.write_vocab(str(folder))
    result = text_classifier.export_text_classifier(
        checkpoint=prefix, output_dir=str(tmp_path / "out"), labels="a,b,c",
        seq_length=16, lower_case=True, report=lambda *_: None)
    packed = _hf_packed(str(folder), TF2_SENTENCES, seq_length=16)
    out[use_encoder_pooler] = (result.path, classifier(
        {k: tf.constant(v) for k, v in packed.items()}, training=False).numpy())
  return out


@pytest.fixture(scope="module")
def method_names_model(tmp_path_factory):
  """A small SavedModel, two signatures of one function, whose "classification"
  method name set_example_method_names rewrote to classify."""
  path = tmp_path_factory.mktemp("method_names")
  module = tf.Module()
  module.f = tf.function(lambda inputs: {"scores": tf.ones([tf.size(inputs), 2])},
                         input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  tf.saved_model.save(module, str(path), signatures={
      "serving_default": module.f.get_concrete_function(),
      "classification": module.f.get_concrete_function()})
  classifier_object.set_example_method_names(
      str(path), {"classification": classifier_object.CLASSIFY_METHOD})
  return str(path)


def _example_signature(name):
  return "regression" if name == "regression" else "classification"


@pytest.fixture(scope="module")
def served(exports, tf2_exports, bfloat16_export, method_names_model):
  """Every request this module serves, run in ONE TF Serving-style child process
  (a TF1 session per SavedModel): {(export name, signature): outputs}.

  The four heads: serving_default and pairs on SENTENCES (, SECOND), their
  tf.Example signature on Examples mixing single sentences and pairs; the two
  TF2 classifiers: serving_default; the bfloat16 export: serving_default and
  serving_float32 on MIXED; the method-name model: classification.
  """
  jobs = {}
  for name, (_, path) in exports.items():
    jobs[name, "serving_default"] = [{"sentences": _strings(SENTENCES)}]
    jobs[name, "pairs"] = [{"sentences": _strings(SENTENCES),
                            "second_sentences": _strings(SECOND)}]
    jobs[name, _example_signature(name)] = [
        {"inputs": classifier_object.example_bytes(SENTENCES, EXAMPLE_SECOND)}]
  paths = {name: path for name, (_, path) in exports.items()}
  for use_encoder_pooler, (path, _) in tf2_exports.items():
    paths[f"tf2_{use_encoder_pooler}"] = path
    jobs[f"tf2_{use_encoder_pooler}", "serving_default"] = [
        {"sentences": _strings(TF2_SENTENCES)}]
  paths["bfloat16"] = bfloat16_export[1]
  jobs["bfloat16", "serving_default"] = [{"sentences": _strings(MIXED)}]
  jobs["bfloat16", "serving_float32"] = [{"sentences": _strings(MIXED)}]
  paths["method_names"] = method_names_model
  jobs["method_names", "classification"] = [{"inputs": _strings(["a", "b"])}]
  results = run_many_in_serving_sessions(
      [(paths[name], signature, feeds) for (name, signature), feeds in jobs.items()])
  return {key: outputs[0] for key, outputs in zip(jobs, results)}


@pytest.fixture(scope="module")
def single_layer(exports):
  """hub.KerasLayer of the "single" export, made once for the tests that only
  read it. Its resolved_object is what tf.saved_model.load(path) returns
  (hub.load is tf.saved_model.load of the resolved path): one load, not two."""
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  return hub.KerasLayer(exports["single"][1])


def _expected(name, logits):
  """What serving_default should answer, from Hugging Face's logits."""
  import torch  # pylint: disable=g-import-not-at-top
  num_labels, problem_type, labels = HEADS["single" if name == "tf1" else name]
  if num_labels == 1:
    return {"score": logits[:, 0], "logits": logits}
  t = torch.tensor(logits)
  probabilities = (torch.sigmoid(t) if problem_type == "multi_label_classification"
                   else torch.softmax(t, dim=-1)).numpy()
  return {"probabilities": probabilities, "logits": logits,
          "label": np.array([labels[i].encode() for i in logits.argmax(-1)], object)}


def _assert_outputs(got, want):
  assert sorted(got) == sorted(want)
  for key, value in want.items():
    if value.dtype == object:
      np.testing.assert_array_equal(got[key], value, err_msg=key)
    else:
      assert got[key].dtype == np.float32 and got[key].shape == value.shape, key
      np.testing.assert_allclose(got[key], value, rtol=0, atol=TOLERANCE, err_msg=key)


# ------------------------------------------------- the reference itself


def test_reference_model_tells_what_the_checks_need(hf_folders):
  """The small random model's logits move far beyond TOLERANCE with tanh's GELU
  instead of erf's, with the second segment's token types 0, or with padding
  attended; so the comparisons with Hugging Face below can fail on those
  mistakes. MiniLM's tokenizer files: accents stripped, CJK characters split."""
  import torch  # pylint: disable=g-import-not-at-top
  folder = hf_folders["single"]
  want = hf_logits(folder, SENTENCES, SECOND)
  tanh = hf_logits(folder, SENTENCES, SECOND, hidden_act="gelu_new")
  assert np.abs(tanh - want).max() > 20 * TOLERANCE
  tokenizer, model = _hf_tokenizer(folder), _hf_model(folder)
  encoded = tokenizer(SENTENCES, SECOND, padding=True, truncation=True,
                      max_length=SEQ_LENGTH, return_tensors="pt")
  for key, value in [("token_type_ids", torch.zeros_like(encoded["token_type_ids"])),
                     ("attention_mask", torch.ones_like(encoded["attention_mask"]))]:
    with torch.no_grad():
      changed = model(**dict(encoded, **{key: value})).logits.numpy()
    assert np.abs(changed - want).max() > 20 * TOLERANCE, key
  assert tokenizer.tokenize(SENTENCES[2])[:3] == ["cafe", ",", "naive"]
  assert tokenizer.tokenize(SENTENCES[3])[:3] == ["中", "国", "人"]


# ------------------------------------------------- served vs Hugging Face


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "multi", "regression", "tf1"])
def test_served_predict_signatures_equal_hugging_face(exports, served, name):
  folder, _ = exports[name]
  _assert_outputs(served[name, "serving_default"], _expected(name, hf_logits(folder, SENTENCES)))
  _assert_outputs(served[name, "pairs"], _expected(name, hf_logits(folder, SENTENCES, SECOND)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "multi", "regression", "tf1"])
def test_served_example_signature_equals_hugging_face(exports, served, name):
  """tf.Examples mixing single sentences (no second_sentences) and pairs."""
  folder, _ = exports[name]
  signature = _example_signature(name)
  got = served[name, signature]
  logits = np.stack([
      hf_logits(folder, [a])[0] if b is None else hf_logits(folder, [a], [b])[0]
      for a, b in zip(SENTENCES, EXAMPLE_SECOND)])
  want = _expected(name, logits)
  if signature == "regression":
    assert sorted(got) == ["outputs"]
    np.testing.assert_allclose(got["outputs"], want["score"], rtol=0, atol=TOLERANCE)
    return
  assert sorted(got) == ["classes", "scores"]
  np.testing.assert_allclose(got["scores"], want["probabilities"], rtol=0, atol=TOLERANCE)
  labels = HEADS["single" if name == "tf1" else name][2]
  np.testing.assert_array_equal(
      got["classes"], np.array([[l.encode() for l in labels]] * len(SENTENCES), object))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "regression"])
def test_example_signatures_are_what_tf_serving_checks(exports, name):
  """classifier.cc / regressor.cc: method name, one input `inputs`, the output keys."""
  _, path = exports[name]
  meta_graph = files.serving_meta_graph(path)
  methods = {k: v.method_name for k, v in meta_graph.signature_def.items()
             if not k.startswith("__")}
  if name == "regression":
    assert methods == {"serving_default": "tensorflow/serving/predict",
                       "pairs": "tensorflow/serving/predict",
                       "regression": "tensorflow/serving/regress"}
    sig = meta_graph.signature_def["regression"]
    assert sorted(sig.outputs) == ["outputs"]
    assert sig.outputs["outputs"].dtype == tf.float32.as_datatype_enum
  else:
    assert methods == {"serving_default": "tensorflow/serving/predict",
                       "pairs": "tensorflow/serving/predict",
                       "classification": "tensorflow/serving/classify"}
    sig = meta_graph.signature_def["classification"]
    assert sorted(sig.outputs) == ["classes", "scores"]
    assert sig.outputs["classes"].dtype == tf.string.as_datatype_enum
    assert sig.outputs["scores"].dtype == tf.float32.as_datatype_enum
  assert list(sig.inputs) == ["inputs"]
  assert sig.inputs["inputs"].dtype == tf.string.as_datatype_enum
  # The fingerprint was written anew after the method names changed.
  from tensorflow.core.protobuf import fingerprint_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fp  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  fresh = fingerprint_pb2.FingerprintDef.FromString(fp.CreateFingerprintDef(path))
  stored = tf.saved_model.experimental.read_fingerprint(path)
  assert stored.saved_model_checksum == fresh.saved_model_checksum


@pytest.mark.slow
def test_warmup_has_a_record_for_every_signature(exports):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  for name, signature, log_type in [("single", "classification", "classify_log"),
                                    ("regression", "regression", "regress_log")]:
    path = os.path.join(exports[name][1], "assets.extra", "tf_serving_warmup_requests")
    seen = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      log = prediction_log_pb2.PredictionLog.FromString(record)
      kind = log.WhichOneof("log_type")
      request = getattr(log, kind).request
      seen.append((request.model_spec.signature_name, kind))
      if kind != "predict_log":
        examples = request.input.example_list.examples
        assert examples and all("sentences" in e.features.feature for e in examples)
    assert sorted(set(seen)) == sorted({("serving_default", "predict_log"),
                                        ("pairs", "predict_log"), (signature, log_type)})
    read = warmup.read_warmup_requests(exports[name][1])
    assert len(read) == len(seen) and all(set(r) == {"inputs"} for r, (_, kind) in
                                           zip(read, seen) if kind != "predict_log")


@pytest.mark.slow
def test_ops_are_in_tf_serving_and_object_api(exports, single_layer):
  folder, path = exports["single"]
  assert ops.ops_outside_allowlist(path) == []
  loaded = single_layer.resolved_object  # hub.load(path): tf.saved_model.load
  want = _expected("single", hf_logits(folder, SENTENCES))
  _assert_outputs({k: v.numpy() for k, v in loaded(tf.constant(SENTENCES)).items()}, want)
  layer_out = single_layer(tf.constant(SENTENCES))  # hub.KerasLayer(path)
  _assert_outputs({k: v.numpy() for k, v in layer_out.items()}, want)
  pairs = loaded.classify_pairs(tf.constant(SENTENCES), tf.constant(SECOND))
  np.testing.assert_allclose(pairs["logits"].numpy(), hf_logits(folder, SENTENCES, SECOND),
                             rtol=0, atol=TOLERANCE)
  assert [l.decode() for l in loaded.get_labels().numpy()] == HEADS["single"][2]
  with open(loaded.labels_file.asset_path.numpy().decode(), encoding="utf-8") as f:
    assert f.read().splitlines() == HEADS["single"][2]
  with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
    loaded.signatures["pairs"](sentences=tf.constant(["a", "b"]),
                               second_sentences=tf.constant(["c"]))


@pytest.mark.slow
def test_model_page_and_metadata(exports):
  _, path = exports["multi"]
  with open(os.path.join(path, "README.md"), encoding="utf-8") as f:
    page = f.read()
  for needle in ["| 3 | `art` |", "sigmoid", ":classify", ":predict",
                 "probabilities    float32 [B, 4]", "problem_type=multi_label_classification"]:
    assert needle in page, needle
  with open(os.path.join(path, "bert_hub.json"), encoding="utf-8") as f:
    meta = json.load(f)
  assert meta["kind"] == "text-classifier"
  assert meta["head"]["labels"] == HEADS["multi"][2]
  assert meta["head"]["function"] == "sigmoid"
  assert meta["signatures"]["classification"]["method"] == "tensorflow/serving/classify"
  assert meta["checkpoint"]["format"] == "hf" and meta["verification"]["passed"]
  assert meta["serving_precision"] == "float32" and "## Serving precision" not in page
  with open(os.path.join(exports["regression"][1], "README.md"), encoding="utf-8") as f:
    assert ":regress" in f.read()


# ------------------------------------------------- bad input (fast: tiny models)


def _tiny_hf_classifier(folder, *, num_labels=3, labels=None, head=True):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  c = fixtures.tiny_config()
  kw = {"id2label": dict(enumerate(labels))} if labels else {}
  hf_config = transformers.BertConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size,
      num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
      intermediate_size=c.intermediate_size,
      max_position_embeddings=c.max_position_embeddings, num_labels=num_labels, **kw)
  torch.manual_seed(0)
  cls = (transformers.BertForSequenceClassification if head
         else transformers.BertForPreTraining)
  cls(hf_config).save_pretrained(str(folder), safe_serialization=True)
  fixtures.write_vocab(str(folder))
  return str(folder)


def _tiny_tf1_classifier(folder, *, head: dict):
  config = fixtures.tiny_config()
  arrays = fixtures.tf1_arrays(config, with_mlm=False, with_nsp=False)
  arrays.update(head)
  prefix = fixtures.write_tf1_arrays(os.path.join(folder, "model.ckpt"), arrays)
  with open(os.path.join(folder, "bert_config.json"), "w") as f:
    json.dump(fixtures.bert_config_json(config), f)
  fixtures.write_vocab(folder)
  return prefix


def _cli_error(capsys, argv) -> str:
  capsys.readouterr()  # drop what writing the checkpoint printed
  code = cli.main(["text-classifier", "--seq-length", "16"] + argv)
  err = capsys.readouterr().err
  assert code == 2, err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  assert re.search(r": expected .+; received .+; fix: .+", lines[0]), lines[0]
  return lines[0]


def test_cli_labels_that_do_not_match_the_head(tmp_path, capsys):
  folder = _tiny_hf_classifier(tmp_path / "hf", num_labels=3, labels=["a", "b", "c"])
  err = _cli_error(capsys, ["--checkpoint", folder, "--labels", "x,y",
                            "--output", str(tmp_path / "out")])
  assert "--labels do not match" in err and "expected 3 names" in err
  assert "received 2: x,y" in err
  err = _cli_error(capsys, ["--checkpoint", folder, "--labels", "x,x,y",
                            "--output", str(tmp_path / "out")])
  assert "distinct" in err
  assert not (tmp_path / "out" / "1").exists()


def test_cli_checkpoint_without_a_head(tmp_path, capsys):
  folder = _tiny_hf_classifier(tmp_path / "hf", head=False)  # BertForPreTraining
  err = _cli_error(capsys, ["--checkpoint", folder, "--output", str(tmp_path / "o")])
  assert "no classification head" in err and "classifier.weight" in err
  assert "cls.predictions" in err  # what it has instead
  prefix, _ = fixtures.write_tf1_checkpoint(str(tmp_path / "tf1"), fixtures.tiny_config())
  fixtures.write_vocab(str(tmp_path / "tf1"))
  err = _cli_error(capsys, ["--checkpoint", prefix, "--labels", "a,b",
                            "--output", str(tmp_path / "o")])
  assert "no classification head" in err and "output_weights" in err


def test_cli_tf1_needs_labels(tmp_path, capsys):
  h = fixtures.tiny_config().hidden_size
  prefix = _tiny_tf1_classifier(str(tmp_path), head={
      "output_weights": np.ones((2, h), np.float32),
      "output_bias": np.zeros(2, np.float32)})
  err = _cli_error(capsys, ["--checkpoint", prefix, "--output", str(tmp_path / "o")])
  assert "label names needed" in err and "--labels with 2 names" in err


def test_tf1_head_problems_are_listed_at_once(tmp_path, capsys):
  h = fixtures.tiny_config().hidden_size
  prefix = _tiny_tf1_classifier(str(tmp_path), head={
      "output_weights": np.ones((2, h + 1), np.float32),  # wrong shape
      "loss/extra": np.zeros(3, np.float32)})  # unused; output_bias missing
  err = _cli_error(capsys, ["--checkpoint", prefix, "--labels", "a,b",
                            "--output", str(tmp_path / "o")])
  assert "1 missing: output_bias" in err
  assert "1 unused: loss/extra" in err
  assert f"output_weights (expected [2, {h}], received [2, {h + 1}])" in err


def test_hf_head_function_follows_transformers():
  from bert_hub.checkpoints.heads import hf_head_function  # pylint: disable=g-import-not-at-top
  assert hf_head_function(None, 1)[0] == "identity"  # forward: MSELoss
  assert hf_head_function(None, 3)[0] == "softmax"  # forward: CrossEntropyLoss
  assert hf_head_function("multi_label_classification", 3)[0] == "sigmoid"
  assert hf_head_function("regression", 1)[0] == "identity"
  assert hf_head_function("single_label_classification", 2)[0] == "softmax"


# ------------------------------------------------- TF Model Garden BertClassifier


@pytest.mark.slow
@pytest.mark.parametrize("use_encoder_pooler", [False, True])  # False: the default
def test_tf2_bert_classifier_checkpoint(tf2_exports, served, use_encoder_pooler):
  """tf-models' own BertClassifier, saved as its trainer saves it (model=...)."""
  _, logits = tf2_exports[use_encoder_pooler]
  got = served[f"tf2_{use_encoder_pooler}", "serving_default"]
  np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=TOLERANCE)
  np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(logits).numpy(),
                             rtol=0, atol=TOLERANCE)
  np.testing.assert_array_equal(got["label"], np.array(
      [b"abc"[i:i + 1] for i in logits.argmax(-1)], object))


def test_cli_tf2_encoder_checkpoint_has_no_head(tmp_path, capsys):
  prefix, _ = fixtures.write_tf2_checkpoint(str(tmp_path), fixtures.tiny_config())
  fixtures.write_vocab(str(tmp_path))
  err = _cli_error(capsys, ["--checkpoint", prefix, "--labels", "a,b",
                            "--output", str(tmp_path / "o")])
  assert "no classification head" in err and "(an encoder checkpoint)" in err


@pytest.mark.slow
def test_set_example_method_names_rewrites_only_the_named_signature(method_names_model,
                                                                    served):
  """On a small SavedModel: the proto says classify, TF2 and TF1 loaders still run it."""
  path = method_names_model
  assert classifier_object.signature_method_names(path) == {
      "serving_default": "tensorflow/serving/predict",
      "classification": "tensorflow/serving/classify"}
  loaded = tf.saved_model.load(path)
  assert loaded.signatures["classification"](inputs=tf.constant(["a"]))["scores"].shape == (1, 2)
  got = served["method_names", "classification"]  # fed ["a", "b"]
  np.testing.assert_array_equal(got["scores"], np.ones((2, 2), np.float32))
  with pytest.raises(RuntimeError, match="no signature 'regression'"):
    classifier_object.set_example_method_names(
        path, {"regression": classifier_object.REGRESS_METHOD})


# ------------------------------------- computing on the request's own lengths

# Mixed lengths across several chunks (bert_hub/length_buckets.CHUNK_SIZE rows
# each): empty strings, texts longer than S (= SEQ_LENGTH), in no order.
MIXED = (["", "hello", " ".join(["the dog"] * 40), "the cat sat on the mat .", "?",
          "i liked this film very much !", "", " ".join(["word"] * 9), "a b c d e f",
          " ".join(["long text"] * 50)] * 2 + ["one more", ""])


@pytest.fixture(scope="module")
def bfloat16_export(tmp_path_factory):
  """A tiny HF classifier (random weights) exported at S = 16 in bfloat16."""
  root = tmp_path_factory.mktemp("tiny_classifier")
  folder = _tiny_hf_classifier(root / "hf", num_labels=3, labels=["a", "b", "c"])
  return folder, text_classifier.export_text_classifier(
      checkpoint=folder, output_dir=str(root / "bfloat16"), seq_length=16,
      lower_case=True, serving_precision="bfloat16", report=lambda *_: None).path


def _logits_on_packed(folder, inputs):
  """Hugging Face's BertForSequenceClassification (PyTorch) on packed inputs."""
  import torch  # pylint: disable=g-import-not-at-top
  with torch.no_grad():
    return _hf_model(folder)(
        input_ids=torch.tensor(np.asarray(inputs["input_word_ids"])).long(),
        attention_mask=torch.tensor(np.asarray(inputs["input_mask"])).long(),
        token_type_ids=torch.tensor(np.asarray(inputs["input_type_ids"])).long()
        ).logits.numpy()


def _fixed_length_logits(folder, loaded, sentences, second=None, *, seq_length):
  """Hugging Face's BertForSequenceClassification (PyTorch) on the export's own
  packing padded to S = seq_length: the fixed-length computation."""
  pre = loaded.preprocessor
  if second is None:
    inputs = pre(tf.constant(sentences))
  else:
    inputs = pre.bert_pack_inputs([pre.tokenize(tf.constant(sentences)),
                                   pre.tokenize(tf.constant(second))],
                                  seq_length=seq_length)
  assert inputs["input_word_ids"].shape[1] == seq_length
  return _logits_on_packed(folder, {k: v.numpy() for k, v in inputs.items()})


@pytest.mark.slow
@pytest.mark.parametrize("batch", [MIXED, MIXED[2:3], MIXED[:5]])
def test_outputs_follow_length_and_equal_the_fixed_length_computation(exports, single_layer,
                                                                      batch):
  """Batches of 22 (three chunks), 1 and 5 rows, singles and pairs: logits and
  probabilities within 1e-5 of the computation padded to S, in request order."""
  folder, path = exports["single"]
  loaded = single_layer.resolved_object  # tf.saved_model.load(path), via hub.load
  second = list(reversed(batch))
  for got, want in (
      (loaded.signatures["serving_default"](sentences=tf.constant(batch)),
       _fixed_length_logits(folder, loaded, batch, seq_length=SEQ_LENGTH)),
      (loaded.signatures["pairs"](sentences=tf.constant(batch),
                                  second_sentences=tf.constant(second)),
       _fixed_length_logits(folder, loaded, batch, second, seq_length=SEQ_LENGTH))):
    np.testing.assert_allclose(got["logits"], want, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(want).numpy(),
                               rtol=0, atol=TOLERANCE)
  assert ops.ops_outside_allowlist(path) == []


@pytest.mark.slow
def test_bfloat16_serving_precision(bfloat16_export, served):
  """--serving-precision bfloat16: verified (relative) at export; ops allowed;
  probabilities, served as TF Serving serves them, close to float32's (Hugging
  Face on BertTokenizerFast's packing padded to S = 16: single sentences)."""
  folder, path = bfloat16_export
  assert ops.ops_outside_allowlist(path) == []
  with open(os.path.join(path, "bert_hub.json"), encoding="utf-8") as f:
    assert json.load(f)["serving_precision"] == "bfloat16"
  with open(os.path.join(path, "README.md"), encoding="utf-8") as f:
    section = f.read().split("## Serving precision")[1]
  assert "--serving-precision bfloat16" in section and "`serving_float32`" in section
  assert "object API (fine-tuning) stays float32" in section
  got = served["bfloat16", "serving_default"]  # fed MIXED
  logits = _logits_on_packed(folder, _hf_packed(folder, MIXED, seq_length=16))
  want = tf.nn.softmax(logits).numpy()
  np.testing.assert_allclose(got["probabilities"], want, rtol=0, atol=1e-2)
  assert np.max(np.abs(got["probabilities"] - want)) > 1e-6  # it computes in bfloat16
  # serving_float32 and the object API: float32, as a float32 export's.
  exact = served["bfloat16", "serving_float32"]
  np.testing.assert_allclose(exact["logits"], logits, rtol=0, atol=TOLERANCE)
  loaded = tf.saved_model.load(path)
  assert sorted(loaded.signatures) == ["classification", "pairs", "serving_default",
                                       "serving_float32"]
  np.testing.assert_allclose(loaded(tf.constant(MIXED))["logits"], logits, rtol=0,
                             atol=TOLERANCE)
  assert all(v.dtype == tf.float32 for v in loaded.trainable_variables)
