"""Calls a bert-hub text-embedding model on TF Serving over gRPC.

The model takes `sentences` (tf.string, [batch]) and returns `pooled_output`
(float32, [batch, hidden]), `sequence_output` (float32, [batch, seq, hidden])
and `input_mask` (int32, [batch, seq]). Start a server (see
`bert-hub-export serving-config`), then:

  python examples/grpc_client.py --server localhost:8500 --model bert \\
      --sentence "hello world" --sentence "TF Serving speaks gRPC"

Needs only `pip install tensorflow-serving-api` (which brings grpcio and
tensorflow); it does not use bert-hub.
"""
import argparse
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

# sequence_output is batch * seq * hidden * 4 bytes, past gRPC's 4 MB default
# for a handful of sentences; allow far more.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def build_request(sentences, model_name, signature_name="serving_default",
                  output_filter=()) -> predict_pb2.PredictRequest:
  """A PredictRequest feeding `sentences` (str or bytes) as a [batch] string tensor.

  `output_filter` names the outputs to return (default: all of them); asking
  for `pooled_output` alone saves sending `sequence_output` over the wire.
  """
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  request.inputs["sentences"].CopyFrom(
      tf.make_tensor_proto(list(sentences), dtype=tf.string, shape=[len(sentences)]))
  request.output_filter.extend(output_filter)
  return request


def predict(server, request, *, timeout=30.0) -> dict[str, np.ndarray]:
  """Sends the request to `server` (host:port) and returns the outputs as arrays."""
  options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
             ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
  with grpc.insecure_channel(server, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout=timeout)
  return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--server", default="localhost:8500", help="gRPC host:port")
  parser.add_argument("--model", required=True, help="model name in models.config")
  parser.add_argument("--signature-name", default="serving_default")
  parser.add_argument("--sentence", action="append", required=True,
                      help="a sentence to embed; repeat for a batch")
  parser.add_argument("--output", action="append", default=[],
                      help="only return this output; repeatable (default: all)")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
  args = parser.parse_args(argv)

  request = build_request(args.sentence, args.model, args.signature_name,
                          output_filter=args.output)
  try:
    outputs = predict(args.server, request, timeout=args.timeout)
  except grpc.RpcError as e:
    print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1
  for name in sorted(outputs):
    value = outputs[name]
    print(f"{name}: {value.dtype} {list(value.shape)}")
  if "pooled_output" in outputs:
    for sentence, vector in zip(args.sentence, outputs["pooled_output"]):
      print(f"  {sentence!r}: {np.array2string(vector[:5], precision=4)} ...")
  return 0


if __name__ == "__main__":
  sys.exit(main())
