"""Calls a bert-hub text-embedding model on TF Serving over REST (stdlib only).

The model takes `sentences` (string, [batch]) and returns its `embedding`
(float32, [batch, D]); `token_embeddings`, `pairs` and one signature per named
prompt (e.g. `query`) are there too (see examples/grpc_client.py). Start a server
(see `bert-hub-export serving-config`), then:

  python examples/rest_client.py --server http://localhost:8501 --model bert \\
      --sentence "hello world" --sentence "REST is JSON"

Equivalent curl:
  curl -d '{"instances": [{"sentences": "hello world"}]}' \\
      http://localhost:8501/v1/models/bert:predict
  curl -d '{"inputs": {"sentences": ["hello world", "REST is JSON"]}}' \\
      http://localhost:8501/v1/models/bert:predict
Sentence pairs (the `pairs` signature; --second-sentence here):
  curl -d '{"signature_name": "pairs", "instances": [{"sentences": "How old are you?",
            "second_sentences": "I am six."}]}' http://localhost:8501/v1/models/bert:predict
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


def build_body(sentences, signature_name=None, *, format="instances",  # noqa: A002
               second_sentences=None) -> dict:
  """The JSON body of POST /v1/models/NAME:predict for a list of sentences.

  format="instances" (row format) sends one object per sentence and gets back
  {"predictions": [[D floats], ...]} (one output: no names); format="inputs"
  (columnar) sends {"inputs": {"sentences": [...]}} and gets back
  {"outputs": [[D floats], ...]}. `signature_name` names another signature
  ("token_embeddings", a prompt such as "query").
  With `second_sentences` (one per sentence) the body calls the `pairs`
  signature (unless `signature_name` names another) with both inputs.
  """
  def text(values):
    return [s.decode("utf-8") if isinstance(s, bytes) else s for s in values]
  columns = {"sentences": text(sentences)}
  if second_sentences is not None:
    columns["second_sentences"] = text(second_sentences)
    if len(columns["second_sentences"]) != len(columns["sentences"]):
      raise ValueError("give one second sentence per sentence")
    signature_name = signature_name or "pairs"
  if format == "instances":
    body = {"instances": [dict(zip(columns, row)) for row in zip(*columns.values())]}
  elif format == "inputs":
    body = {"inputs": columns}
  else:
    raise ValueError(f"format must be 'instances' or 'inputs', not {format!r}")
  if signature_name:
    body["signature_name"] = signature_name
  return body


def predict(server, model, body, *, timeout=30.0) -> dict:
  """POSTs the body to {server}/v1/models/{model}:predict; returns the JSON reply."""
  request = urllib.request.Request(
      f"{server.rstrip('/')}/v1/models/{model}:predict",
      data=json.dumps(body).encode("utf-8"),
      headers={"Content-Type": "application/json"}, method="POST")
  with urllib.request.urlopen(request, timeout=timeout) as response:
    return json.loads(response.read())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--server", default="http://localhost:8501")
  parser.add_argument("--model", required=True, help="model name in models.config")
  parser.add_argument("--signature-name", default=None)
  parser.add_argument("--sentence", action="append", required=True,
                      help="a sentence to embed; repeat for a batch")
  parser.add_argument("--second-sentence", action="append", default=None,
                      help="the second segment of each pair (the `pairs` "
                      "signature); one per --sentence")
  parser.add_argument("--format", choices=["instances", "inputs"], default="instances")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
  args = parser.parse_args(argv)

  try:
    body = build_body(args.sentence, args.signature_name, format=args.format,
                      second_sentences=args.second_sentence)
  except ValueError as e:
    parser.error(str(e))
  try:
    reply = predict(args.server, args.model, body, timeout=args.timeout)
  except urllib.error.HTTPError as e:  # TF Serving replies {"error": "..."}.
    print(f"error: HTTP {e.code}: {e.read().decode('utf-8', 'replace')}", file=sys.stderr)
    return 1
  except urllib.error.URLError as e:
    print(f"error: cannot reach {args.server}: {e.reason}", file=sys.stderr)
    return 1
  if "predictions" in reply:  # Row format: one object per sentence.
    for sentence, prediction in zip(args.sentence, reply["predictions"]):
      if isinstance(prediction, dict):  # several outputs (token_embeddings)
        print(f"{sentence!r}: {sorted(prediction)}")
      else:  # the embedding
        print(f"{sentence!r}: {[round(x, 4) for x in prediction[:5]]} ...")
  elif isinstance(reply["outputs"], dict):  # Columnar format, several outputs.
    for name, value in sorted(reply["outputs"].items()):
      print(f"{name}: {len(value)} rows")
  else:  # Columnar format, one output: the embeddings.
    print(f"embedding: {len(reply['outputs'])} rows of {len(reply['outputs'][0])}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
