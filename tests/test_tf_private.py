"""Each private TensorFlow/Keras API of bert_hub/_tf_private.py still works.

One test (or more) per function there: an upgrade of TensorFlow or tf_keras
that moves or changes one of them fails here, by name.
"""
import subprocess
import sys

import pytest


def test_importing_tf_private_loads_no_tensorflow():
  """ops.core_tensorflow() asks a fresh process for the ops TensorFlow alone
  registers (tests/test_serving_ops.py): importing this module must not load
  TensorFlow or an op library first."""
  code = ("import sys\nimport bert_hub._tf_private\n"
          "assert 'tensorflow' not in sys.modules, sorted(sys.modules)\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr


def test_registered_op_names_lists_core_and_loaded_ops():
  """pywrap_tf_session.TF_GetAllOpList: core ops and those of loaded op
  libraries (without TF Text in a fresh process: tests/test_serving_ops.py)."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  names = _tf_private.registered_op_names()
  assert {"MatMul", "StringSplitV2", "ReadVariableOp", "BatchMatMulV2"} <= set(names)
  assert "FastWordpieceTokenizeWithOffsets" in names  # a TF Text op
  assert len(names) > 1000 and len(names) == len(set(names))


def test_traced_as_saved_lets_save_reuse_the_trace(tmp_path):
  """save_context: a function traced inside it is saved once, not traced again."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  traces = []

  def saved_function_count(inside: bool) -> int:
    obj = tf.Module()
    obj.v = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def f(x):
      traces.append(1)
      return x * obj.v
    obj.f = f
    options = tf.saved_model.SaveOptions()
    if inside:
      with _tf_private.traced_as_saved(options):
        f.get_concrete_function()
    else:
      f.get_concrete_function()
    del traces[:]
    tf.saved_model.save(obj, str(tmp_path / str(inside)), options=options)
    return len(traces)

  assert saved_function_count(inside=False) >= 1  # save() traces again
  assert saved_function_count(inside=True) == 0  # save() found the trace


def test_traced_as_saved_nests():
  """The pipeline traces a whole export inside it, and the preprocessing model
  (bert_pack_inputs' traces) enters it again: TensorFlow's own save_context
  refuses to nest."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.saved_model import save_context  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  options = tf.saved_model.SaveOptions()
  with _tf_private.traced_as_saved(options):
    with _tf_private.traced_as_saved(tf.saved_model.SaveOptions()):
      assert save_context.get_save_options() is options
    assert save_context.in_save_context()
    with pytest.raises(RuntimeError, match="internal error"):
      with _tf_private.traced_as_saved(tf.saved_model.SaveOptions(
          experimental_variable_policy="save_variable_devices")):
        pass
  assert not save_context.in_save_context()


def test_without_autograph_disables_conversion():
  """ag_ctx.ControlStatusCtx: Python control flow stays Python inside it."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.autograph.core import ag_ctx  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  with _tf_private.without_autograph():
    assert ag_ctx.control_status_ctx().status == ag_ctx.Status.DISABLED
  assert ag_ctx.control_status_ctx().status != ag_ctx.Status.DISABLED
  del tf


def test_uninitialized_variables_have_shape_but_no_value_until_assigned():
  """UninitializedVariable: no initializer runs, assign gives the value."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  calls = []

  def initializer(shape, dtype=None):
    calls.append(shape)
    return np.ones(shape, np.float32)

  with _tf_private.uninitialized_variables():
    layer = tf_keras.layers.Dense(3, kernel_initializer=initializer)
    layer.build((None, 4))
  assert not calls
  assert tuple(layer.kernel.shape) == (4, 3) and not layer.kernel.is_initialized()
  layer.kernel.assign(np.full((4, 3), 2.0, np.float32))
  assert layer.kernel.is_initialized() and float(layer.kernel.numpy()[0, 0]) == 2.0


def test_checkpoint_keys_are_the_keys_a_checkpoint_writes(tmp_path):
  """graph_view/util/trackable_utils: the keys equal tf.train.Checkpoint's own."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  inner = tf.Module()
  inner.w = tf.Variable([1.0, 2.0])
  root = tf.train.Checkpoint(encoder=inner, step=tf.Variable(3))
  keys = _tf_private.checkpoint_keys(root)
  prefix = root.write(str(tmp_path / "ckpt"))
  written = {k.split("/.ATTRIBUTES")[0] for k, _ in tf.train.list_variables(prefix)
             if k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")}
  assert {keys[id(inner.w)], keys[id(root.step)]} == written == {"encoder/w", "step"}


def test_replace_layer_call_changes_that_layer_only():
  """tf_keras calls `call` through the instance: one layer computes anew."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  a, b = tf_keras.layers.Dense(2), tf_keras.layers.Dense(2)
  x = np.ones((1, 3), np.float32)
  a(x), b(x)  # build both
  _tf_private.replace_layer_call(a, lambda layer, inputs: inputs[:, :2] * 0 + 7)
  assert np.all(a(x).numpy() == 7)
  model = tf_keras.Sequential([a])
  assert np.all(model(x).numpy() == 7)  # also when called inside a model
  assert not np.all(b(x).numpy() == 7)


def test_write_fingerprint_follows_a_changed_saved_model_pb(tmp_path):
  """fingerprinting_utils.write_fingerprint: the checksum covers saved_model.pb."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  from bert_hub import _tf_private  # pylint: disable=g-import-not-at-top
  module = tf.Module()
  module.f = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([None])])
  tf.saved_model.save(module, str(tmp_path), signatures=module.f.get_concrete_function())
  before = tf.saved_model.experimental.read_fingerprint(str(tmp_path)).saved_model_checksum
  path = tmp_path / "saved_model.pb"
  proto = saved_model_pb2.SavedModel.FromString(path.read_bytes())
  proto.meta_graphs[0].signature_def["serving_default"].method_name = "tensorflow/serving/regress"
  path.write_bytes(proto.SerializeToString())
  _tf_private.write_fingerprint(tmp_path)
  after = tf.saved_model.experimental.read_fingerprint(str(tmp_path)).saved_model_checksum
  assert after != before
