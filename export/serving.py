"""TF Serving tooling: check, describe, configure, warm up and call a SavedModel.

Independent of how the SavedModel was built: every function here reads the files
(`saved_model.pb`, `variables/`, `assets.extra/`) and never imports bert-hub's
encoder code. The CLI in `export/serving_cli.py` is a thin layer over it.

Can the server load it?
  saved_model_op_types(path) -> set[str]
  ops_outside_allowlist(path, *, allowlist_path=None) -> list[str]
  ops_outside_core_tensorflow(path) -> list[str]
  serving_op_allowlist(path=None) -> frozenset[str]
What is in it?
  inspect_saved_model(path) -> str
How to serve it?
  write_serving_config(*, models, path, version_policy="latest", batching=True,
                       num_batch_threads=None) -> ServingConfigFiles
  BatchingParameters: the message class of `batching_parameters.txt`
Warmup (replayed by the server at load time):
  write_warmup_requests(*, export_dir, requests, signature_name, model_name) -> str
  read_warmup_requests(path) -> list[dict[str, np.ndarray]]
REST:
  rest_predict_body(inputs, *, format="instances", signature_name=None) -> dict
  rest_body_to_feeds(body, signature) -> dict[str, np.ndarray]

Why an allowlist: TF Serving images build core TensorFlow at their own version
but embed TensorFlow Text 2.12.1 (tensorflow/serving#4057). A model that uses a
newer TF Text op, e.g. `TFText>RoundRobinTrim` from `text.RoundRobinTrimmer`,
loads in Python but the server refuses it: "Op type not registered"
(tensorflow/serving#2267). `data/serving_ops_allowlist.txt` lists every op of
tensorflow==2.12.1 + tensorflow-text==2.12.1; `tools/gen_serving_op_allowlist.py`
regenerates it. The core part is conservative: a core op added after TF 2.12
would be reported although a newer server image has it (measured: a
tf-models-official BertEncoder saved by TF 2.20 uses none).
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import base64
import functools
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from bert_hub.errors import BertHubError

ALLOWLIST_PATH = pathlib.Path(__file__).parent / "data" / "serving_ops_allowlist.txt"
MODELS_CONFIG_NAME = "models.config"
BATCHING_PARAMETERS_NAME = "batching_parameters.txt"
WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses a warmup file with more records.
SERVE_TAG = "serve"

# Batching defaults for a CPU server running a BERT encoder. The TF Serving
# batching guide says to tune these per model and machine; these are a start.
# - max_batch_size 32: on CPU a BERT forward pass is compute-bound, so larger
#   batches add latency and memory ([batch, seq, hidden] activations per layer)
#   without adding throughput.
# - batch_timeout_micros 1000: "slightly above zero, e.g. 1 millisecond, tends to
#   smooth out batch sizes when the request rate is low" (batching guide).
# - max_enqueued_batches 100: a bounded queue, so overload turns into fast
#   errors instead of unbounded latency.
# - num_batch_threads: the server's core count; default is this machine's.
# - no allowed_batch_sizes: they pad every batch up to the next allowed size,
#   which on CPU is wasted compute.
# - pad_variable_length_inputs stays off: padding [batch, seq] inputs of
#   different lengths would change the shape of `sequence_output` per request.
BATCHING_DEFAULTS = {"max_batch_size": 32, "batch_timeout_micros": 1000,
                     "max_enqueued_batches": 100}


# ---------------------------------------------------------------- reading files


def _saved_model_dir(path) -> pathlib.Path:
  """The directory that holds saved_model.pb, or a BertHubError that says why not."""
  path = pathlib.Path(path)
  if path.is_file() and path.name == "saved_model.pb":
    return path.parent
  if (path / "saved_model.pb").is_file():
    return path
  versions = sorted(p.name for p in path.iterdir()
                    if p.is_dir() and p.name.isdigit()) if path.is_dir() else []
  raise BertHubError(
      f"no SavedModel at {path}",
      expected="a directory containing saved_model.pb",
      received=(f"a model base directory with versions {versions}" if versions else
                "a directory without saved_model.pb" if path.is_dir() else
                "a path that does not exist"),
      fix=(f"pass one version directory, e.g. {path / versions[-1]}" if versions else
           "pass the directory that tf.saved_model.save wrote"))


def _read_saved_model(path) -> saved_model_pb2.SavedModel:
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString(
      (_saved_model_dir(path) / "saved_model.pb").read_bytes())
  return saved_model


def _serving_meta_graph(path) -> meta_graph_pb2.MetaGraphDef:
  """The MetaGraphDef tagged "serve", the one TF Serving loads."""
  saved_model = _read_saved_model(path)
  for meta_graph in saved_model.meta_graphs:
    if list(meta_graph.meta_info_def.tags) == [SERVE_TAG]:
      return meta_graph
  tags = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
  raise BertHubError(
      f"SavedModel {path} has no MetaGraph TF Serving can load",
      expected=f"a MetaGraph tagged [{SERVE_TAG!r}]", received=f"tags {tags}",
      fix="save with tf.saved_model.save, which tags its graph 'serve'")


def _signature_def(path, signature_name) -> meta_graph_pb2.SignatureDef:
  signatures = _serving_meta_graph(path).signature_def
  if signature_name not in signatures:
    raise BertHubError(
        f"SavedModel {path} has no signature {signature_name!r}",
        expected=f"one of {sorted(signatures)}", received=repr(signature_name),
        fix="pass signature_name= one of the listed signatures, or save the "
            "model with signatures={name: function}")
  return signatures[signature_name]


# ---------------------------------------------------------------- ops


def saved_model_op_types(path) -> set[str]:
  """Every op type a SavedModel's graph uses, as TF Serving must resolve them.

  Args:
    path: a SavedModel directory (the one holding `saved_model.pb`).

  Returns:
    The `op` of every node in every MetaGraph's graph_def and in every function
    of its function library, e.g. {"MatMul", "ReadVariableOp",
    "FastWordpieceTokenizeWithOffsets", ...}. Calls of library functions (ops
    named like `__inference_call_123`) are left out: they are functions of the
    SavedModel itself, not registered ops.
  """
  op_types, function_names = set(), set()
  for meta_graph in _read_saved_model(path).meta_graphs:
    graph = meta_graph.graph_def
    op_types.update(node.op for node in graph.node)
    for function in graph.library.function:
      function_names.add(function.signature.name)
      op_types.update(node.op for node in function.node_def)
  return op_types - function_names


@functools.lru_cache(maxsize=None)
def serving_op_allowlist(path=None) -> frozenset[str]:
  """The op names in the allowlist file (default: the committed one).

  The file has one op name per line; blank lines and lines starting with '#'
  are ignored. See `tools/gen_serving_op_allowlist.py` for how it is made.
  """
  path = pathlib.Path(path or ALLOWLIST_PATH)
  if not path.is_file():
    raise BertHubError(
        "no op allowlist", expected=f"a file at {path}", received="nothing there",
        fix="run tools/gen_serving_op_allowlist.py (see its docstring)")
  lines = path.read_text(encoding="utf-8").splitlines()
  return frozenset(line.strip() for line in lines
                   if line.strip() and not line.lstrip().startswith("#"))


def _allowlist_versions(path=None) -> str:
  """E.g. 'tensorflow==2.12.1 tensorflow-text==2.12.1', read from the header."""
  text = pathlib.Path(path or ALLOWLIST_PATH).read_text(encoding="utf-8")
  found = re.search(r"^# Generated with (\S+ \S+)", text, flags=re.M)
  return found.group(1) if found else "the allowlist"


def ops_outside_allowlist(path, *, allowlist_path=None) -> list[str]:
  """Op types of the SavedModel that a TF Serving image cannot load, sorted.

  Args:
    path: a SavedModel directory.
    allowlist_path: an allowlist file; default `export/data/serving_ops_allowlist.txt`
      (core TensorFlow 2.12.1 + TensorFlow Text 2.12.1, as embedded in TF Serving).

  Returns:
    The op types not in the allowlist, e.g. ["TFText>RoundRobinTrim"] for a
    model that uses `text.RoundRobinTrimmer`; [] if the server can load them all.
  """
  return sorted(saved_model_op_types(path) - serving_op_allowlist(allowlist_path))


_LIST_CORE_OPS = """
import sys
import tensorflow
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api
buf = c_api.TF_GetAllOpList()
ops = op_def_pb2.OpList()
ops.ParseFromString(c_api.TF_GetBuffer(buf))
c_api.TF_DeleteBuffer(buf)
assert "tensorflow_text" not in sys.modules
print(tensorflow.__version__)
print("\\n".join(sorted(op.name for op in ops.op)))
"""


@functools.lru_cache(maxsize=None)
def _core_tensorflow() -> tuple[str, frozenset[str]]:
  """(version, op names) of this Python's TensorFlow without any op libraries.

  Asked in a fresh process: this one may have imported tensorflow_text (or
  another op library), and a loaded op library cannot be unloaded.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-c", _LIST_CORE_OPS], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"listing core TensorFlow ops failed:\n{result.stderr}")
  version, *names = result.stdout.split()
  return version, frozenset(names)


def ops_outside_core_tensorflow(path) -> list[str]:
  """Op types of the SavedModel that plain `import tensorflow` does not register.

  These need an op library loaded first: in Python `import tensorflow_text`, in
  TF Serving its embedded TF Text. Compared against the ops a fresh process of
  this Python registers after `import tensorflow` alone (run once, then cached).

  Returns:
    Sorted op types, e.g. ["FastWordpieceTokenizeWithOffsets"]; [] for a model
    that core TensorFlow runs by itself.
  """
  return sorted(saved_model_op_types(path) - _core_tensorflow()[1])


# ---------------------------------------------------------------- inspect


def _dtype_name(enum: int) -> str:
  return tf.dtypes.as_dtype(enum).name if enum else "invalid"


def _shape_text(shape) -> str:
  if shape.unknown_rank:
    return "<unknown rank>"
  return "[" + ", ".join("None" if d.size < 0 else str(d.size) for d in shape.dim) + "]"


def _tensor_info_text(info) -> str:
  if info.WhichOneof("encoding") == "composite_tensor":
    return "composite tensor (TF Serving cannot feed or fetch it)"
  return f"{_dtype_name(info.dtype)} {_shape_text(info.tensor_shape)}"


def _object_kind(node, meta_graph) -> str:
  """One line about a node of the SavedModel's object graph."""
  kind = node.WhichOneof("kind")
  if kind == "variable":
    v = node.variable
    trainable = ", trainable" if v.trainable else ""
    return f"variable {_dtype_name(v.dtype)} {_shape_text(v.shape)}{trainable}"
  if kind == "asset":
    filename = meta_graph.asset_file_def[node.asset.asset_file_def_index].filename
    return f"asset {filename}"
  if kind == "function":
    return f"tf.function ({len(node.function.concrete_functions)} traced signatures)"
  if kind == "bare_concrete_function":
    return "concrete function"
  if kind == "user_object":
    children = ", ".join(child.local_name for child in node.children[:8])
    more = ", ..." if len(node.children) > 8 else ""
    return f"object {node.user_object.identifier} ({children}{more})"
  return kind or "unknown"


def _variables_summary(meta_graph, export_dir: pathlib.Path) -> str:
  """'N (T trainable: P parameters), B bytes as tensors, D bytes in variables/'."""
  count = trainable = parameters = size = 0
  unknown = []
  for node in meta_graph.object_graph_def.nodes:
    if node.WhichOneof("kind") != "variable":
      continue
    v = node.variable
    count += 1
    trainable += bool(v.trainable)
    dims = [d.size for d in v.shape.dim]
    if v.shape.unknown_rank or any(d < 0 for d in dims):
      unknown.append(v.name)
      continue
    elements = int(np.prod(dims, dtype=np.int64))
    parameters += elements if v.trainable else 0
    size += elements * tf.dtypes.as_dtype(v.dtype).size  # 0 for strings, resources.
  on_disk = sum(f.stat().st_size for f in (export_dir / "variables").glob("*")
                if f.is_file())
  text = (f"{count} ({trainable} trainable: {parameters:,} parameters), "
          f"{size:,} bytes as tensors, {on_disk:,} bytes in variables/")
  if unknown:
    text += f"; {len(unknown)} of unknown shape: {', '.join(unknown)}"
  return text


def inspect_saved_model(path) -> str:
  """A human-readable report on a SavedModel, from its files alone.

  Reads `saved_model.pb` without loading the model (so no op library is needed)
  and reports: the size of saved_model.pb; each signature (method, every input
  and output with dtype and shape); the top-level objects a `tf.saved_model.load`
  or `hub.KerasLayer(...).resolved_object` user sees (e.g. `tokenize`,
  `bert_pack_inputs`, `mlm`, `vocab_file`, `do_lower_case`); the number of
  variables with their parameter count and size; op types outside core
  TensorFlow (need tensorflow_text) and outside the TF Serving allowlist.
  """
  export_dir = _saved_model_dir(path)
  meta_graph = _serving_meta_graph(export_dir)
  lines = [f"SavedModel {export_dir}",
           f"  saved_model.pb: {(export_dir / 'saved_model.pb').stat().st_size:,} bytes",
           f"  variables: {_variables_summary(meta_graph, export_dir)}",
           f"  tags: {list(meta_graph.meta_info_def.tags)}, written by TensorFlow "
           f"{meta_graph.meta_info_def.tensorflow_version or 'unknown'}"]

  # `__saved_model_init_op` is an internal entry (the init op), not a signature.
  signatures = {name: signature for name, signature in
                meta_graph.signature_def.items() if not name.startswith("__")}
  lines.append(f"signatures ({len(signatures)}):")
  for name in sorted(signatures):
    signature = signatures[name]
    lines.append(f"  {name}  ({signature.method_name})")
    for direction, infos in (("inputs", signature.inputs),
                             ("outputs", signature.outputs)):
      lines.append(f"    {direction}:")
      for key in sorted(infos):
        lines.append(f"      {key}: {_tensor_info_text(infos[key])}")

  nodes = meta_graph.object_graph_def.nodes
  if nodes:
    lines.append("top-level objects:")
    for child in sorted(nodes[0].children, key=lambda c: c.local_name):
      lines.append(f"  {child.local_name}: "
                   f"{_object_kind(nodes[child.node_id], meta_graph)}")

  version, _ = _core_tensorflow()
  outside_core = ops_outside_core_tensorflow(export_dir)
  outside_allowlist = ops_outside_allowlist(export_dir)
  lines.append(f"ops outside core TensorFlow {version} (need tensorflow_text): "
               + (", ".join(outside_core) or "none"))
  lines.append(f"ops TF Serving cannot load ({_allowlist_versions()}): "
               + (", ".join(outside_allowlist) or "none"))
  return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- serving config


def _batching_parameters_class():
  """The message class of TF Serving's BatchingParameters text proto.

  tensorflow-serving-api ships no `session_bundle_config_pb2`, so this mirrors
  the stable fields 1-7 of `message BatchingParameters` in
  tensorflow_serving/servables/tensorflow/session_bundle_config.proto (same
  names, numbers and types), in a private descriptor pool.
  """
  int64_value = ".google.protobuf.Int64Value"
  fields = [  # (name, number, type, type_name, label)
      ("max_batch_size", 1, "TYPE_MESSAGE", int64_value, "LABEL_OPTIONAL"),
      ("batch_timeout_micros", 2, "TYPE_MESSAGE", int64_value, "LABEL_OPTIONAL"),
      ("max_enqueued_batches", 3, "TYPE_MESSAGE", int64_value, "LABEL_OPTIONAL"),
      ("num_batch_threads", 4, "TYPE_MESSAGE", int64_value, "LABEL_OPTIONAL"),
      ("thread_pool_name", 5, "TYPE_MESSAGE", ".google.protobuf.StringValue",
       "LABEL_OPTIONAL"),
      ("allowed_batch_sizes", 6, "TYPE_INT64", None, "LABEL_REPEATED"),
      ("pad_variable_length_inputs", 7, "TYPE_BOOL", None, "LABEL_OPTIONAL"),
  ]
  field_proto = descriptor_pb2.FieldDescriptorProto
  file_proto = descriptor_pb2.FileDescriptorProto(
      name="bert_hub/tensorflow_serving_batching_parameters.proto",
      package="tensorflow.serving", syntax="proto3",
      dependency=["google/protobuf/wrappers.proto"])
  message = file_proto.message_type.add(name="BatchingParameters")
  for name, number, type_, type_name, label in fields:
    field = message.field.add(name=name, number=number, json_name=name,
                              type=getattr(field_proto, type_),
                              label=getattr(field_proto, label))
    if type_name:
      field.type_name = type_name
  pool = descriptor_pool.DescriptorPool()
  wrappers = descriptor_pb2.FileDescriptorProto()
  wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
  pool.Add(wrappers)
  pool.Add(file_proto)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


class ServingConfigFiles(NamedTuple):
  """What `write_serving_config` wrote, and how to start the server with it."""
  models_config: str
  batching_parameters: str | None
  command: list[str]


def _parse_version_policy(version_policy):
  """'latest' | 'all' | a sequence of version numbers -> (kind, versions)."""
  if isinstance(version_policy, str) and version_policy in ("latest", "all"):
    return version_policy, []
  if (not isinstance(version_policy, (str, bytes)) and
      isinstance(version_policy, Sequence) and version_policy and
      all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
          for v in version_policy)):
    return "specific", sorted({int(v) for v in version_policy})
  raise BertHubError(
      "bad version_policy", expected="'latest', 'all', or a non-empty list of "
      "version numbers such as [1, 3]", received=repr(version_policy),
      fix="pass version_policy='latest' to serve the highest version")


def _model_versions(name: str, base_path: pathlib.Path, kind: str,
                    specific: list[int]) -> list[int]:
  """Checks a model base directory; returns the versions the server will load."""
  if not base_path.is_dir():
    raise BertHubError(
        f"model {name!r}: no directory {base_path}",
        expected="an existing model base directory (holding version dirs 1/, 2/, ...)",
        received="a path that does not exist" if not base_path.exists() else "a file",
        fix="export the model first, or correct the path")
  if (base_path / "saved_model.pb").is_file():
    raise BertHubError(
        f"model {name!r}: {base_path} is a SavedModel, not a model base directory",
        expected="a directory whose numeric subdirectories are SavedModels",
        received="a directory holding saved_model.pb itself",
        fix=f"pass its parent and name the version directory with a number, "
            f"e.g. move it to {base_path}/1")
  versions = {int(p.name): p for p in base_path.iterdir()
              if p.is_dir() and p.name.isdigit()}
  if not versions:
    raise BertHubError(
        f"model {name!r}: no version directories in {base_path}",
        expected="at least one numeric subdirectory such as 1/ holding saved_model.pb",
        received=f"{sorted(p.name for p in base_path.iterdir())}",
        fix="export into DIR/1 (a number); TF Serving only loads numeric versions")
  if kind == "latest":
    served = [max(versions)]
  elif kind == "all":
    served = sorted(versions)
  else:
    missing = [v for v in specific if v not in versions]
    if missing:
      raise BertHubError(
          f"model {name!r}: versions {missing} not found in {base_path}",
          expected=f"versions among {sorted(versions)}", received=f"{specific}",
          fix="export the missing versions or choose existing ones")
    served = specific
  incomplete = [v for v in served
                if not (versions[v] / "saved_model.pb").is_file()]
  if incomplete:
    raise BertHubError(
        f"model {name!r}: version directories without saved_model.pb in {base_path}",
        expected="every served version directory to hold a complete SavedModel",
        received=f"versions {incomplete} without saved_model.pb",
        fix="finish or remove those exports (a half-written version is served "
            "and fails to load)")
  return served


def write_serving_config(*, models: Sequence[tuple[str, Any]], path,
                         version_policy="latest", batching: bool = True,
                         num_batch_threads: int | None = None) -> ServingConfigFiles:
  """Writes a TF Serving `models.config` and, with batching, `batching_parameters.txt`.

  Args:
    models: (name, base_path) pairs. `name` is what clients put in
      `/v1/models/NAME:predict` or `ModelSpec.name`; `base_path` is the model
      base directory whose numeric subdirectories (1/, 2/, ...) are SavedModels.
      Names must be unique; every base path must exist and hold the versions
      the policy serves, each with saved_model.pb.
    path: the directory to write into (created if missing).
    version_policy: "latest" (serve the highest version, TF Serving's default),
      "all", or a list of version numbers to serve, e.g. [1, 3].
    batching: also write `batching_parameters.txt` (see BATCHING_DEFAULTS for
      the values and why) and add --enable_batching to the command.
    num_batch_threads: the server's CPU cores (default: this machine's).

  Returns:
    ServingConfigFiles(models_config, batching_parameters, command): absolute
    paths of the files, and a `tensorflow_model_server` command line using them.
    Base paths are written absolute, as seen from this machine; a server in a
    container needs the same paths mounted.

  Raises:
    BertHubError: on duplicate or empty names, a missing or malformed base
      directory, or a bad version_policy.
  """
  kind, specific = _parse_version_policy(version_policy)
  if num_batch_threads is not None and (
      not isinstance(num_batch_threads, int) or isinstance(num_batch_threads, bool)
      or num_batch_threads < 1):
    raise BertHubError("bad num_batch_threads", expected="an integer >= 1",
                       received=repr(num_batch_threads),
                       fix="pass the server's number of CPU cores, or None for "
                           "this machine's")
  if not models:
    raise BertHubError("no models to serve", expected="at least one (name, base_path)",
                       received="an empty list",
                       fix="pass models=[('name', '/path/to/model')]")
  config = model_server_config_pb2.ModelServerConfig()
  seen = set()
  for entry in models:
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
      raise BertHubError("bad models entry", expected="a (name, base_path) pair",
                         received=repr(entry), fix="pass models=[(name, base_path)]")
    name, base_path = entry
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
      raise BertHubError(
          "bad model name", expected="letters, digits, '_', '-', '.', starting "
          "with a letter or digit (it becomes part of a URL)", received=repr(name),
          fix="rename the model, e.g. bert_en_uncased")
    if name in seen:
      raise BertHubError(
          f"model name {name!r} given twice", expected="unique model names",
          received=f"names {[m[0] for m in models]}",
          fix="give each model its own name; serve several versions of one "
              "model with version_policy instead")
    seen.add(name)
    base_path = pathlib.Path(base_path).resolve()
    _model_versions(name, base_path, kind, specific)
    model = config.model_config_list.config.add(
        name=name, base_path=str(base_path), model_platform="tensorflow")
    if kind == "latest":
      model.model_version_policy.latest.num_versions = 1
    elif kind == "all":
      model.model_version_policy.all.SetInParent()
    else:
      model.model_version_policy.specific.versions.extend(specific)

  out_dir = pathlib.Path(path).resolve()
  out_dir.mkdir(parents=True, exist_ok=True)
  models_config = out_dir / MODELS_CONFIG_NAME
  models_config.write_text(
      "# TF Serving model config, written by bert-hub (export/serving.py).\n"
      + text_format.MessageToString(config), encoding="utf-8")
  command = ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501",
             f"--model_config_file={models_config}"]

  batching_file = None
  if batching:
    threads = num_batch_threads or os.cpu_count() or 1
    params = BatchingParameters()
    params.max_batch_size.value = BATCHING_DEFAULTS["max_batch_size"]
    params.batch_timeout_micros.value = BATCHING_DEFAULTS["batch_timeout_micros"]
    params.max_enqueued_batches.value = BATCHING_DEFAULTS["max_enqueued_batches"]
    params.num_batch_threads.value = threads
    batching_file = out_dir / BATCHING_PARAMETERS_NAME
    batching_file.write_text(
        "# TF Serving batching parameters for a CPU server, written by bert-hub.\n"
        "# Starting points to tune; reasons in export/serving.py BATCHING_DEFAULTS.\n"
        f"# num_batch_threads = CPU cores ({threads}); set it to the server's.\n"
        + text_format.MessageToString(params), encoding="utf-8")
    command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
  return ServingConfigFiles(str(models_config),
                            str(batching_file) if batching_file else None, command)


# ---------------------------------------------------------------- warmup


def _as_tensor_proto(value, info, *, what: str):
  """A TensorProto of the signature input's dtype, or a BertHubError."""
  dtype = tf.dtypes.as_dtype(info.dtype)
  array = np.asarray(value)
  kind = array.dtype.kind
  compatible = (
      (dtype == tf.string and kind in "SUO") or
      (dtype.is_bool and kind == "b") or
      (dtype.is_integer and kind in "iu") or
      (dtype.is_floating and kind in "iuf"))
  if not compatible:
    raise BertHubError(
        f"{what}: wrong dtype", expected=f"values for a {dtype.name} input",
        received=f"a numpy array of dtype {array.dtype}",
        fix=f"pass np.asarray(values, dtype={dtype.name!r})" if dtype != tf.string
        else "pass an array of str or bytes")
  if dtype.is_integer and array.size and (array.min() < dtype.min or
                                          array.max() > dtype.max):
    raise BertHubError(
        f"{what}: values out of range", expected=f"{dtype.name} values "
        f"in [{dtype.min}, {dtype.max}]", received=f"[{array.min()}, {array.max()}]",
        fix="check the values; they would wrap around silently")
  expected_shape = tf.TensorShape(None if info.tensor_shape.unknown_rank else
                                  [d.size if d.size >= 0 else None
                                   for d in info.tensor_shape.dim])
  if not expected_shape.is_compatible_with(array.shape):
    raise BertHubError(
        f"{what}: wrong shape", expected=f"shape {expected_shape} (None: any size)",
        received=f"shape {list(array.shape)}",
        fix="reshape the values to the signature's input shape")
  if kind == "O":
    array = np.vectorize(lambda v: v.encode("utf-8") if isinstance(v, str) else v,
                         otypes=[object])(array) if array.size else array
  return tf.make_tensor_proto(array, dtype=dtype)


def write_warmup_requests(*, export_dir,
                          requests: Sequence[Mapping[str, Any]] | Mapping[str, Sequence],
                          signature_name: str = "serving_default",
                          model_name: str = "model") -> str:
  """Writes the TF Serving warmup file of a SavedModel.

  TF Serving replays these requests when it loads the model, so the first real
  request does not pay for lazy initialization.

  Args:
    export_dir: the SavedModel directory (one version, holding saved_model.pb).
    requests: 1 to 1000 requests, each a dict from every input name of the
      signature to a numpy array (or list) of that input's dtype and shape,
      e.g. [{"sentences": np.array([b"hello world"])}]; or, to warm up several
      signatures, a dict {signature name: [request, ...]} (1 to 1000 requests
      in all; `signature_name` is then unused).
    signature_name: the signature the requests call.
    model_name: the ModelSpec name in the requests (TF Serving does not check it).

  Returns:
    The path written: `export_dir/assets.extra/tf_serving_warmup_requests`, a
    TFRecord file of PredictionLog(predict_log=PredictLog(request=...)).
  """
  export_dir = _saved_model_dir(export_dir)
  by_signature = (dict(requests) if isinstance(requests, Mapping)
                  else {signature_name: requests})
  signatures = {name: _signature_def(export_dir, name) for name in by_signature}
  total = sum(len(batch) for batch in by_signature.values())
  if not 1 <= total <= MAX_WARMUP_RECORDS:
    raise BertHubError(
        "bad number of warmup requests", expected=f"1 to {MAX_WARMUP_RECORDS}",
        received=str(total),
        fix="pass a few representative requests (TF Serving rejects more than 1000)")
  logs = []
  for signature_name, signature, i, request in (
      (name, signatures[name], i, request)
      for name, batch in by_signature.items() for i, request in enumerate(batch)):
    if not isinstance(request, Mapping) or set(request) != set(signature.inputs):
      raise BertHubError(
          f"warmup request {i} does not match signature {signature_name!r}",
          expected=f"a dict with exactly the keys {sorted(signature.inputs)}",
          received=(f"keys {sorted(request)}" if isinstance(request, Mapping)
                    else repr(type(request))),
          fix="feed every input of the signature, and nothing else")
    predict = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
    for key, value in request.items():
      predict.inputs[key].CopyFrom(_as_tensor_proto(
          value, signature.inputs[key], what=f"warmup request {i}, input {key!r}"))
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=predict)))
  target = export_dir / WARMUP_RELATIVE_PATH
  target.parent.mkdir(exist_ok=True)
  with tf.io.TFRecordWriter(str(target)) as writer:
    for log in logs:
      writer.write(log.SerializeToString())
  return str(target)


def read_warmup_requests(path) -> list[dict[str, np.ndarray]]:
  """The predict requests in a warmup file, as dicts of numpy arrays.

  Args:
    path: the warmup file, or a SavedModel directory holding
      assets.extra/tf_serving_warmup_requests.

  Returns:
    One dict per record, input name -> np.ndarray (strings as bytes objects).
  """
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / WARMUP_RELATIVE_PATH
  if not path.is_file():
    raise BertHubError("no warmup file", expected=f"a file at {path}",
                       received="nothing there",
                       fix="write one with write_warmup_requests")
  requests = []
  for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(record)
    if log.WhichOneof("log_type") != "predict_log":
      raise BertHubError(
          f"warmup file {path} has a {log.WhichOneof('log_type')} record",
          expected="predict_log records", received=log.WhichOneof("log_type"),
          fix="only Predict warmup records are supported here")
    requests.append({key: tf.make_ndarray(tensor)
                     for key, tensor in log.predict_log.request.inputs.items()})
  return requests


# ---------------------------------------------------------------- REST


def _json_value(value, *, binary: bool):
  """A numpy/python value as TF Serving's REST JSON expects it."""
  if isinstance(value, np.ndarray):
    value = value.tolist()
  elif isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, (list, tuple)):
    return [_json_value(v, binary=binary) for v in value]
  if isinstance(value, bytes):
    if not binary:
      try:
        return value.decode("utf-8")
      except UnicodeDecodeError:
        pass
    return {"b64": base64.b64encode(value).decode("ascii")}
  if isinstance(value, (str, bool, int, float)):
    return value
  raise BertHubError("value not representable in JSON",
                     expected="numbers, bools, str or bytes (nested in lists)",
                     received=repr(type(value)), fix="convert it with np.asarray first")


def rest_predict_body(inputs: Mapping[str, Any], *, format: str = "instances",  # noqa: A002
                      signature_name: str | None = None) -> dict:
  """The JSON body of `POST /v1/models/NAME:predict` (TF Serving REST API).

  Args:
    inputs: input name -> batched values (list or numpy array; the 0-th
      dimension is the batch), e.g. {"sentences": ["hello world", "hi"]}.
      Strings may be str or bytes; bytes that are not UTF-8, and every value of
      an input whose name ends in `_bytes`, are sent base64 as {"b64": ...}.
    format: "instances" (row format: one object per example; all inputs need
      the same batch size) or "inputs" (columnar: one batched value per input).
    signature_name: included if given; the server defaults to "serving_default".

  Returns:
    A dict to send with json.dumps, e.g. {"instances": [{"sentences": "hello
    world"}, {"sentences": "hi"}]} or {"inputs": {"sentences": ["hello world",
    "hi"]}}. Inputs are always named, which the server accepts for any number
    of inputs.
  """
  if format not in ("instances", "inputs"):
    raise BertHubError("bad REST format", expected="'instances' or 'inputs'",
                       received=repr(format), fix="pass format='instances'")
  if not inputs:
    raise BertHubError("no inputs", expected="a dict of input name -> values",
                       received="an empty dict", fix="pass the signature's inputs")
  columns = {name: _json_value(value, binary=name.endswith("_bytes"))
             for name, value in inputs.items()}
  body = {} if signature_name is None else {"signature_name": signature_name}
  if format == "inputs":
    body["inputs"] = columns
    return body
  sizes = {name: len(v) if isinstance(v, list) else None for name, v in columns.items()}
  if None in sizes.values() or len(set(sizes.values())) != 1 or 0 in sizes.values():
    raise BertHubError(
        "inputs cannot be sent in row format",
        expected="every input batched with the same, non-zero 0-th dimension",
        received=f"batch sizes {sizes} (None: not a list)",
        fix="use format='inputs' (columnar), which has no such restriction")
  batch = next(iter(sizes.values()))
  body["instances"] = [{name: column[i] for name, column in columns.items()}
                       for i in range(batch)]
  return body


def _signature_inputs(signature) -> dict[str, tuple[tf.DType, tf.TensorShape]]:
  """name -> (dtype, shape) from a SignatureDef or a concrete signature function."""
  if isinstance(signature, meta_graph_pb2.SignatureDef):
    return {name: (tf.dtypes.as_dtype(info.dtype),
                   tf.TensorShape(None if info.tensor_shape.unknown_rank else
                                  [d.size if d.size >= 0 else None
                                   for d in info.tensor_shape.dim]))
            for name, info in signature.inputs.items()}
  structured = getattr(signature, "structured_input_signature", None)
  if structured is not None:
    _, kwargs = structured
    return {name: (spec.dtype, spec.shape) for name, spec in kwargs.items()}
  raise BertHubError(
      "bad signature", expected="a SignatureDef proto or a function from "
      "tf.saved_model.load(...).signatures[name]", received=repr(type(signature)),
      fix="pass loaded.signatures['serving_default']")


def _rest_error(message: str) -> BertHubError:
  return BertHubError("TF Serving would reject this REST body",
                      expected="a body as described in TF Serving's REST API doc",
                      received=message, fix="build it with rest_predict_body")


def _is_b64(value) -> bool:
  return isinstance(value, dict) and len(value) == 1 and isinstance(
      value.get("b64"), str)


def _json_leaf(value, dtype: tf.DType):
  """One JSON scalar as a value of dtype, with the server's type rules."""
  if dtype == tf.string:
    if _is_b64(value):
      try:
        return base64.b64decode(value["b64"], validate=True)
      except ValueError as e:
        raise _rest_error(f"bad base64 in {value}") from e
    if isinstance(value, str):
      return value.encode("utf-8")
  elif dtype.is_bool:
    if isinstance(value, bool):
      return value
  elif dtype.is_integer:
    if isinstance(value, int) and not isinstance(value, bool):
      if not dtype.min <= value <= dtype.max:
        raise _rest_error(f"{value} out of range for {dtype.name}")
      return value
  elif dtype.is_floating:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return value
  raise _rest_error(f"JSON value {value!r} is not of expected type {dtype.name}")


def _json_to_array(value, dtype: tf.DType) -> np.ndarray:
  """A nested JSON list as a dense array; shape from the first elements."""
  shape, probe = [], value
  while isinstance(probe, list):
    shape.append(len(probe))
    probe = probe[0] if probe else None
  flat = []

  def fill(v, level):
    if not isinstance(v, list):
      if level != len(shape):
        raise _rest_error(f"value {v!r} at nesting level {level + 1}, "
                          f"expected level {len(shape)} (ragged list?)")
      flat.append(_json_leaf(v, dtype))
      return
    if level >= len(shape) or len(v) != shape[level]:
      raise _rest_error(f"list of size {len(v)} at level {level}, expected "
                        f"{shape[level] if level < len(shape) else 'a scalar'} "
                        "(ragged list?)")
    for item in v:
      fill(item, level + 1)

  fill(value, 0)
  np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
  array = np.empty(len(flat), dtype=np_dtype)
  array[:] = flat
  return array.reshape(shape)


def rest_body_to_feeds(body, signature) -> dict[str, np.ndarray]:
  """The tensors TF Serving would feed for a REST predict body.

  Mirrors TF Serving's JSON parsing (tensorflow_serving/util/json_tensor.cc):
  "instances" is a non-empty list of per-example objects (or of plain values
  when the signature has one input) batched along a new 0-th dimension;
  "inputs" is an object of batched values (or one plain value for a single
  input); strings are UTF-8 or {"b64": ...}; numbers must fit the input dtype
  (an integer input refuses 1.5); keys of "inputs" that the signature does
  not have are ignored, as the server does.

  Args:
    body: the body as a dict or a JSON string/bytes.
    signature: the signature the body is for: a SignatureDef proto, or a
      function from `tf.saved_model.load(...).signatures[name]`.

  Returns:
    Input name -> np.ndarray of the signature's dtype (strings as bytes objects),
    ready for `signature(**{k: tf.constant(v) ...})` or a session's feed_dict.
  """
  if isinstance(body, (str, bytes)):
    body = json.loads(body)
  if not isinstance(body, dict):
    raise _rest_error(f"a JSON {type(body).__name__}, not an object")
  specs = _signature_inputs(signature)
  if ("instances" in body) == ("inputs" in body):
    raise _rest_error("expecting exactly one of 'instances' or 'inputs'")
  if "inputs" in body:
    value = body["inputs"]
    if not isinstance(value, dict) or _is_b64(value):
      if len(specs) != 1:
        raise _rest_error("'inputs' is a plain value/list, but the signature "
                          f"has inputs {sorted(specs)}")
      value = {next(iter(specs)): value}
    missing = sorted(set(specs) - set(value))
    if missing:
      raise _rest_error(f"missing named inputs {missing} in 'inputs'")
    feeds = {name: _json_to_array(value[name], dtype)
             for name, (dtype, _) in specs.items()}
  else:
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
      raise _rest_error("'instances' must be a non-empty list")
    def is_object(row):
      return isinstance(row, dict) and not _is_b64(row)

    named = is_object(rows[0])
    if not named and len(specs) != 1:
      raise _rest_error("'instances' is a plain list, but the signature has "
                        f"inputs {sorted(specs)}; send one object per example")
    columns = {name: [] for name in specs}
    for i, row in enumerate(rows):
      if is_object(row) != named:
        raise _rest_error(f"instance {i} is {'not ' if named else ''}an object, "
                          f"unlike instance 0")
      row = row if named else {next(iter(specs)): row}
      if set(row) != set(specs):
        raise _rest_error(f"instance {i} has keys {sorted(row)}, "
                          f"must be equal to {sorted(specs)}")
      for name in specs:
        columns[name].append(row[name])
    feeds = {}
    for name, (dtype, _) in specs.items():
      items = [_json_to_array(item, dtype) for item in columns[name]]
      shapes = {item.shape for item in items}
      if len(shapes) != 1:
        raise _rest_error(f"input {name!r} has instances of shapes {sorted(shapes)}")
      feeds[name] = np.stack(items)  # [batch, *instance shape]
  for name, (_, shape) in specs.items():
    if not shape.is_compatible_with(feeds[name].shape):
      raise _rest_error(f"input {name!r} has shape {list(feeds[name].shape)}, "
                        f"the signature wants {shape}")
  return feeds
