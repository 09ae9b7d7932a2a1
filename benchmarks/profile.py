"""Where an encoder SavedModel's serving time goes, by op type, as TF Serving runs it.

  .venv/bin/python -m benchmarks.profile PATH [PATH ...] [--batch 32] [--seq-length 128]

Loads each SavedModel's `serve` tag into a tf.compat.v1 Session (what TF
Serving does, grappler and oneDNN rewrites included), times `serving_default`
on full-length random ids (as benchmarks.run does; a text servable, whose
signature takes `sentences`, on short real sentences as benchmarks/text.py's),
then traces one call and prints, per op type after
the rewrites, how many ran and their summed time. Ops that run at the same
time (two cores) both count, so the sum can exceed the call's wall time. Use
it to compare two exports' optimized graphs (e.g. ours and the reference in
benchmarks/results/work/exports/base/).
"""
import argparse
import collections
import os
import statistics
import sys

from bert_hub import _keras  # noqa: F401  (tf_keras before tensorflow)
from benchmarks.tasks import _random_inputs, _time_calls


def profile(path: str, *, batch: int, seq_length: int, calls: int, top: int,
            intra: int = 0, inter: int = 0) -> str:
  """A text report for one SavedModel (see the module docstring)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  feeds = _random_inputs(batch, seq_length)  # what benchmarks.run's infer feeds
  lines = [f"== {path}: serving_default, batch {batch}, seq {seq_length}, "
           f"intra {intra or 'default'}, inter {inter or 'default'}"]
  config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)
  with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph,
                                                              config=config) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    signature = meta.signature_def["serving_default"]
    names = {"input_type_ids": "segment_ids"} if "segment_ids" in signature.inputs else {}
    if "sentences" in signature.inputs:  # a text servable: short real sentences
      from benchmarks.text import workloads  # pylint: disable=g-import-not-at-top
      _, short = workloads()
      feeds = {"sentences": [s.encode() for s in short[:batch]]}
      lines[0] = lines[0].replace(f"seq {seq_length}", "short real sentences")
    feed = {signature.inputs[names.get(k, k)].name: v for k, v in feeds.items()}
    fetches = [v.name for v in signature.outputs.values()]
    times = _time_calls(lambda: sess.run(fetches, feed), warmup=2, iters=calls)
    wall = statistics.median(times)
    lines.append(f"median of {calls} calls: {wall:.3f} s = {batch / wall:.2f} sequences/s")
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    metadata = tf.compat.v1.RunMetadata()
    sess.run(fetches, feed, options=options, run_metadata=metadata)
  micros, count = collections.Counter(), collections.Counter()
  for device in metadata.step_stats.dev_stats:
    for node in device.node_stats:
      # timeline_label: "name = OpType(inputs)"
      op = node.timeline_label.split(" = ", 1)[-1].split("(", 1)[0] or node.node_name
      micros[op] += node.op_end_rel_micros - node.op_start_rel_micros
      count[op] += 1
  total = sum(micros.values()) or 1
  lines.append(f"{'op type (after rewrites)':32s} {'ran':>5s} {'ms':>9s} {'share':>6s}")
  for op, us in micros.most_common(top):
    lines.append(f"{op:32s} {count[op]:5d} {us / 1e3:9.1f} {us / total:6.1%}")
  lines.append(f"{'all ops':32s} {sum(count.values()):5d} {total / 1e3:9.1f}")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("paths", nargs="+", help="SavedModel directories (encoders)")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seq-length", type=int, default=128)
  parser.add_argument("--calls", type=int, default=3, help="timed calls (median)")
  parser.add_argument("--top", type=int, default=15, help="op types listed")
  parser.add_argument("--intra", type=int, default=0,
                      help="intra-op threads (TF Serving --tensorflow_intra_op_parallelism; "
                      "0: TensorFlow's default, the cores)")
  parser.add_argument("--inter", type=int, default=0,
                      help="inter-op threads (--tensorflow_inter_op_parallelism)")
  args = parser.parse_args(argv)
  for path in args.paths:
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
      sys.exit(f"error: no SavedModel: expected a folder with saved_model.pb; "
               f"received {path}; fix: pass DIR/<version> of an export")
    print(profile(path, batch=args.batch, seq_length=args.seq_length, calls=args.calls,
                  top=args.top, intra=args.intra, inter=args.inter))


if __name__ == "__main__":
  main()
