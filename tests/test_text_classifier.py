"""The text-classifier export (export/kinds/text_classifier.py) against Hugging Face.

Reference: transformers' BertForSequenceClassification (PyTorch, CPU) made from
the real all-MiniLM-L6-v2 weights with a seeded random head, tokenized by
BertTokenizerFast; the exports run as TF Serving runs them
(tests/serving_utils.py: fresh process, TF1 session, tag serve). Three heads:
3-label single-label (softmax), 4-label multi-label (sigmoid), 1-output
regression (the score); the 3-label head also as a google-research
run_classifier.py TF1 checkpoint, written here with its own names.
"""
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
from tests.serving_utils import run_signature_in_serving_session

import tensorflow as tf  # pylint: disable=wrong-import-order

SEQ_LENGTH = 64
TOLERANCE = 1e-5
SENTENCES = ["What a great movie!", "", "Café, naïve — “quotes” and emoji 🙂.",
             "中国人喜欢喝茶。", " ".join(["hello world"] * 40)]  # the last is truncated
SECOND = ["I loved every minute of it.", "The first segment is empty.", "",
          "我是中国人", "short"]
HEADS = {  # name: (num_labels, problem_type, label names)
    "single": (3, "single_label_classification", ["negative", "neutral", "positive"]),
    "multi": (4, "multi_label_classification", ["sports", "politics", "science", "art"]),
    "regression": (1, None, None),
}
TF1_LABELS = "negative,neutral,positive"


def _strings(values):
  return np.array([v.encode("utf-8") for v in values], dtype=object)


def write_hf_classifier(folder, *, num_labels, problem_type, labels, seed=0):
  """BertForSequenceClassification on MiniLM with a seeded random head."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  kw = dict(num_labels=num_labels)
  if problem_type:
    kw["problem_type"] = problem_type
  if labels:
    kw.update(id2label=dict(enumerate(labels)),
              label2id={label: i for i, label in enumerate(labels)})
  model = transformers.BertForSequenceClassification.from_pretrained(
      fixtures.minilm_dir(), **kw).eval()
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in (model.classifier.weight, model.classifier.bias):
      p.copy_(0.5 * torch.randn(p.shape, generator=generator))
  model.save_pretrained(folder, safe_serialization=True)
  for name in ("vocab.txt", "tokenizer_config.json"):
    shutil.copy(os.path.join(fixtures.minilm_dir(), name), folder)
  return str(folder)


def hf_logits(folder, sentences, second=None):
  """Hugging Face's logits [B, N] (PyTorch), tokenized by BertTokenizerFast."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)
  model = transformers.BertForSequenceClassification.from_pretrained(folder).eval()
  args = (sentences,) if second is None else (sentences, second)
  encoded = tokenizer(*args, padding=True, truncation=True, max_length=SEQ_LENGTH,
                      return_tensors="pt")
  with torch.no_grad():
    return model(**encoded).logits.numpy()


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
def exports(tmp_path_factory):
  """Each head exported once: {name: (hf folder, DIR/1)} plus "tf1"."""
  root = tmp_path_factory.mktemp("text_classifier")
  out = {}
  for name, (num_labels, problem_type, labels) in HEADS.items():
    folder = write_hf_classifier(root / f"hf_{name}", num_labels=num_labels,
                                 problem_type=problem_type, labels=labels)
    result = text_classifier.export_text_classifier(
        checkpoint=folder, output_dir=str(root / f"out_{name}"),
        seq_length=SEQ_LENGTH, report=lambda *_: None)
    out[name] = (folder, result.path)
  # The same 3-label model as a run_classifier.py checkpoint (TF1 names, Adam
  # slots and global_step as the original wrote them) with MiniLM's HF
  # config.json beside it (its "gelu" is the exact erf, as MiniLM was trained).
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


# ------------------------------------------------- served vs Hugging Face


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "multi", "regression", "tf1"])
def test_served_predict_signatures_equal_hugging_face(exports, name):
  folder, path = exports[name]
  single = run_signature_in_serving_session(path, {"sentences": _strings(SENTENCES)})
  pairs = run_signature_in_serving_session(
      path, {"sentences": _strings(SENTENCES), "second_sentences": _strings(SECOND)},
      "pairs")
  _assert_outputs(single, _expected(name, hf_logits(folder, SENTENCES)))
  _assert_outputs(pairs, _expected(name, hf_logits(folder, SENTENCES, SECOND)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["single", "multi", "regression", "tf1"])
def test_served_example_signature_equals_hugging_face(exports, name):
  """tf.Examples mixing single sentences (no second_sentences) and pairs."""
  folder, path = exports[name]
  mixed = [s if i % 2 else None for i, s in enumerate(SECOND)]
  signature = "regression" if name == "regression" else "classification"
  got = run_signature_in_serving_session(
      path, {"inputs": classifier_object.example_bytes(SENTENCES, mixed)}, signature)
  logits = np.stack([
      hf_logits(folder, [a])[0] if b is None else hf_logits(folder, [a], [b])[0]
      for a, b in zip(SENTENCES, mixed)])
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
def test_ops_are_in_tf_serving_and_object_api(exports):
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  folder, path = exports["single"]
  assert ops.ops_outside_allowlist(path) == []
  loaded = tf.saved_model.load(path)
  want = _expected("single", hf_logits(folder, SENTENCES))
  _assert_outputs({k: v.numpy() for k, v in loaded(tf.constant(SENTENCES)).items()}, want)
  layer_out = hub.KerasLayer(path)(tf.constant(SENTENCES))
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
def test_tf2_bert_classifier_checkpoint(tmp_path, use_encoder_pooler):
  """tf-models' own BertClassifier, saved as its trainer saves it (model=...)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
  from bert_hub.encoder import build_network  # pylint: disable=g-import-not-at-top
  config = fixtures.tiny_config()
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
  sentences = ["the cat sat on the mat .", "", "我是中国人", "hello world " * 10]
  loaded = tf.saved_model.load(result.path)
  packed = loaded.preprocessor(tf.constant(sentences))
  logits = classifier(packed, training=False).numpy()
  got = run_signature_in_serving_session(result.path, {"sentences": _strings(sentences)})
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


def test_set_example_method_names_rewrites_only_the_named_signature(tmp_path):
  """On a small SavedModel: the proto says classify, TF2 and TF1 loaders still run it."""
  module = tf.Module()
  module.f = tf.function(lambda inputs: {"scores": tf.ones([tf.size(inputs), 2])},
                         input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  tf.saved_model.save(module, str(tmp_path), signatures={
      "serving_default": module.f.get_concrete_function(),
      "classification": module.f.get_concrete_function()})
  classifier_object.set_example_method_names(
      str(tmp_path), {"classification": classifier_object.CLASSIFY_METHOD})
  assert classifier_object.signature_method_names(str(tmp_path)) == {
      "serving_default": "tensorflow/serving/predict",
      "classification": "tensorflow/serving/classify"}
  loaded = tf.saved_model.load(str(tmp_path))
  assert loaded.signatures["classification"](inputs=tf.constant(["a"]))["scores"].shape == (1, 2)
  got = run_signature_in_serving_session(tmp_path, {"inputs": _strings(["a", "b"])},
                                         "classification")
  np.testing.assert_array_equal(got["scores"], np.ones((2, 2), np.float32))
  with pytest.raises(RuntimeError, match="no signature 'regression'"):
    classifier_object.set_example_method_names(
        str(tmp_path), {"regression": classifier_object.REGRESS_METHOD})


# ------------------------------------- computing on the request's own lengths

# Mixed lengths across several chunks (bert_hub/length_buckets.CHUNK_SIZE rows
# each): empty strings, texts longer than S, in no order.
MIXED = (["", "hello", " ".join(["the dog"] * 30), "the cat sat on the mat .", "?",
          "i liked this film very much !", "", " ".join(["word"] * 9), "a b c d e f",
          " ".join(["long text"] * 50)] * 2 + ["one more", ""])


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
  """A tiny HF classifier (random weights) exported at S = 16, float32 and bfloat16."""
  root = tmp_path_factory.mktemp("tiny_classifier")
  folder = _tiny_hf_classifier(root / "hf", num_labels=3, labels=["a", "b", "c"])
  return folder, {precision: text_classifier.export_text_classifier(
      checkpoint=folder, output_dir=str(root / precision), seq_length=16,
      lower_case=True, serving_precision=precision, report=lambda *_: None).path
                  for precision in ("float32", "bfloat16")}


def _fixed_length_logits(folder, loaded, sentences, second=None):
  """Hugging Face's BertForSequenceClassification (PyTorch) on the export's own
  packing padded to S = 16: the fixed-length computation."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  pre = loaded.preprocessor
  if second is None:
    inputs = pre(tf.constant(sentences))
  else:
    inputs = pre.bert_pack_inputs([pre.tokenize(tf.constant(sentences)),
                                   pre.tokenize(tf.constant(second))], seq_length=16)
  model = transformers.BertForSequenceClassification.from_pretrained(folder).eval()
  with torch.no_grad():
    return model(input_ids=torch.tensor(inputs["input_word_ids"].numpy()).long(),
                 attention_mask=torch.tensor(inputs["input_mask"].numpy()).long(),
                 token_type_ids=torch.tensor(inputs["input_type_ids"].numpy()).long()
                 ).logits.numpy()


@pytest.mark.parametrize("batch", [MIXED, MIXED[2:3], MIXED[:5]])
def test_outputs_follow_length_and_equal_the_fixed_length_computation(tiny_exports, batch):
  """Batches of 22 (three chunks), 1 and 5 rows, singles and pairs: logits and
  probabilities within 1e-5 of the computation padded to S, in request order."""
  folder, paths = tiny_exports
  loaded = tf.saved_model.load(paths["float32"])
  second = list(reversed(batch))
  for got, want in (
      (loaded.signatures["serving_default"](sentences=tf.constant(batch)),
       _fixed_length_logits(folder, loaded, batch)),
      (loaded.signatures["pairs"](sentences=tf.constant(batch),
                                  second_sentences=tf.constant(second)),
       _fixed_length_logits(folder, loaded, batch, second))):
    np.testing.assert_allclose(got["logits"], want, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(want).numpy(),
                               rtol=0, atol=TOLERANCE)
  assert ops.ops_outside_allowlist(paths["float32"]) == []


def test_bfloat16_serving_precision(tiny_exports):
  """--serving-precision bfloat16: verified (relative) at export; ops allowed;
  probabilities close to float32's."""
  folder, paths = tiny_exports
  loaded = tf.saved_model.load(paths["bfloat16"])
  assert ops.ops_outside_allowlist(paths["bfloat16"]) == []
  got = loaded.signatures["serving_default"](sentences=tf.constant(MIXED))
  want = tf.nn.softmax(_fixed_length_logits(folder, loaded, MIXED)).numpy()
  np.testing.assert_allclose(got["probabilities"], want, rtol=0, atol=1e-2)
