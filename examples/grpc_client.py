"""Calls a bert-hub text-embedding model on TF Serving over gRPC.

The model takes `sentences` (tf.string, [batch]) and returns its `embedding`
(float32, [batch, D]); its `pairs` signature takes `sentences` and
`second_sentences` for sentence pairs, `token_embeddings` returns
`sequence_output` (float32, [batch, seq, hidden]) and `input_mask` (int32,
[batch, seq]), and each named prompt of the model (e.g. `query`) has its own
signature. Start a server (see
`bert-hub-export serving-config`), then:

  python examples/grpc_client.py --server localhost:8500 --model bert \\
      --sentence "hello world" --sentence "TF Serving speaks gRPC"
  python examples/grpc_client.py --server localhost:8500 --model bert \\
      --sentence "How old are you?" --second-sentence "I am six."

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

# token_embeddings' sequence_output is batch * seq * hidden * 4 bytes, past
# gRPC's 4 MB default for a handful of sentences; allow far more.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def build_request(sentences, model_name, signature_name=None,
                  output_filter=(), second_sentences=None) -> predict_pb2.PredictRequest:
  """A PredictRequest feeding `sentences` (str or bytes) as a [batch] string tensor.

  `output_filter` names the outputs to return (default: all of them), e.g.
  ["input_mask"] of token_embeddings saves sending sequence_output over the wire.
  With `second_sentences` (as many as `sentences`) it calls the `pairs`
  signature unless `signature_name` says otherwise; else `serving_default`.
  """
  if signature_name is None:
    signature_name = "pairs" if second_sentences is not None else "serving_default"
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  inputs = {"sentences": list(sentences)}
  if second_sentences is not None:
    inputs["second_sentences"] = list(second_sentences)
  for name, values in inputs.items():
    request.inputs[name].CopyFrom(
        tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)]))
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
  parser.add_argument("--signature-name", default=None,
                      help="default: serving_default, or pairs with --second-sentence")
  parser.add_argument("--sentence", action="append", required=True,
                      help="a sentence to embed; repeat for a batch")
  parser.add_argument("--second-sentence", action="append", default=None,
                      help="the second segment of each pair; one per --sentence")
  parser.add_argument("--output", action="append", default=[],
                      help="only return this output; repeatable (default: all)")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
  args = parser.parse_args(argv)

  if args.second_sentence is not None and len(args.second_sentence) != len(args.sentence):
    parser.error("give one --second-sentence per --sentence")
  request = build_request(args.sentence, args.model, args.signature_name,
                          output_filter=args.output, second_sentences=args.second_sentence)
  try:
    outputs = predict(args.server, request, timeout=args.timeout)
  except grpc.RpcError as e:
    print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1
  for name in sorted(outputs):
    value = outputs[name]
    print(f"{name}: {value.dtype} {list(value.shape)}")
  if "embedding" in outputs:
    for sentence, vector in zip(args.sentence, outputs["embedding"]):
      print(f"  {sentence!r}: {np.array2string(vector[:5], precision=4)} ...")
  return 0


if __name__ == "__main__":
  sys.exit(main())
