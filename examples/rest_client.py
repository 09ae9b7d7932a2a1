"""Calls a bert-hub text-embedding model on TF Serving over REST (stdlib only).

The model takes `sentences` (string, [batch]) and returns `pooled_output`,
`sequence_output` and `input_mask` (see examples/grpc_client.py). Start a server
(see `bert-hub-export serving-config`), then:

  python examples/rest_client.py --server http://localhost:8501 --model bert \\
      --sentence "hello world" --sentence "REST is JSON"

Equivalent curl:
  curl -d '{"instances": [{"sentences": "hello world"}]}' \\
      http://localhost:8501/v1/models/bert:predict
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


def build_body(sentences, signature_name=None, *, format="instances") -> dict:  # noqa: A002
  """The JSON body of POST /v1/models/NAME:predict for a list of sentences.

  format="instances" (row format) sends one object per sentence and gets back
  {"predictions": [{"pooled_output": [...], ...}, ...]}; format="inputs"
  (columnar) sends {"inputs": {"sentences": [...]}} and gets back
  {"outputs": {"pooled_output": [[...], ...], ...}}.
  """
  sentences = [s.decode("utf-8") if isinstance(s, bytes) else s for s in sentences]
  if format == "instances":
    body = {"instances": [{"sentences": s} for s in sentences]}
  elif format == "inputs":
    body = {"inputs": {"sentences": sentences}}
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
  parser.add_argument("--format", choices=["instances", "inputs"], default="instances")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
  args = parser.parse_args(argv)

  body = build_body(args.sentence, args.signature_name, format=args.format)
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
      pooled = prediction["pooled_output"] if isinstance(prediction, dict) else prediction
      print(f"{sentence!r}: {[round(x, 4) for x in pooled[:5]]} ...")
  else:  # Columnar format: one value per output.
    for name, value in sorted(reply["outputs"].items()):
      print(f"{name}: {len(value)} rows")
  return 0


if __name__ == "__main__":
  sys.exit(main())
