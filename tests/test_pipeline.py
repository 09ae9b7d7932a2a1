"""export/pipeline.py and export/verify.py: the one orchestration, on a toy kind.

The kind here is a tf.Module computing y = 2x + b with a one-input signature,
so each step of `pipeline.run` can be watched and broken on purpose: a kind
whose reloaded output differs, or whose warmup request the signature refuses,
publishes nothing.
"""
import json
import os

import numpy as np
import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from bert_hub.errors import BertHubError, ExportVerificationError
from export import pipeline, verify

import tensorflow as tf  # pylint: disable=wrong-import-order


class _Affine(tf.Module):

  def __init__(self, bias):
    super().__init__()
    self.b = tf.Variable(bias, dtype=tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  def __call__(self, x):
    return {"y": 2.0 * x + self.b}


class _Kind(pipeline.ExportKind):
  noun = "toy"
  compared = "y on three values"

  def __init__(self, *, reference_bias=1.0, warmup_feeds=None, steps=None):
    self.module = _Affine(1.0)
    self.reference_bias = reference_bias
    self.warmup_feeds = warmup_feeds or {"x": np.array([1.0], np.float32)}
    self.steps = steps if steps is not None else []
    self.x = np.array([0.0, 1.0, -3.5], np.float32)

  def build(self, stage, clock):
    self.steps.append("build")
    return pipeline.Built(obj=self.module,
                          signatures={"serving_default": self.module.__call__})

  def reference(self):
    self.steps.append("reference")
    return 2.0 * self.x + self.reference_bias

  def release(self):
    self.steps.append("release")

  def checks(self, loaded, reference):
    self.steps.append("checks")
    return [verify.Check("serving_default y",
                         loaded.signatures["serving_default"](x=tf.constant(self.x))["y"],
                         reference)]

  def warmup_requests(self):
    self.steps.append("warmup")
    return {"serving_default": [self.warmup_feeds]}

  def files(self, *, model_path, verification, digests):
    self.steps.append("files")
    return {"page.md": f"# {model_path}\n",
            "meta.json": json.dumps(verification.to_dict())}


def _run(kind, output_dir, report=None):
  lines = []
  clock = pipeline.Clock(report or (lambda stage, detail: lines.append(stage)))
  return pipeline.run(kind, output_dir=str(output_dir), version=1, overwrite=False,
                      clock=clock), lines


def test_steps_run_in_order_and_the_export_is_complete(tmp_path):
  steps = []
  result, stages = _run(_Kind(steps=steps), tmp_path)
  assert steps == ["build", "reference", "release", "checks", "warmup", "files"]
  assert stages == ["tracing", "writing", "verifying", "warmup", "model page", "done"]
  assert result.path == str(tmp_path / "1") and result.version == 1
  assert result.max_diff == 0.0
  assert {"saved_model.pb", "variables", "page.md", "meta.json", "assets.extra"} <= set(
      os.listdir(result.path))
  loaded = tf.saved_model.load(result.path)
  assert np.allclose(loaded(tf.constant([3.0]))["y"].numpy(), [7.0])
  assert json.loads(open(os.path.join(result.path, "meta.json")).read())["passed"]


def test_a_reloaded_difference_publishes_nothing(tmp_path):
  # |b - 2| = 1 everywhere; the largest |want| is |2 * -3.5 + 2| = 5.
  with pytest.raises(ExportVerificationError, match=r"serving_default y: 0.2 > 5e-05 \(scaled\)"):
    _run(_Kind(reference_bias=2.0), tmp_path)
  assert os.listdir(tmp_path) == []


def test_a_warmup_request_the_signature_refuses_publishes_nothing(tmp_path):
  bad = _Kind(warmup_feeds={"x": np.array([[1.0]], np.float32)})  # rank 2
  with pytest.raises(BertHubError, match="warmup request 0"):
    _run(bad, tmp_path)
  assert os.listdir(tmp_path) == []


def test_checks_measure_each_kind_of_difference():
  want = np.array([[1.0, 2.0], [3.0, 40.0]])
  assert verify.Check("a", want + 1e-4, want).difference() == pytest.approx(1e-4 / 40)
  assert verify.Check("a", want[:1], want).difference() == float("inf")  # shape
  assert verify.Check("ids", [1, 2], [1, 2], measure="exact").difference() == 0.0
  assert verify.Check("ids", [1, 3], [1, 2], measure="exact").difference() == float("inf")
  assert verify.Check("bf16", want * 1.01, want, measure="relative").difference() == (
      pytest.approx(0.01))
  with pytest.raises(ExportVerificationError) as e:
    verify.check_all("DIR", [verify.Check("one", [1.0], [1.1]),
                             verify.Check("two", [1], [2], measure="exact"),
                             verify.Check("three", [1.0], [1.0])], compared="x")
  assert "one: 0.0909 > 5e-05 (scaled)" in str(e.value)  # 0.1 / 1.1 and "two: not equal" in str(e.value)
  assert "three" not in str(e.value)


def test_after_save_changes_the_files_before_they_are_reloaded(tmp_path):
  """ExportKind.after_save: e.g. a SignatureDef method name save() cannot write."""
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  from export.serving import files  # pylint: disable=g-import-not-at-top

  class _Renaming(_Kind):
    def after_save(self, stage):
      self.steps.append("after_save")
      assert os.path.isfile(os.path.join(stage, "saved_model.pb"))
      path = os.path.join(stage, "saved_model.pb")
      proto = saved_model_pb2.SavedModel.FromString(open(path, "rb").read())
      proto.meta_graphs[0].signature_def["serving_default"].method_name = "renamed"
      with open(path, "wb") as f:
        f.write(proto.SerializeToString())

  steps = []
  result, _ = _run(_Renaming(steps=steps), tmp_path)
  assert steps == ["build", "reference", "after_save", "release", "checks", "warmup",
                   "files"]
  assert files.signature_def(result.path, "serving_default").method_name == "renamed"


@pytest.mark.parametrize("eager_before", [False, True])
def test_the_reference_runs_eagerly_and_the_checks_as_graphs(tmp_path, eager_before):
  """The in-memory reference: tf.functions op by op, grappler off for any graph;
  the reloaded model's checks: graphs. Both settings as they were afterwards."""
  seen = {}

  class _Watched(_Kind):
    def reference(self):
      seen["reference"] = (tf.config.functions_run_eagerly(),
                           tf.config.optimizer.get_experimental_options().get(
                               "disable_meta_optimizer", False))
      # A tf.function of the in-memory model runs its Python code: no trace.
      traces = []

      @tf.function
      def double(x):
        traces.append(1)
        return 2.0 * x
      double(tf.constant(1.0))
      double(tf.constant(2.0))
      seen["traces"] = len(traces)  # eagerly: called twice; traced: once
      return super().reference()

    def checks(self, loaded, reference):
      seen["checks"] = tf.config.functions_run_eagerly()
      return super().checks(loaded, reference)

  options = tf.config.optimizer.get_experimental_options()
  tf.config.run_functions_eagerly(eager_before)
  try:
    _run(_Watched(), tmp_path)
    assert seen == {"reference": (True, True), "traces": 2, "checks": eager_before}
    assert tf.config.functions_run_eagerly() == eager_before
    assert tf.config.optimizer.get_experimental_options() == options
  finally:
    tf.config.run_functions_eagerly(False)


def test_signature_checks_run_every_request_on_the_reloaded_model():
  """verify.signature_checks: each request of each signature against its
  reference outputs; other output names are one exact check; None skips."""
  calls = []

  def double(x):
    calls.append(x.numpy().tolist())
    return {"y": x * 2.0, "skipped": x}

  loaded = type("Loaded", (), {"signatures": {"a": double, "b": lambda x: {"z": x}}})()
  requests = {"a": [{"x": np.array([1.0])}, {"x": np.array([2.0, 3.0])}],
              "b": [{"x": np.array([1.0])}]}
  reference = {"a": [{"y": np.array([2.0]), "skipped": None},
                     {"y": np.array([4.0, 6.5]), "skipped": None}],
               "b": [{"y": np.array([1.0])}]}
  checks = verify.signature_checks(
      loaded, requests, reference,
      lambda signature, key, got, want, name: None if key == "skipped" else
      verify.Check(name, got, want))
  assert calls == [[1.0], [2.0, 3.0]]
  assert [c.name for c in checks] == ["a y (request 0)", "a y (request 1)",
                                      "b output names"]
  assert [c.difference() for c in checks[:2]] == [0.0, 0.5 / 6.5]
  assert checks[2].measure == "exact" and checks[2].difference() == float("inf")


def test_output_check_compares_by_dtype_and_precision():
  """verify.output_check: what every kind compares its outputs with."""
  floats, ids = np.array([1.0, 2.0]), np.array([1, 2], np.int32)
  labels = np.array([b"a"], dtype=object)
  assert [(c.name, c.measure, c.tolerance) for c in (
      verify.output_check("x", floats, floats),
      verify.output_check("x", floats, floats, bfloat16=True),
      verify.output_check("mask", ids, ids, bfloat16=True),
      verify.output_check("label", labels, labels))] == [
          ("x", "scaled", verify.VERIFY_TOLERANCE),
          ("x (bfloat16)", "relative", verify.BFLOAT16_TOLERANCE),
          ("mask", "exact", verify.VERIFY_TOLERANCE),
          ("label", "exact", verify.VERIFY_TOLERANCE)]
