"""Every private TensorFlow/Keras API bert-hub uses, in one place.

Each function here reaches past the public API for a measured reason (said in
its docstring); each has a test in tests/test_tf_private.py that fails loudly
when a TensorFlow or tf_keras upgrade moves or changes it, rather than leaving
a silently bigger, slower or wrong export. Imports are inside the functions:
importing this module loads neither tensorflow nor tensorflow_text.
"""
import contextlib


def registered_op_names() -> list:
  """Names of every op registered in this process (core TF plus loaded libraries).

  tensorflow.python.client.pywrap_tf_session.TF_GetAllOpList: TensorFlow has no
  public API listing registered ops; the allowlist tooling needs them.
  """
  import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from tensorflow.core.framework import op_def_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.python.client import pywrap_tf_session as c_api  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  buf = c_api.TF_GetAllOpList()
  try:
    ops = op_def_pb2.OpList()
    ops.ParseFromString(c_api.TF_GetBuffer(buf))
  finally:
    c_api.TF_DeleteBuffer(buf)
  return sorted(op.name for op in ops.op)


def traced_as_saved(options):
  """A context in which tf.functions trace as `tf.saved_model.save(options=options)` does.

  tensorflow.python.saved_model.save_context: save() traces every function
  again inside its save context (the function cache key includes it), so
  traces made outside are thrown away and a signature calling one of them is
  saved twice. Tracing inside this context lets save() find them in the cache
  (measured: 0.46 MB less saved_model.pb and about a second less export time
  for MiniLM).
  """
  from tensorflow.python.saved_model import save_context  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  if save_context.in_save_context():  # nested (TensorFlow's refuses): the outer one holds
    outer = save_context.get_save_options().experimental_variable_policy
    if outer != options.experimental_variable_policy:
      raise RuntimeError(f"internal error: traced_as_saved({options.experimental_variable_policy})"
                         f" inside traced_as_saved({outer})")
    return contextlib.nullcontext()
  return save_context.save_context(options)


def without_autograph():
  """A context in which Keras builds layers without converting `call` with autograph.

  tensorflow.python.autograph.core.ag_ctx: tf-models' layers have no
  data-dependent Python control flow; converting them costs about a second per
  process, every time a network is built or traced.
  """
  from tensorflow.python.autograph.core import ag_ctx  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  return ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED)


@contextlib.contextmanager
def uninitialized_variables():
  """Variables created inside get a shape and dtype but no value until assigned.

  tensorflow.python.ops.resource_variable_ops.UninitializedVariable: for
  networks whose every weight is assigned next (or whose variables are only
  inspected): no initializer runs and no memory is allocated. tf-models'
  TruncatedNormal initializers cost about 2 s for BERT-base on 2 cores, and the
  random values as much memory as the weights. Building must be symbolic
  (Keras functional construction). Reading such a variable before it is
  assigned gives an empty tensor without an error: assign every one
  (`bert_hub.encoder.assign_weights` checks that none is left).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.ops import resource_variable_ops  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top

  def creator(next_creator, **kwargs):
    shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
    if not callable(kwargs.get("initial_value")) or shape is None or dtype is None:
      return next_creator(**kwargs)
    return resource_variable_ops.UninitializedVariable(
        trainable=kwargs.get("trainable"), name=kwargs.get("name"), shape=shape,
        dtype=dtype, constraint=kwargs.get("constraint"),
        synchronization=kwargs.get("synchronization"),
        aggregation=kwargs.get("aggregation"))

  with tf.variable_creator_scope(creator):
    yield


def checkpoint_keys(root) -> dict:
  """{id(variable): checkpoint key} for every variable reachable from `root`.

  tensorflow.python.checkpoint.{graph_view, util} and
  tensorflow.python.trackable.trackable_utils: the key under which
  `tf.train.Checkpoint(...).write()` stores each variable (without the
  "/.ATTRIBUTES/VARIABLE_VALUE" suffix), computed without writing anything,
  so that a TF2 checkpoint can be matched against a network strictly before
  a single tensor is read.
  """
  from tensorflow.python.checkpoint import graph_view, util  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  from tensorflow.python.trackable import trackable_utils  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  _, paths, *_ = util.objects_ids_and_slot_variables_and_paths(
      graph_view.ObjectGraphView(root))
  return {id(obj): trackable_utils.object_path_to_string(path)
          for obj, path in paths.items()}


def replace_layer_call(layer, call) -> None:
  """Makes `layer` compute with `call(layer, inputs)` from its next call on.

  tf_keras calls a layer's `call` through the instance attribute: setting it
  on one instance changes that layer only (its weights, names and config stay
  the layer's). bert_hub.projections.use_matmul_projections uses it to run
  tf-models' feed-forward EinsumDense layers as fused 2-D MatMuls.
  """
  import types  # pylint: disable=g-import-not-at-top
  layer.call = types.MethodType(call, layer)


def write_fingerprint(saved_model_dir) -> None:
  """Writes `saved_model_dir/fingerprint.pb` anew from the files there.

  tensorflow.python.saved_model.fingerprinting_utils.write_fingerprint: the one
  writer of fingerprint.pb (tf.saved_model.save calls it last). Its checksum
  covers saved_model.pb, so a SavedModel whose saved_model.pb was changed after
  saving (export/classifier_object.py sets the Classify/Regress method names,
  which tf.saved_model.save cannot) needs it written again.
  """
  from tensorflow.python.saved_model import fingerprinting_utils  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  fingerprinting_utils.write_fingerprint(str(saved_model_dir))
