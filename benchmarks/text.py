"""The text servables against their peers, side by side in one process, calls alternating.

  .venv/bin/python -m benchmarks.text [--rounds 15]   # also: python -m benchmarks.run --only text

Sentences in, embeddings (or class probabilities) out, tokenization included
for every contender; all-MiniLM-L6-v2 (real weights, `export.demo.minilm_dir()`):

  ours float32     the text-embedding servable (default seq_length 256, computes
                   on the request's own lengths), signatures["serving_default"]
  ours bfloat16    the same exported with --serving-precision bfloat16 (CPUs with
                   AVX512-BF16 or AMX only)
  TF Hub pipeline  our preprocessing export (seq_length 128) then our encoder
                   export (version 3), mean pooling + L2 normalization in numpy
  sentence-transformers  SentenceTransformer(dir).encode(batch, batch_size=len(batch)),
                   with torch threads = cores and with 1 thread (on a shared machine
                   PyTorch's OpenMP threads wait for each other: measured 500 ms
                   per sentence at batch 1 with 2 threads, 19 ms with 1)
  ONNX Runtime     the Hugging Face BertModel exported with torch.onnx.export
                   (dynamo), ORT_ENABLE_ALL, intra-op threads = cores; the HF fast
                   tokenizer in the timed path; mean pooling + normalize in numpy
  classifier       our text-classifier export of BertForSequenceClassification
                   (MiniLM + a seeded random 3-label head) against that model in
                   PyTorch (HF fast tokenizer, softmax)

Workloads: short real sentences (5-25 words from Python's documentation,
benchmarks/preprocessing.py's pydoc_sentences()) at batch 32 and batch 1, and
texts that fill 128 tokens at batch 32. Phases run in fresh processes:
`prepare` (exports, cached in benchmarks/results/work/text/; ours made again
when bert_hub/ or export/ changed) then `measure`
(everything loaded in one process; each round calls every contender once, the
order rotating; a ratio is the median over rounds of that round's ratio).
Writes benchmarks/results/text.md, text.json and text.png (the plot).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
WORK = os.path.join(RESULTS, "work", "text")
LABELS = ("negative", "neutral", "positive")
# (workload, contender, ratio wanted of ours float32 or bfloat16 to it)
TARGETS = {
    ("short32", "pipeline"): ("ours", 3.0), ("short32", "st"): ("ours", 2.0),
    ("short32", "ort"): ("ours", 1.2), ("short1", "st"): ("ours", 1.0),
    ("short32", "st1"): ("ours", 2.0), ("short1", "st1"): ("ours", 1.0),
    ("short1", "ort"): ("ours", 0.9), ("short32", "ort bf16"): ("ours_bf16", 1.8),
    ("full128", "pipeline"): ("ours", 0.95),
}


def paths(work):
  return dict(embed=os.path.join(work, "embed_f32", "1"),
              embed_bf16=os.path.join(work, "embed_bf16", "1"),
              pre=os.path.join(work, "pre", "3"), enc=os.path.join(work, "enc", "3"),
              onnx=os.path.join(work, "minilm.onnx"), hf_clf=os.path.join(work, "hf_clf"),
              clf=os.path.join(work, "clf", "1"))


def has_bfloat16() -> bool:
  with open("/proc/cpuinfo") as f:
    flags = f.read()
  return "avx512_bf16" in flags or "amx_bf16" in flags


def code_digest() -> str:
  """sha256 of the code our exports come from (bert_hub/ and export/)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  for package in ("bert_hub", "export"):
    for root, dirs, files in os.walk(os.path.join(REPO, package)):
      dirs[:] = sorted(d for d in dirs if d != "__pycache__")
      for name in sorted(files):
        if not name.endswith(".pyc"):
          path = os.path.join(root, name)
          digest.update(os.path.relpath(path, REPO).encode())
          with open(path, "rb") as f:
            digest.update(f.read())
  return digest.hexdigest()


OUR_EXPORTS = ("embed", "embed_bf16", "pre", "enc", "clf")


def prepare(work):
  """Every export the measurement needs (kept; made only if missing). Ours are
  made again when bert_hub/ or export/ changed since they were made (the
  digest in WORK/code.sha256): a measurement of stale exports says nothing."""
  import shutil  # pylint: disable=g-import-not-at-top
  from bert_hub import _keras  # noqa: F401  pylint: disable=g-import-not-at-top
  from export import lib  # pylint: disable=g-import-not-at-top
  from export.demo import minilm_dir  # pylint: disable=g-import-not-at-top
  p, d = paths(work), minilm_dir()
  stamp, digest = os.path.join(work, "code.sha256"), code_digest()
  if not os.path.exists(stamp) or open(stamp, encoding="utf-8").read() != digest:
    for name in OUR_EXPORTS:
      shutil.rmtree(os.path.dirname(p[name]), ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    with open(stamp, "w", encoding="utf-8") as f:
      f.write(digest)
  quiet = lib.quiet_report
  if not os.path.exists(p["embed"]):
    lib.export_text_embedding(checkpoint=d, output_dir=os.path.dirname(p["embed"]),
                              report=quiet)
  if has_bfloat16() and not os.path.exists(p["embed_bf16"]):
    lib.export_text_embedding(checkpoint=d, output_dir=os.path.dirname(p["embed_bf16"]),
                              serving_precision="bfloat16", report=quiet)
  if not os.path.exists(p["pre"]):
    lib.export_preprocessing(checkpoint=d, output_dir=os.path.dirname(p["pre"]),
                             seq_length=128, report=quiet)
  if not os.path.exists(p["enc"]):
    lib.export_encoder(checkpoint=d, output_dir=os.path.dirname(p["enc"]), report=quiet)
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  if not os.path.exists(p["onnx"]):
    export_onnx(d, p["onnx"])
  if not os.path.exists(p["clf"]):
    model = transformers.BertForSequenceClassification.from_pretrained(
        d, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)}).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
      for t in (model.classifier.weight, model.classifier.bias):
        t.copy_(0.5 * torch.randn(t.shape, generator=generator))
    model.save_pretrained(p["hf_clf"], safe_serialization=True)
    for name in ("vocab.txt", "tokenizer_config.json", "tokenizer.json",
                 "special_tokens_map.json"):
      shutil.copy(os.path.join(d, name), p["hf_clf"])
    lib.export_text_classifier(checkpoint=p["hf_clf"], output_dir=os.path.dirname(p["clf"]),
                               report=quiet)
  return {}


def export_onnx(model_dir: str, output: str) -> None:
  """The HF BertModel's last_hidden_state [B, T, H] as ONNX (torch.onnx.export,
  dynamo; batch and length dynamic). The TorchScript exporter (dynamo=False)
  gives wrong values with transformers 5's attention masks (measured: 1.5 off)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  class LastHiddenState(torch.nn.Module):
    def __init__(self, model):
      super().__init__()
      self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
      return self.model(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state

  model = transformers.AutoModel.from_pretrained(model_dir).eval()
  names = ("input_ids", "attention_mask", "token_type_ids")
  example = tuple(torch.ones([2, 8], dtype=torch.long) for _ in names)
  batch, length = torch.export.Dim("batch", max=4096), torch.export.Dim("length", max=512)
  torch.onnx.export(LastHiddenState(model), example, output, input_names=list(names),
                    output_names=["last_hidden_state"], dynamo=True, optimize=True,
                    dynamic_shapes={n: {0: batch, 1: length} for n in names})


def workloads(count: int = 320):
  """{name: (batch size, list of batches)}: short sentences and 128-token texts."""
  import transformers  # pylint: disable=g-import-not-at-top
  from benchmarks.preprocessing import minilm_dir, pydoc_sentences  # pylint: disable=g-import-not-at-top
  text = pydoc_sentences()
  short = [s for s in text if 5 <= len(s.split()) <= 25]
  short = short[::max(1, len(short) // count)][:count]
  tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir())
  words = " ".join(text).split()
  full, i = [], 0
  while len(full) < 64:  # texts of at most 128 tokens ([CLS], [SEP] included), as many words as fit
    piece, n = [], 2
    while n < 128:
      k = len(tokenizer.tokenize(words[i]))
      if n + k > 128:
        break
      piece.append(words[i])
      n, i = n + k, i + 1
    full.append(" ".join(piece))
  return {"short32": (32, [short[j:j + 32] for j in range(0, len(short), 32)]),
          "short1": (1, [[s] for s in short[:64]]),
          "full128": (32, [full[:32], full[32:]])}, short


def _normalized_mean(hidden, mask):
  import numpy as np  # pylint: disable=g-import-not-at-top
  m = mask[..., None].astype(np.float32)  # [B, T, 1]
  x = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # [B, H]
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def contenders(work):
  """{name: call(list of str) -> numpy}, everything loaded in this process."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  import sentence_transformers  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from benchmarks.preprocessing import minilm_dir  # pylint: disable=g-import-not-at-top
  p, cores = paths(work), os.cpu_count()
  torch.set_num_threads(cores)
  out = {}
  embed = tf.saved_model.load(p["embed"]).signatures["serving_default"]
  out["ours"] = lambda s: embed(sentences=tf.constant(s))["embedding"].numpy()
  if has_bfloat16():
    bf16 = tf.saved_model.load(p["embed_bf16"]).signatures["serving_default"]
    out["ours_bf16"] = lambda s: bf16(sentences=tf.constant(s))["embedding"].numpy()
  pre = tf.saved_model.load(p["pre"]).signatures["serving_default"]
  enc = tf.saved_model.load(p["enc"]).signatures["serving_default"]

  def pipeline(s):
    inputs = pre(tf.constant(s))
    inputs = {k: inputs[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}
    return _normalized_mean(enc(**inputs)["sequence_output"].numpy(),
                            inputs["input_mask"].numpy())
  out["pipeline"] = pipeline
  st = sentence_transformers.SentenceTransformer(minilm_dir(), device="cpu")
  out["st"] = lambda s: st.encode(s, batch_size=len(s), convert_to_numpy=True)

  def st_one_thread(s):  # PyTorch's OpenMP threads stall when the cores are shared
    torch.set_num_threads(1)
    try:
      return st.encode(s, batch_size=len(s), convert_to_numpy=True)
    finally:
      torch.set_num_threads(cores)
  out["st1"] = st_one_thread
  options = ort.SessionOptions()
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  options.intra_op_num_threads = cores
  session = ort.InferenceSession(p["onnx"], options, providers=["CPUExecutionProvider"])
  tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir())

  def onnx(s):
    enc_ = tokenizer(s, padding=True, truncation=True, max_length=st.max_seq_length,
                     return_tensors="np")
    feeds = {k: enc_[k].astype(np.int64) for k in ("input_ids", "attention_mask",
                                                   "token_type_ids")}
    return _normalized_mean(session.run(None, feeds)[0], enc_["attention_mask"])
  out["ort"] = onnx
  clf = tf.saved_model.load(p["clf"]).signatures["serving_default"]
  out["clf ours"] = lambda s: clf(sentences=tf.constant(s))["probabilities"].numpy()
  hf = transformers.BertForSequenceClassification.from_pretrained(p["hf_clf"]).eval()
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(p["hf_clf"])

  def hf_clf(s):
    with torch.inference_mode():
      logits = hf(**hf_tokenizer(s, padding=True, truncation=True, max_length=512,
                                 return_tensors="pt")).logits
      return torch.softmax(logits, -1).numpy()
  out["clf hf"] = hf_clf
  return out


def measure(work, rounds: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  loads, short = workloads()
  calls = contenders(work)
  result = {"times": {}, "accuracy": {}}
  for name, (batch, batches) in loads.items():
    names = [n for n in calls if not n.startswith("clf")]
    if name != "full128":
      names += ["clf ours", "clf hf"]
    for n in names:  # warm-up: every batch shape once
      for b in batches[:4]:
        calls[n](b)
    times = {n: [] for n in names}
    for r in range(rounds if batch > 1 else rounds * 4):
      b = batches[r % len(batches)]
      for n in names[r % len(names):] + names[:r % len(names)]:
        start = time.perf_counter()
        calls[n](b)
        times[n].append(time.perf_counter() - start)
    result["times"][name] = {"batch": batch, "seconds": times}
  ours = np.concatenate([calls["ours"](short[i:i + 32]) for i in range(0, len(short), 32)])
  for n in ("ort", "st", "pipeline", "ours_bf16"):
    if n not in calls:
      continue
    other = np.concatenate([calls[n](short[i:i + 32]) for i in range(0, len(short), 32)])
    cosine = np.sum(ours * other, axis=1) / (np.linalg.norm(ours, axis=1) *
                                               np.linalg.norm(other, axis=1))
    result["accuracy"][n] = dict(max_abs=float(np.abs(ours - other).max()),
                                 min_cosine=float(cosine.min()), sentences=len(short))
  return result


def _ratio_rows(times, a, b):
  """Median over rounds of t_b / t_a (a's throughput over b's), and its range."""
  ratios = sorted(tb / ta for ta, tb in zip(times[a], times[b]))
  return statistics.median(ratios), ratios[len(ratios) // 10], ratios[-1 - len(ratios) // 10]


LABEL = {"ours": "ours float32 (text-embedding servable)",
         "ours_bf16": "ours bfloat16 (--serving-precision bfloat16)",
         "pipeline": "TF Hub pipeline at 128 (our preprocessing + encoder exports)",
         "st": "sentence-transformers encode (PyTorch, threads = cores)",
         "st1": "sentence-transformers encode (PyTorch, 1 thread)", "ort": "ONNX Runtime (+ HF tokenizer)",
         "clf ours": "ours text-classifier", "clf hf": "HF BertForSequenceClassification (PyTorch)"}
WORKLOAD = {"short32": "short sentences, batch 32", "short1": "short sentences, batch 1",
            "full128": "texts filling 128 tokens, batch 32"}


def markdown(result) -> str:
  lines = ["| workload | contender | sentences/s | ours f32 / it | ours bf16 / it | target |",
           "|---|---|---:|---:|---:|---|"]
  for load, data in result["times"].items():
    batch, times = data["batch"], data["seconds"]
    for n, t in times.items():
      rate = batch / statistics.median(t)
      cells, target = [], ""
      for ours in ("ours", "ours_bf16") if not n.startswith("clf") else ("clf ours", None):
        if ours is None or ours not in times or ours == n:
          cells.append("")
          continue
        ratio, low, high = _ratio_rows(times, ours, n)
        cells.append(f"{ratio:.2f} ({low:.2f}-{high:.2f})")
        for key in ((load, n), (load, n + " bf16")):
          want = TARGETS.get(key)
          if want and want[0] == ours:
            target += (f"{'; ' if target else ''}{ours.replace('_', ' ')} >= {want[1]}x: "
                       + ("met" if ratio >= want[1] else "missed"))
      lines.append(f"| {WORKLOAD[load]} | {LABEL[n]} | {rate:,.1f} | {cells[0]} | "
                   f"{cells[1]} | {target} |")
  for n, a in result["accuracy"].items():
    lines.append(f"| accuracy on {a['sentences']} short sentences | ours float32 vs "
                 f"{LABEL[n]} | | max abs {a['max_abs']:.2e} | | min cosine "
                 f"{a['min_cosine']:.6f} |")
  return "\n".join(lines)


def plot(result, path) -> dict:
  """One panel per workload: each contender's sentences/s (median), ONNX Runtime
  among them. Writes `path` (PNG); returns what it drew, {panel title:
  {contender label: sentences/s}}, or {} without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return {}
  loads = list(result["times"].items())
  fig, axes = plt.subplots(len(loads), 1, figsize=(9, 2.9 * len(loads)), squeeze=False)
  drawn = {}
  for ax, (load, data) in zip(axes.flat, loads):
    names = list(data["seconds"])
    rates = [data["batch"] / statistics.median(data["seconds"][n]) for n in names]
    labels = [LABEL[n] for n in names]
    colors = ["tab:blue" if n.startswith("ours") or n == "clf ours" else
              "tab:red" if n == "ort" else "tab:gray" for n in names]
    bars = ax.barh(range(len(names)), rates, color=colors)
    ax.bar_label(bars, labels=[f"{r:,.1f}" for r in rates], fontsize=7, padding=2)
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("sentences/s (higher is better)", fontsize=8)
    ax.set_title(WORKLOAD[load], fontsize=10)
    ax.margins(x=0.2)
    drawn[WORKLOAD[load]] = dict(zip(labels, rates))
  fig.suptitle(f"text servables, all-MiniLM-L6-v2: ours (blue), ONNX Runtime (red), "
               f"others (gray)\n{result.get('started', '')}, {result.get('cores', '?')} "
               f"cores, load average at start {result.get('load_average_start', [0])[0]:.1f}",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return drawn


def _run_phase(phase, **kwargs):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", "benchmarks.text", "--phase", phase,
                         "--args", json.dumps(kwargs)], cwd=REPO, env=env,
                        capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"benchmarks.text {phase} failed: {proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=15,
                      help="rounds at batch 32 (batch 1: 4 times as many)")
  parser.add_argument("--work", default=WORK)
  parser.add_argument("--phase", choices=("prepare", "measure"), help=argparse.SUPPRESS)
  parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.phase:
    fn = prepare if args.phase == "prepare" else measure
    print("RESULT " + json.dumps(fn(**json.loads(args.args))))
    return ""
  start, load_start = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()
  _run_phase("prepare", work=args.work)
  result = _run_phase("measure", work=args.work, rounds=args.rounds)
  result.update(started=start, load_average_start=load_start,
                load_average_end=os.getloadavg(), cores=os.cpu_count(),
                bfloat16=has_bfloat16())
  table = markdown(result)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "text.json"), "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(RESULTS, "text.md"), "w") as f:
    f.write(table + "\n")
  plotted = plot(result, os.path.join(RESULTS, "text.png"))
  print(f"started {start}; {os.cpu_count()} cores; load average (1 min) at start "
        f"{load_start[0]:.2f}, at end {result['load_average_end'][0]:.2f}\n\n{table}\n\n"
        + ("wrote benchmarks/results/text.md, text.json, text.png" if plotted else
           "wrote benchmarks/results/text.md, text.json (no plot: matplotlib missing)"))
  return table


if __name__ == "__main__":
  main()
