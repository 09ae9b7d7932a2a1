"""The model page and bert_hub.json written beside every encoder export.

Oracles: the two TF Hub pages (tests/data/tfhub_*.md, copied from
shared/seeds/) for structure and facts; running the page's own snippets against
a small export for "it runs"; hashlib and the checkpoint's files for checksums.
"""
import hashlib
import json
import os
import re

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError
from export import cli, lib
from export.pages import encoder_page, metadata, naming
from export.verify import VERIFY_TOLERANCE
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order

DATA = os.path.join(os.path.dirname(__file__), "data")
PAGE_000 = os.path.join(DATA, "tfhub_bert_en_wwm_uncased_L-24_H-1024_A-16_3.md")
PAGE_002 = os.path.join(DATA, "tfhub_bert_zh_L-12_H-768_A-12_1.md")
SMALL = fixtures.tiny_config(max_position_embeddings=128)  # snippets use seq_length 128
H = SMALL.hidden_size


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def _big(layers, hidden, heads, vocab):
  return BertConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                    num_heads=heads, intermediate_size=4 * hidden)


def _headings(page):
  return [line for line in page.splitlines() if line.startswith("#")]


def _metadata_lines(page):
  return dict(re.findall(r"^<!-- ([a-z-]+): (.*) -->$", page, flags=re.MULTILINE))


def _section(page, heading):
  """The text under `## heading` up to the next `## `."""
  match = re.search(rf"^## {heading}\n(.*?)(?=^## |\Z)", page, re.DOTALL | re.MULTILINE)
  assert match, f"no section {heading}"
  return match.group(1)


def _bullets(text):
  """Changelog bullets, whitespace-normalized."""
  return [" ".join(b.split()) for b in re.split(r"^\s*\* ", text, flags=re.MULTILINE)[1:]]


def _normalized(text):
  return " ".join(text.replace("&zwnj;", "").split())


def _run_snippets(page, model_path, *, replace=None):
  """Runs the page's python blocks as written (only the model path replaced)."""
  namespace = {}
  for block in encoder_page.python_blocks(page):
    if replace:
      assert replace in block or "hub.KerasLayer" not in block
      block = block.replace(replace, model_path)
    exec(compile(block, "<page snippet>", "exec"), namespace)  # pylint: disable=exec-used
  return namespace


@pytest.fixture(scope="module")
def small(tmp_path_factory, run_shared):
  """A small TF1 checkpoint with the Chinese-holding TINY_VOCAB, exported as
  version 3 (en, defaults) and version 1 (zh-cn, as 002 states it).

  Version 3 is tests/fixtures.py's tiny128_encoders (the CLI with defaults and
  --lower-case, made once per run); version 1 is exported here from its checkpoint.
  """
  root = tmp_path_factory.mktemp("pages")
  shared = fixtures.tiny128_encoders(run_shared)
  prefix = shared["prefix"]
  v1 = lib.export_encoder(checkpoint=prefix, output_dir=str(root / "zh"), version=1,
                          lower_case=True, publisher="tensorflow", language="zh-cn",
                          dataset="Wikipedia", whole_word_masking=False,
                          report=lib.quiet_report).path
  return dict(prefix=prefix, v3=shared[3], v1=v1, root=root)


def test_tfhub_names():
  assert naming.tfhub_name(_big(24, 1024, 16, 30522), language="en", cased=False,
                               whole_word_masking=True) == "bert_en_wwm_uncased_L-24_H-1024_A-16"
  assert naming.tfhub_name(_big(12, 768, 12, 21128), language="zh-cn",
                               cased=False) == "bert_zh_L-12_H-768_A-12"
  assert naming.tfhub_name(_big(12, 768, 12, 28996), language="en",
                               cased=True) == "bert_en_cased_L-12_H-768_A-12"
  assert naming.tfhub_name(_big(12, 768, 12, 119547), language="multi", cased=True,
                               whole_word_masking=None) == "bert_multi_cased_L-12_H-768_A-12"


def _page_000_like():
  config = _big(24, 1024, 16, 30522)
  name = naming.tfhub_name(config, language="en", cased=False, whole_word_masking=True)
  return encoder_page.render(
      config=config, version=3, lower_case=True, publisher="tensorflow", name=name,
      language="en", dataset="Wikipedia and BooksCorpus", whole_word_masking=True,
      model_path=f"models/{name}/3")


def test_l24_wwm_page_has_the_structure_and_facts_of_000():
  ours, seed = _page_000_like(), _read(PAGE_000)
  assert _normalized(_headings(ours)[0]) == _normalized(_headings(seed)[0])
  assert _headings(ours) == [h.replace("&zwnj;", "") for h in _headings(seed)]
  meta, seed_meta = _metadata_lines(ours), _metadata_lines(seed)
  assert list(meta) == list(seed_meta)
  assert {k: v for k, v in meta.items() if k != "asset-path"} == {
      k: v for k, v in seed_meta.items() if k != "asset-path"}
  assert meta["asset-path"] == "models/bert_en_wwm_uncased_L-24_H-1024_A-16/3"
  for fact in ("It uses L=24 hidden layers (i.e., Transformer blocks), a hidden size of "
               "H=1024, and A=16 attention heads.",
               "This model has been pre-trained for English",
               'Text inputs have been normalized the "uncased" way',
               "random input masking",  # 000 has a typo: "as been applied to whole words"
               "applied to whole words (i.e., the pieces of each input word are randomly "
               "masked all at once or not).",
               "All parameters in the module are trainable",
               'pooled_output = outputs["pooled_output"] # [batch_size, 1024].',
               'sequence_output = outputs["sequence_output"] # [batch_size, seq_length, 1024].',
               "the intermediate activations of all L=24 Transformer blocks",
               "of shape `[batch_size, seq_length, 1024]`"):
    assert fact in _normalized(ours) and fact in _normalized(seed), fact
  assert "Wikipedia and BooksCorpus" in _normalized(_section(ours, "Overview"))
  # The changelog up to version 3 is 000's.
  assert _bullets(_section(ours, "Changelog")) == _bullets(_section(seed, "Changelog"))
  assert re.findall(r"^### .*", ours, re.M) == re.findall(r"^### .*", seed, re.M)


def test_l24_page_snippet_runs_against_a_small_export(small):
  page = _page_000_like()
  ns = _run_snippets(page, small["v3"], replace="models/bert_en_wwm_uncased_L-24_H-1024_A-16/3")
  assert ns["seq_length"] == 128
  assert ns["pooled_output"].shape.as_list() == [None, H]
  assert ns["sequence_output"].shape.as_list() == [None, 128, H]
  assert len(ns["outputs"]["encoder_outputs"]) == SMALL.num_layers


def _page_002_like():
  config = _big(12, 768, 12, 21128)
  name = naming.tfhub_name(config, language="zh-cn", cased=False)
  return encoder_page.render(
      config=config, version=1, lower_case=True, publisher="tensorflow", name=name,
      language="zh-cn", dataset="Wikipedia", whole_word_masking=False,
      model_path=f"models/{name}/1")


def test_zh_v1_page_has_the_structure_and_facts_of_002():
  ours, seed = _page_002_like(), _read(PAGE_002)
  assert _headings(ours)[0] == _headings(seed)[0] == "# Module tensorflow/bert_zh_L-12_H-768_A-12/1"
  assert _headings(ours) == _headings(seed) + ["## Changelog", "### Version 1"]
  meta, seed_meta = _metadata_lines(ours), _metadata_lines(seed)
  assert set(meta) <= set(seed_meta)  # 002 also has the older `task` line
  for key in ("fine-tunable", "format", "language", "module-type"):
    assert meta[key] == seed_meta[key], key
  assert meta["dataset"].lower() == seed_meta["dataset"].lower()
  for fact in ("It uses L=12 hidden layers (i.e., Transformer blocks), a hidden size of "
               "H=768, and A=12 attention heads.",
               "This model has been pre-trained for Chinese",
               "For training, random input masking has been applied independently to "
               "word pieces (as in the original BERT paper).",
               "a `pooled_output` of shape `[batch_size, 768]`",
               "a `sequence_output` of shape `[batch_size, max_seq_length, 768]`",
               "pooled_output, sequence_output = bert_layer([input_word_ids, input_mask, "
               "segment_ids])",
               "vocab_file = bert_layer.resolved_object.vocab_file.asset_path.numpy()",
               "do_lower_case = bert_layer.resolved_object.do_lower_case.numpy()",
               "tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)"):
    assert fact in _normalized(ours) and fact in _normalized(seed), fact
  assert "uncased" not in _section(ours, "Overview")  # 002 says nothing of case for zh
  changelog = _bullets(_section(ours, "Changelog"))
  assert changelog[0] == "Initial release."
  assert any("Dropout is not applied when re-training" in b and "Fixed in version 2" in b
             for b in changelog)


def test_zh_v1_page_snippets_run_against_a_small_zh_export(small):
  ns = _run_snippets(_page_002_like(), small["v1"],
                     replace="models/bert_zh_L-12_H-768_A-12/1")
  assert ns["pooled_output"].shape.as_list() == [None, H]
  assert ns["sequence_output"].shape.as_list() == [None, None, H]  # v1, as documented
  tokens = ns["tokenizer"].tokenize("我是中国人")
  assert tokens == ["我", "是", "中", "国", "人"]
  ids = ns["tokenizer"].convert_tokens_to_ids(["[CLS]"] + tokens + ["[SEP]"])
  model = tf.keras.Model([ns["input_word_ids"], ns["input_mask"], ns["segment_ids"]],
                         [ns["pooled_output"], ns["sequence_output"]])
  pad = 128 - len(ids)
  pooled, sequence = model.predict(
      [np.array([ids + [0] * pad], np.int32), np.array([[1] * len(ids) + [0] * pad], np.int32),
       np.zeros((1, 128), np.int32)], verbose=0)
  assert pooled.shape == (1, H) and sequence.shape == (1, 128, H)


def _stated_shapes(page):
  """Shapes the page states, as lists with symbolic names for batch and seq."""
  return {m.group(1): m.group(2) for m in re.finditer(
      r"`?(pooled_output|sequence_output)`?[^\n]*?`?\[(batch_size(?:, \w+)*(?:, \d+))\]",
      page)}


@pytest.mark.parametrize("which", ["v3", "v1"])
def test_the_written_page_runs_as_written_and_states_real_sizes(small, which):
  path = small[which]
  page = _read(os.path.join(path, metadata.PAGE_FILE))
  assert f'"{path}"' in page  # the snippet loads this export
  ns = _run_snippets(page, path)
  seq = ns.get("seq_length", ns.get("max_seq_length"))
  assert seq == 128
  stated = _stated_shapes(page)
  assert stated["pooled_output"] == f"batch_size, {H}"
  assert re.fullmatch(rf"batch_size, (max_)?seq_length, {H}", stated["sequence_output"])
  # What the page states, at run time: build and call the snippet's model.
  if which == "v3":
    inputs = list(ns["inputs"].values())
    model = tf.keras.Model(ns["inputs"], [ns["pooled_output"], ns["sequence_output"]])
  else:
    inputs = [ns["input_word_ids"], ns["input_mask"], ns["segment_ids"]]
    model = tf.keras.Model(inputs, [ns["pooled_output"], ns["sequence_output"]])
  batch = [np.ones((2, seq), np.int32) for _ in inputs]
  pooled, sequence = model.predict(dict(zip(ns["inputs"], batch)) if which == "v3"
                                   else batch, verbose=0)
  assert pooled.shape == (2, H) and sequence.shape == (2, seq, H)
  assert f"L={SMALL.num_layers} hidden layers" in page
  assert f"H={H}," in page and f"A={SMALL.num_heads} attention" in page


def test_defaults_state_only_what_is_known(small):
  page = _read(os.path.join(small["v3"], metadata.PAGE_FILE))
  assert _headings(page)[0] == "# Module bert-hub/bert_en_uncased_L-2_H-16_A-4/3"
  assert _metadata_lines(page)["dataset"] == "unknown"
  assert "pre-training data was not stated" in _normalized(page)
  assert "masking" not in page  # whole-word masking or not: not stated
  assert "checkpoint `bert_model.ckpt`" in page
  zh = _read(os.path.join(small["v1"], metadata.PAGE_FILE))
  assert _headings(zh)[0] == "# Module tensorflow/bert_zh_L-2_H-16_A-4/1"
  assert "applied independently to word pieces" in zh


def test_metadata_file_records_the_export(small):
  with open(os.path.join(small["v3"], metadata.METADATA_FILE), encoding="utf-8") as f:
    meta = json.load(f)
  assert meta["handle"] == "bert-hub/bert_en_uncased_L-2_H-16_A-4/3"
  assert meta["version"] == 3 and meta["interface"]["api"] == "dict"
  assert meta["lower_case"] is True
  assert meta["checkpoint"]["format"] == "tf1"
  assert meta["checkpoint"]["path"] == os.path.abspath(small["prefix"])
  files = meta["checkpoint"]["files"]
  assert sorted(os.path.basename(e["path"]) for e in files) == sorted(
      n for n in os.listdir(os.path.dirname(small["prefix"])) if n.startswith("bert_model.ckpt"))
  for entry in files:
    with open(entry["path"], "rb") as f:
      data = f.read()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["bytes"] == len(data)
  assert meta["config"] == SMALL.to_dict()
  assert meta["packages"]["tensorflow"] == tf.__version__
  assert set(meta["packages"]) == set(metadata.PACKAGES)
  assert meta["packages"]["bert-hub"]
  assert meta["verification"]["passed"] is True
  assert 0 <= meta["verification"]["max_diff"] <= meta["verification"]["tolerance"]
  assert meta["verification"]["tolerance"] == VERIFY_TOLERANCE
  assert meta["stated"] == dict(language="en", dataset=None, whole_word_masking=None)
  with open(os.path.join(small["v1"], metadata.METADATA_FILE), encoding="utf-8") as f:
    zh = json.load(f)
  assert zh["interface"] == dict(
      api="list", inputs=["input_word_ids", "input_mask", "segment_ids"],
      outputs=["pooled_output", "sequence_output"], dropout_when_training=False,
      static_seq_length=False)
  assert zh["stated"] == dict(language="zh-cn", dataset="Wikipedia",
                              whole_word_masking=False)


def test_tf_serving_session_ignores_the_extra_files(small):
  from tests import serving_utils  # pylint: disable=g-import-not-at-top
  path = small["v1"]
  assert {metadata.PAGE_FILE, metadata.METADATA_FILE} <= set(os.listdir(path))
  feeds = dict(input_word_ids=np.array([[2, 52, 53, 3, 0]], np.int32),
               input_mask=np.array([[1, 1, 1, 1, 0]], np.int32),
               segment_ids=np.zeros((1, 5), np.int32))
  served = serving_utils.run_signature_in_serving_session(path, feeds)
  want = tf.saved_model.load(path).signatures["serving_default"](
      **{k: tf.constant(v) for k, v in feeds.items()})
  for key in ("pooled_output", "sequence_output"):
    assert np.max(np.abs(served[key] - want[key].numpy())) <= VERIFY_TOLERANCE


def test_cli_page_options(tmp_path, capsys):
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "ckpt", SMALL)
  fixtures.write_vocab(tmp_path / "ckpt")
  out = tmp_path / "out"
  assert cli.main(["encoder", "--checkpoint", prefix, "--output", str(out),
                   "--publisher", "a/b"]) == cli.EXIT_BAD_INPUT
  assert "bad --publisher" in capsys.readouterr().err
  assert not os.path.exists(out / "3")
  assert cli.main(["encoder", "--checkpoint", prefix, "--output", str(out),
                   "--language", "English"]) == cli.EXIT_BAD_INPUT
  assert "bad --language" in capsys.readouterr().err
  assert cli.main(["encoder", "--checkpoint", prefix, "--output", str(out), "--version", "2",
                   "--no-lower-case", "--publisher", "me", "--language", "de",
                   "--dataset", "German Wikipedia", "--whole-word-masking"]) == 0
  page = _read(out / "2" / metadata.PAGE_FILE)
  assert _headings(page)[0] == "# Module me/bert_de_wwm_cased_L-2_H-16_A-4/2"
  assert "pre-trained for German\non German Wikipedia." in page
  assert 'normalized the "cased" way' in page
  assert "applied to whole words" in page
  assert "### Version 2" in page and "### Version 3" not in page
  assert "Known defect" not in page  # version 2 fixed them
  assert cli.main(["encoder", "--checkpoint", prefix, "--output", str(out), "--version", "1",
                   "--name", "my_bert"]) == 0
  assert _headings(_read(out / "1" / metadata.PAGE_FILE))[0] == "# Module bert-hub/my_bert/1"


def test_check_facts_refuses_what_breaks_the_handle():
  with pytest.raises(BertHubError, match="bad --name"):
    naming.check_facts(publisher="x", name="has space", language="en")
  with pytest.raises(BertHubError, match="bad --dataset"):
    naming.check_facts(publisher="x", name=None, language="en", dataset="a --> b")
  naming.check_facts(publisher="tensorflow", name=None, language="zh-cn",
                         dataset="Wikipedia")
