"""Tests of export/serving/ops.py (and the errors of export/serving/files.py).

The models are tests/serving_models.py's: `plain` (core ops only), `text` (a TF
Text op TF Serving has) and `trim` (`TFText>RoundRobinTrim`, which it lacks).
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import pytest

from bert_hub.errors import BertHubError
from export.serving import files
from export.serving import ops


def test_committed_allowlist_has_tf_text_2_12_ops_but_not_round_robin_trim():
  lines = ops.ALLOWLIST_PATH.read_text().splitlines()
  assert ops.ALLOWLIST_PATH.parts[-3:] == ("export", "data", "serving_ops_allowlist.txt")
  assert lines[0].startswith("#")
  header = "\n".join(line for line in lines if line.startswith("#"))
  assert "tensorflow==2.12.1 tensorflow-text==2.12.1" in header
  assert "tools/gen_serving_op_allowlist.py" in header
  allowed = ops.serving_op_allowlist()
  assert len(allowed) > 1800
  assert {"FastWordpieceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
          "CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets",
          "TFText>FastWordpieceDetokenize", "MatMul", "ReadVariableOp"} <= allowed
  # Added to TF Text after 2.12: these must not be served.
  assert not {"TFText>RoundRobinTrim", "TFText>RoundRobinGenerateMasks",
              "TFText>Utf8Binarize"} & allowed
  # Each section is sorted, so a regenerated file diffs cleanly.
  sections = "\n".join(lines).split("\n\n")[1:]
  for section in sections:
    names = [line for line in section.splitlines() if not line.startswith("#")]
    assert names == sorted(names)


def test_allowlist_versions_come_from_the_header(tmp_path):
  assert ops.allowlist_versions() == "tensorflow==2.12.1 tensorflow-text==2.12.1"
  headless = tmp_path / "ops.txt"
  headless.write_text("MatMul\n")
  assert ops.allowlist_versions(headless) == "the allowlist"


def test_missing_allowlist_says_how_to_make_one(tmp_path):
  with pytest.raises(BertHubError, match="no op allowlist") as error:
    ops.serving_op_allowlist(tmp_path / "nope.txt")
  assert "tools/gen_serving_op_allowlist.py" in error.value.fix


def test_saved_model_op_types_lists_graph_and_function_ops(serving_models):
  found = ops.saved_model_op_types(serving_models["plain"])
  assert {"MatMul", "AddV2", "Mul", "ReadVariableOp", "Placeholder",
          "StatefulPartitionedCall"} <= found
  assert not [op for op in found if op.startswith("__inference")]
  assert "FastWordpieceTokenizeWithOffsets" in ops.saved_model_op_types(
      serving_models["text"])


def test_ops_outside_allowlist_catches_round_robin_trim_only(serving_models):
  assert ops.ops_outside_allowlist(serving_models["plain"]) == []
  assert ops.ops_outside_allowlist(serving_models["text"]) == []
  assert ops.ops_outside_allowlist(serving_models["trim"]) == ["TFText>RoundRobinTrim"]


def test_ops_outside_allowlist_takes_another_list(serving_models, tmp_path):
  allowlist = tmp_path / "ops.txt"
  allowlist.write_text("# only a few\nMatMul\n\nAddV2\n")
  outside = ops.ops_outside_allowlist(serving_models["plain"], allowlist_path=allowlist)
  assert "ReadVariableOp" in outside and "MatMul" not in outside


def test_ops_outside_core_tensorflow(serving_models):
  assert ops.ops_outside_core_tensorflow(serving_models["plain"]) == []
  assert ops.ops_outside_core_tensorflow(serving_models["text"]) == [
      "FastWordpieceTokenizeWithOffsets"]
  assert ops.ops_outside_core_tensorflow(serving_models["trim"]) == [
      "TFText>RoundRobinTrim"]


def test_core_tensorflow_is_this_tensorflow_without_tf_text(monkeypatch, tmp_path):
  """Asked in a fresh process once, then read from the kept file (a damaged
  one is asked again)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path))
  ops.core_tensorflow.cache_clear()
  answers = []
  real_run = ops.subprocess.run

  def recorded(*args, **kwargs):
    answers.append(real_run(*args, **kwargs))
    return answers[-1]
  monkeypatch.setattr(ops.subprocess, "run", recorded)
  try:
    version, names = ops.core_tensorflow()
    assert len(answers) == 1
    assert version == tf.__version__
    assert {"MatMul", "StringSplitV2", "ReadVariableOp", "BatchMatMulV2"} <= names
    assert "FastWordpieceTokenizeWithOffsets" not in names  # a TF Text op
    assert len(names) > 1000
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("core_ops-")]
    assert len(kept) == 1 and list(tmp_path.iterdir()) == kept
    ops.core_tensorflow.cache_clear()
    with monkeypatch.context() as no_child:
      no_child.setattr(ops.subprocess, "run", lambda *a, **k: pytest.fail("asked again"))
      assert ops.core_tensorflow() == (version, names)
    kept[0].write_text("bert_hub core TensorFlow ops\n", encoding="utf-8")  # damaged
    ops.core_tensorflow.cache_clear()
    # Asked again: the child's answer is replayed (a second fresh process
    # would only import TensorFlow again, 5 s).
    monkeypatch.setattr(ops.subprocess, "run",
                        lambda *a, **k: answers.append(answers[0]) or answers[0])
    assert ops.core_tensorflow() == (version, names)
    assert len(answers) == 2
    assert ops._read_core_ops(kept[0]) == (version, names)  # pylint: disable=protected-access
  finally:
    ops.core_tensorflow.cache_clear()


def test_model_base_directory_is_not_a_saved_model(serving_models):
  with pytest.raises(BertHubError) as error:
    ops.saved_model_op_types(serving_models["plain"].parent)
  assert "versions ['1']" in str(error.value)
  assert str(serving_models["plain"]) in error.value.fix


def test_files_find_the_serving_graph_and_its_signatures(serving_models, tmp_path):
  export_dir = serving_models["plain"]
  assert files.saved_model_dir(export_dir / "saved_model.pb") == export_dir
  assert list(files.serving_meta_graph(export_dir).meta_info_def.tags) == [
      files.SERVE_TAG]
  assert sorted(files.signature_def(export_dir, "serving_default").inputs) == ["n", "x"]
  with pytest.raises(BertHubError, match="has no signature 'classify'") as error:
    files.signature_def(export_dir, "classify")
  assert "serving_default" in error.value.expected
  with pytest.raises(BertHubError, match="a path that does not exist"):
    files.read_saved_model(tmp_path / "nope")
