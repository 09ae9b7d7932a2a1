"""Reading a SavedModel's files as TF Serving reads them, without loading the model.

  saved_model_dir(path) -> Path          the directory holding saved_model.pb
  read_saved_model(path) -> SavedModel   the parsed saved_model.pb
  serving_meta_graph(path) -> MetaGraphDef   the one tagged SERVE_TAG
  signature_def(path, name) -> SignatureDef

Every function takes a SavedModel directory (or its saved_model.pb) and raises
BertHubError, saying what to pass instead, for anything else.
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import pathlib

from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from bert_hub.errors import BertHubError

SERVE_TAG = "serve"


def saved_model_dir(path) -> pathlib.Path:
  """The directory that holds saved_model.pb, or a BertHubError that says why not.

  Args:
    path: a SavedModel directory, or its saved_model.pb file.

  Raises:
    BertHubError: for a model base directory (its fix names a version
      directory), a directory without saved_model.pb, or a missing path.
  """
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


def read_saved_model(path) -> saved_model_pb2.SavedModel:
  """The parsed saved_model.pb of the SavedModel at `path` (see saved_model_dir)."""
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString(
      (saved_model_dir(path) / "saved_model.pb").read_bytes())
  return saved_model


def serving_meta_graph(path) -> meta_graph_pb2.MetaGraphDef:
  """The MetaGraphDef tagged exactly [SERVE_TAG], the one TF Serving loads.

  Raises:
    BertHubError: if the SavedModel has no such MetaGraph.
  """
  saved_model = read_saved_model(path)
  for meta_graph in saved_model.meta_graphs:
    if list(meta_graph.meta_info_def.tags) == [SERVE_TAG]:
      return meta_graph
  tags = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
  raise BertHubError(
      f"SavedModel {path} has no MetaGraph TF Serving can load",
      expected=f"a MetaGraph tagged [{SERVE_TAG!r}]", received=f"tags {tags}",
      fix="save with tf.saved_model.save, which tags its graph 'serve'")


def signature_def(path, name: str) -> meta_graph_pb2.SignatureDef:
  """The SignatureDef `name` of the serving MetaGraph.

  Raises:
    BertHubError: listing the signatures there are, if there is no `name`.
  """
  signatures = serving_meta_graph(path).signature_def
  if name not in signatures:
    raise BertHubError(
        f"SavedModel {path} has no signature {name!r}",
        expected=f"one of {sorted(signatures)}", received=repr(name),
        fix="pass signature_name= one of the listed signatures, or save the "
            "model with signatures={name: function}")
  return signatures[name]
