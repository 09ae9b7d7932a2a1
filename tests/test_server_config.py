"""Tests of export/serving/server_config.py: models.config and batching parameters.

models.config is parsed back with tensorflow-serving-api's own ModelServerConfig;
the mirrored BatchingParameters is checked against TF Serving's .proto file and
its documentation (quoted below), not against itself.
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import pathlib
import re
import shutil

import pytest
from google.protobuf import descriptor
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from bert_hub.errors import BertHubError
from export.serving import server_config

# The fields of `message BatchingParameters`, comments left out, from
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto at
# github.com/tensorflow/serving commit 88ff3dd31ecde9ca8ba3dc21e194dce126202a48
# (2025-02-11, its latest change at master 9d981c5c2708d23c5407c7c1e30309e6f9798874).
SESSION_BUNDLE_CONFIG_PROTO = """
package tensorflow.serving;
message BatchingParameters {
  google.protobuf.Int64Value max_batch_size = 1;
  google.protobuf.Int64Value batch_timeout_micros = 2;
  google.protobuf.Int64Value max_enqueued_batches = 3;
  google.protobuf.Int64Value num_batch_threads = 4;
  google.protobuf.StringValue thread_pool_name = 5;
  google.protobuf.BoolValue enable_large_batch_splitting = 8;
  google.protobuf.Int64Value max_execution_batch_size = 9;
  repeated int64 allowed_batch_sizes = 6;
  bool pad_variable_length_inputs = 7;
}
"""
# "Example batching parameters file" of tensorflow_serving/g3doc/serving_config.md
# (https://www.tensorflow.org/tfx/serving/serving_config#batching_configuration).
DOCUMENTED_BATCHING_PARAMETERS = """
max_batch_size { value: 128 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000000 }
num_batch_threads { value: 8 }
"""
# Fields of the real message that the mirror leaves out (it never writes them).
NOT_MIRRORED = {"enable_large_batch_splitting", "max_execution_batch_size"}


def _parse_models_config(path) -> model_server_config_pb2.ModelServerConfig:
  return text_format.Parse(pathlib.Path(path).read_text(),
                           model_server_config_pb2.ModelServerConfig())


def _proto_fields(proto_text: str) -> dict[str, tuple[int, str, bool]]:
  """name -> (number, type as written in .proto, repeated) of each field line."""
  fields = {}
  for repeated, type_, name, number in re.findall(
      r"^\s*(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+);", proto_text, flags=re.M):
    fields[name] = (int(number), type_, bool(repeated))
  return fields


def _descriptor_type(field) -> str:
  """A FieldDescriptor's type as a .proto file writes it."""
  if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
    return field.message_type.full_name
  return {descriptor.FieldDescriptor.TYPE_INT64: "int64",
          descriptor.FieldDescriptor.TYPE_BOOL: "bool"}[field.type]


def test_batching_parameters_mirror_matches_tf_serving_proto():
  """Against the real session_bundle_config.proto (quoted above, source named).

  Every mirrored field has the real field's number, type and label; the fields
  left out are exactly NOT_MIRRORED; the package and message name are TF
  Serving's. The documented example file parses with the mirror.
  """
  real = _proto_fields(SESSION_BUNDLE_CONFIG_PROTO)
  assert len(real) == 9  # the quote was parsed
  mirror_descriptor = server_config.BatchingParameters.DESCRIPTOR
  mirrored = {f.name: (f.number, _descriptor_type(f), f.is_repeated)
              for f in mirror_descriptor.fields}
  assert mirrored == {name: real[name] for name in mirrored}
  assert set(real) - set(mirrored) == NOT_MIRRORED
  package = re.search(r"^package ([\w.]+);", SESSION_BUNDLE_CONFIG_PROTO, re.M).group(1)
  assert mirror_descriptor.full_name == f"{package}.BatchingParameters"

  documented = text_format.Parse(DOCUMENTED_BATCHING_PARAMETERS,
                                 server_config.BatchingParameters())
  assert (documented.max_batch_size.value, documented.batch_timeout_micros.value,
          documented.max_enqueued_batches.value,
          documented.num_batch_threads.value) == (128, 0, 1000000, 8)
  assert documented.HasField("batch_timeout_micros")  # a wrapper: 0 is set, not absent


def test_serving_config_parses_back(serving_models, tmp_path):
  written = server_config.write_serving_config(
      models=[("plain", serving_models["plain"].parent),
              ("text", str(serving_models["text"].parent))],
      path=tmp_path / "config", num_batch_threads=4)
  configs = _parse_models_config(written.models_config).model_config_list.config
  assert [c.name for c in configs] == ["plain", "text"]
  assert [c.base_path for c in configs] == [
      str(serving_models["plain"].parent.resolve()),
      str(serving_models["text"].parent.resolve())]
  assert all(pathlib.Path(c.base_path).is_absolute() for c in configs)
  assert {c.model_platform for c in configs} == {"tensorflow"}
  assert all(c.model_version_policy.WhichOneof("policy_choice") == "latest"
             for c in configs)

  batching = text_format.Parse(pathlib.Path(written.batching_parameters).read_text(),
                               server_config.BatchingParameters())
  assert batching.max_batch_size.value == 32
  assert batching.batch_timeout_micros.value == 1000
  assert batching.max_enqueued_batches.value == 100
  assert batching.num_batch_threads.value == 4
  assert not batching.allowed_batch_sizes and not batching.pad_variable_length_inputs
  assert pathlib.Path(written.models_config).name == server_config.MODELS_CONFIG_NAME
  assert f"--model_config_file={written.models_config}" in written.command
  assert "--enable_batching" in written.command
  assert f"--batching_parameters_file={written.batching_parameters}" in written.command


def test_serving_config_version_policies(serving_models, tmp_path):
  base = tmp_path / "plain"
  for version in (1, 3):
    shutil.copytree(serving_models["plain"], base / str(version))
  written = server_config.write_serving_config(
      models=[("plain", base)], path=tmp_path, version_policy=[3, 1], batching=False)
  policy = _parse_models_config(written.models_config).model_config_list.config[0]
  assert list(policy.model_version_policy.specific.versions) == [1, 3]
  assert written.batching_parameters is None
  assert not (tmp_path / server_config.BATCHING_PARAMETERS_NAME).exists()
  assert "--enable_batching" not in written.command

  written = server_config.write_serving_config(models=[("plain", base)], path=tmp_path,
                                               version_policy="all")
  policy = _parse_models_config(written.models_config).model_config_list.config[0]
  assert policy.model_version_policy.WhichOneof("policy_choice") == "all"


@pytest.mark.parametrize("case, message", [
    ("duplicate", "given twice"),
    ("missing", "no directory"),
    ("no_versions", "no version directories"),
    ("saved_model_itself", "is a SavedModel, not a model base directory"),
    ("missing_specific", "versions [7] not found"),
    ("half_written", "without saved_model.pb"),
    ("bad_policy", "bad version_policy"),
    ("bad_name", "bad model name"),
    ("empty", "no models to serve"),
    ("bad_threads", "bad num_batch_threads"),
])
def test_serving_config_validation(serving_models, tmp_path, case, message):
  base = serving_models["plain"].parent
  empty = tmp_path / "empty_model"
  empty.mkdir()
  (empty / "notes").mkdir()
  half = tmp_path / "half_written"
  (half / "1").mkdir(parents=True)
  kwargs = {
      "duplicate": dict(models=[("m", base), ("m", serving_models["text"].parent)]),
      "missing": dict(models=[("m", tmp_path / "nope")]),
      "no_versions": dict(models=[("m", empty)]),
      "saved_model_itself": dict(models=[("m", serving_models["plain"])]),
      "missing_specific": dict(models=[("m", base)], version_policy=[1, 7]),
      "half_written": dict(models=[("m", half)]),
      "bad_policy": dict(models=[("m", base)], version_policy="newest"),
      "bad_name": dict(models=[("my model/v1", base)]),
      "empty": dict(models=[]),
      "bad_threads": dict(models=[("m", base)], num_batch_threads=0),
  }[case]
  with pytest.raises(BertHubError, match=re.escape(message)):
    server_config.write_serving_config(path=tmp_path / "out", **kwargs)
  assert not (tmp_path / "out" / server_config.MODELS_CONFIG_NAME).exists()
