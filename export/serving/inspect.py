"""What is in a SavedModel? A human-readable report, from its files alone.

  inspect_saved_model(path) -> str

Reads `saved_model.pb` without loading the model, so no op library is needed;
`bert-hub-export inspect DIR/<version>` prints the report.
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)

import pathlib

import numpy as np
import tensorflow as tf

from export.serving import files
from export.serving import ops


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

  Args:
    path: a SavedModel directory (or its saved_model.pb).

  Returns:
    The report, lines ending in "\\n".

  Raises:
    BertHubError: if `path` is not a SavedModel with a "serve" MetaGraph.
  """
  export_dir = files.saved_model_dir(path)
  meta_graph = files.serving_meta_graph(export_dir)
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

  version, _ = ops.core_tensorflow()
  outside_core = ops.ops_outside_core_tensorflow(export_dir)
  outside_allowlist = ops.ops_outside_allowlist(export_dir)
  lines.append(f"ops outside core TensorFlow {version} (need tensorflow_text): "
               + (", ".join(outside_core) or "none"))
  lines.append(f"ops TF Serving cannot load ({ops.allowlist_versions()}): "
               + (", ".join(outside_allowlist) or "none"))
  return "\n".join(lines) + "\n"
