"""How to serve a SavedModel: TF Serving's `models.config` and batching parameters.

  write_serving_config(*, models, path, version_policy="latest", batching=True,
                       num_batch_threads=None) -> ServingConfigFiles
  BatchingParameters     the message class of `batching_parameters.txt`
  BATCHING_DEFAULTS      the values written, and why

`bert-hub-export serving-config` calls write_serving_config. models.config is a
`tensorflow.serving.ModelServerConfig` text proto (its class comes with
tensorflow-serving-api); BatchingParameters mirrors TF Serving's message, which
tensorflow-serving-api does not ship.
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import os
import pathlib
import re
from typing import Any, NamedTuple, Sequence

import numpy as np
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from bert_hub.errors import BertHubError

MODELS_CONFIG_NAME = "models.config"
BATCHING_PARAMETERS_NAME = "batching_parameters.txt"

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


def _batching_parameters_class():
  """The message class of TF Serving's BatchingParameters text proto.

  tensorflow-serving-api ships no `session_bundle_config_pb2`, so this mirrors
  the stable fields 1-7 of `message BatchingParameters` in
  tensorflow_serving/servables/tensorflow/session_bundle_config.proto (same
  names, numbers and types), in a private descriptor pool. Fields 8 and 9
  (large-batch splitting) are left out: bert-hub does not write them.
  tests/test_server_config.py checks the mirror against that proto file.
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
      "# TF Serving model config, written by bert-hub "
      "(export/serving/server_config.py).\n"
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
        "# Starting points to tune; reasons in BATCHING_DEFAULTS of "
        "export/serving/server_config.py.\n"
        f"# num_batch_threads = CPU cores ({threads}); set it to the server's.\n"
        + text_format.MessageToString(params), encoding="utf-8")
    command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
  return ServingConfigFiles(str(models_config),
                            str(batching_file) if batching_file else None, command)
