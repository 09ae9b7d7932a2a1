"""Tests of export/serving/inspect.py on tests/serving_models.py's models."""
import bert_hub  # noqa: F401  (must come before tensorflow)

import pytest

from bert_hub.errors import BertHubError
from export.serving import inspect


def test_inspect_reports_signatures_objects_variables_and_ops(serving_models):
  report = inspect.inspect_saved_model(serving_models["plain"])
  assert report.startswith(f"SavedModel {serving_models['plain']}\n")
  assert "saved_model.pb: " in report
  assert "serving_default  (tensorflow/serving/predict)" in report
  assert "x: float32 [None, 3]" in report
  assert "n: int32 [None]" in report
  assert "y: float32 [None, 2]" in report
  assert "n_doubled: int32 [None]" in report
  assert "__saved_model_init_op" not in report
  assert "vocab_file: asset vocab.txt" in report
  assert "do_lower_case: variable bool []" in report
  assert "w: variable float32 [3, 2], trainable" in report
  # w: 6 float32 + b: 2 float32 trainable; do_lower_case: 1 bool, not trainable.
  assert "variables: 3 (2 trainable: 8 parameters), 33 bytes as tensors" in report
  assert "(need tensorflow_text): none" in report
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): none" in report

  report = inspect.inspect_saved_model(serving_models["text"])
  assert "sentences: string [None]" in report
  assert "token_ids: int64 [None, None]" in report
  assert "tokenize: tf.function" in report
  assert "(need tensorflow_text): FastWordpieceTokenizeWithOffsets" in report

  report = inspect.inspect_saved_model(serving_models["trim"])
  assert "cannot load (tensorflow==2.12.1 tensorflow-text==2.12.1): " \
         "TFText>RoundRobinTrim" in report


def test_inspect_refuses_a_model_base_directory(serving_models):
  with pytest.raises(BertHubError, match="a model base directory with versions"):
    inspect.inspect_saved_model(serving_models["text"].parent)
