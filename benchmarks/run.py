"""bert-hub against tf-models' reference exporter, side by side, in one run.

  make bench                      # = .venv/bin/python -m benchmarks.run
  python -m benchmarks.run [--runs 3] [--quick] [--only export,load,...]

Prints a markdown table and writes benchmarks/results/ (gitignored):
results.md (the table), results.json (every run of every measurement) and
benchmarks.png (the plot). Every measurement runs in its own fresh Python
process (benchmarks/tasks.py), so import and cache state are the same for
both sides; times are medians over --runs processes (export, load) or over
timed calls after a warm-up in one process (inference; the SavedModels compared
share that process, calls alternating). See
benchmarks/README.md for what each row means.

Sections (--only takes a comma-separated subset):
  export         BERT-base encoder export: wall time and peak memory, ours vs reference
  load           hub.KerasLayer and tf.saved_model.load time, saved_model.pb size
  infer          sequences/s at batch 1 and 32, seq 128: ours, reference, PyTorch;
                 fraction of the machine's matmul peak
  bfloat16       the same through oneDNN bfloat16, and its accuracy on real sentences
  preprocessing  benchmarks/preprocessing.py's run(): ours vs reference vs tokenizers
  large          BERT-large export: wall time, peak memory vs the weights' size
  text           the text servables vs the TF Hub pipeline, sentence-transformers,
                 ONNX Runtime and HF's classifier (benchmarks/text.py, its own
                 table: benchmarks/results/text.md; needs `pip install .[bench]`)
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
SECTIONS = ("export", "load", "infer", "bfloat16", "preprocessing", "large", "text")
SEQ_LENGTH = 128
IMPLS = ("ours", "reference")


def log(message: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class TaskError(RuntimeError):
  pass


def run_task(task: str, timeout: float = 3600, **kwargs) -> dict:
  """Runs benchmarks.tasks TASK in a fresh process; its result plus `process_seconds`."""
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
  start = time.perf_counter()
  try:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.tasks", task, json.dumps(kwargs)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
  except subprocess.TimeoutExpired:
    raise TaskError(f"{task} timed out after {timeout:.0f} s") from None
  seconds = time.perf_counter() - start
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise TaskError(f"{task} failed (exit {proc.returncode}): {tail[:300]}")
  result = json.loads(lines[-1][len("RESULT "):])
  result["process_seconds"] = seconds
  return result


def median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def cpu_description() -> dict:
  flags, model = set(), platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
          flags = set(line.split(":", 1)[1].split())
  except OSError:
    pass
  wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
  return dict(model=model, cores=os.cpu_count(),
              flags=[f for f in wanted if f in flags])


def versions() -> dict:
  out = {}
  for package in ("tensorflow", "tf-keras", "tensorflow-hub", "tf-models-official",
                  "torch", "transformers", "tokenizers"):
    try:
      from importlib import metadata  # pylint: disable=g-import-not-at-top
      out[package] = metadata.version(package)
    except Exception:  # pylint: disable=broad-except
      out[package] = None
  return out


class Bench:
  """Runs the sections, keeps every result, and reports what failed."""

  def __init__(self, args):
    self.args = args
    self.work = args.work
    self.data = dict(started=datetime.datetime.now().isoformat(timespec="seconds"),
                     args=vars(args), cpu=cpu_description(), versions=versions(),
                     load_average_start=os.getloadavg(), errors={})
    self.checkpoints = {}

  def task(self, key: str, task: str, **kwargs):
    """run_task, logging; on failure records the error under `key` and returns None."""
    self.data.setdefault("load_average_samples", []).append(os.getloadavg()[0])
    try:
      result = run_task(task, **kwargs)
    except TaskError as e:
      log(f"{key}: {e}")
      self.data["errors"][key] = str(e)
      return None
    return result

  # -- data ------------------------------------------------------------------
  def checkpoint(self, size: str):
    if size in self.checkpoints:
      return self.checkpoints[size]
    folder = os.path.join(self.work, "checkpoints", size)
    done = os.path.join(folder, "done.json")
    if os.path.isfile(done):
      with open(done) as f:
        info = json.load(f)
    else:
      log(f"writing a random BERT-{size} checkpoint to {folder}")
      info = self.task(f"checkpoint {size}", "checkpoint", size=size, folder=folder)
      if info is None:
        raise SystemExit(f"cannot write the BERT-{size} checkpoint; see the error above")
      with open(done, "w") as f:
        json.dump(info, f)
    info["folder"] = folder
    self.checkpoints[size] = info
    return info

  def export_path(self, size, impl):
    return os.path.join(self.work, "exports", size, impl)

  # -- sections --------------------------------------------------------------
  def exports(self, size: str, runs: int):
    info = self.checkpoint(size)
    out = self.data.setdefault("export", {}).setdefault(size, {i: [] for i in IMPLS})
    out["weight_bytes"] = info["weight_bytes"]
    for r in range(runs):
      order = IMPLS if r % 2 == 0 else IMPLS[::-1]  # alternate who goes first
      for impl in order:
        res = self.task(f"export {size} {impl}", "export", impl=impl,
                        folder=info["folder"], output=self.export_path(size, impl))
        if res:
          out[impl].append(res)
          log(f"export BERT-{size} {impl} {r + 1}/{runs}: {res['seconds']:.1f} s, "
              f"peak {res['peak_rss_mb'] / 1024:.2f} GB")

  def loads(self, runs: int):
    """Each export and loader in `runs` fresh processes, alternating."""
    out = self.data.setdefault("load", {})
    paths = {impl: self._exported("base", impl) for impl in IMPLS}
    for impl, path in paths.items():
      if path:
        out.setdefault(impl, {})["pb_bytes"] = os.path.getsize(
            os.path.join(path, "saved_model.pb"))
    for r in range(runs):
      for loader in ("hub", "tf"):
        for impl in IMPLS:
          if paths[impl] is None:
            continue
          res = self.task(f"load {impl} {loader}", "load", path=paths[impl], loader=loader)
          if res:
            out[impl].setdefault(loader, []).append(res)
            log(f"load {impl} with {loader} {r + 1}/{runs}: {res['seconds']:.2f} s")

  def _exported(self, size, impl):
    base = self.export_path(size, impl)
    path = os.path.join(base, "3") if impl == "ours" else base
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
      log(f"exporting BERT-{size} {impl} once (no export from the export section)")
      info = self.checkpoint(size)
      res = self.task(f"export {size} {impl} (for load/infer)", "export", impl=impl,
                      folder=info["folder"], output=base)
      if res is None:
        return None
    return path

  def matmul(self):
    out = self.data.setdefault("matmul", {})
    for dtype in ("float32", "bfloat16"):
      res = self.task(f"matmul {dtype}", "matmul", dtype=dtype)
      if res:
        out[dtype] = res
        log(f"matmul 4096^2 {dtype}: {res['gflops']:.0f} GFLOP/s")

  def inference(self, contenders, runs: int):
    """Each batch size in `runs` rounds of fresh processes.

    The SavedModels that run as they are (ours, the reference, ours in
    bfloat16) share one process per round (`infer_paired`: loaded together,
    calls alternating), which makes their ratio steady; PyTorch and oneDNN's
    process-wide bfloat16 rewrite get a process each. A process times
    `--iters-b1/--iters-b32` calls per model after a warm-up; a row is the
    median over processes of each process's median, and a paired ratio the
    median over processes of each process's ratio.
    """
    out = self.data.setdefault("infer", {})
    paired = [(n, kw["path"]) for n, kw in contenders
              if kw.get("impl") == "tf" and not kw.get("bfloat16")]
    alone = [(n, kw) for n, kw in contenders if n not in dict(paired)]
    for batch in (1, 32):
      iters = self.args.iters_b1 if batch == 1 else self.args.iters_b32
      warmup = 3 if batch == 1 else 1
      for r in range(runs):
        results = {}
        if paired:
          res = self.task(f"infer {'+'.join(n for n, _ in paired)} b{batch}", "infer_paired",
                          paths=dict(paired), batch=batch, seq_length=SEQ_LENGTH,
                          iters=iters, warmup=warmup)
          if res:
            res.pop("peak_rss_mb", None)
            res.pop("process_seconds", None)
            results.update(res)
            out.setdefault("paired", {}).setdefault(str(batch), []).append(
                {n: x["sequences_per_second"] for n, x in res.items()})
        for name, kwargs in alone:
          res = self.task(f"infer {name} b{batch}", "infer", batch=batch,
                          seq_length=SEQ_LENGTH, iters=iters, warmup=warmup, **kwargs)
          if res:
            results[name] = res
        for name, res in results.items():
          entry = out.setdefault(name, {}).setdefault(str(batch), {"runs": []})
          entry["runs"].append(res)
          entry["sequences_per_second"] = median(
              [x["sequences_per_second"] for x in entry["runs"]])
          log(f"infer {name} batch {batch} {r + 1}/{runs}: "
              f"{res['sequences_per_second']:.2f} seq/s")

  def float_contenders(self):
    out = []
    for impl in IMPLS:
      path = self._exported("base", impl)
      if path:
        out.append((impl, dict(impl="tf", path=path)))
    out.append(("pytorch", dict(impl="torch", size="base")))
    return out

  def bfloat16_contenders(self):
    """bfloat16 serving: our export option, and oneDNN's runtime rewrite.

    Their speed is measured with the float32 rows (same runs, alternating).
    """
    info = self.checkpoint("base")
    out = self.data.setdefault("bfloat16", {})
    res = self.task("export base ours bfloat16", "export", impl="ours",
                    folder=info["folder"], serving_precision="bfloat16",
                    output=os.path.join(self.work, "exports", "base", "ours_bfloat16"))
    contenders = []
    if res:
      out["export"] = res
      log(f"export BERT-base ours serving_precision=bfloat16: {res['seconds']:.1f} s, "
          f"saved_model.pb {res['pb_bytes'] / 1e6:.2f} MB")
      contenders.append(("ours_bf16", dict(impl="tf", path=res["path"])))
    f32 = self._exported("base", "ours")
    if f32:
      contenders.append(("ours_onednn_bf16", dict(impl="tf", path=f32, bfloat16=True)))
    return contenders

  def bfloat16_accuracy(self):
    """Cosine of pooled_output to float32 on real sentences.

    For BERT-base (random weights) and all-MiniLM-L6-v2 (real weights), both
    exported with serving_precision="bfloat16": serving_default (bfloat16),
    serving_float32 (the float32 reference), and serving_float32 under
    oneDNN's runtime rewrite.
    """
    out = self.data.setdefault("bfloat16", {})
    res = out.get("export")
    tokens = os.path.join(self.work, "sentences.npz")
    sent = self.task("sentences", "sentences", count=self.args.sentences,
                     seq_length=SEQ_LENGTH, output=tokens)
    if sent is None:
      return
    acc = out.setdefault("accuracy", {})
    out["sentences"] = sent
    models = {}
    if res:
      models["BERT-base (random weights)"] = res["path"]
    minilm = self.task("export MiniLM bfloat16", "export_minilm", serving_precision="bfloat16",
                       output=os.path.join(self.work, "exports", "minilm_bfloat16"))
    if minilm:
      models["all-MiniLM-L6-v2 (real weights)"] = minilm["path"]
    import numpy as np  # pylint: disable=g-import-not-at-top
    ways = {"float32": dict(signature="serving_float32"),
            "export option": dict(signature="serving_default"),
            "oneDNN rewrite": dict(signature="serving_float32", bfloat16=True)}
    for k, (label, model_path) in enumerate(models.items()):
      pooled = {}
      for way, kwargs in ways.items():
        npy = os.path.join(self.work, f"pooled_{k}_{way.replace(' ', '_')}.npy")
        if self.task(f"embed {label} {way}", "embed", path=model_path, tokens=tokens,
                     output=npy, **kwargs):
          pooled[way] = np.load(npy).astype(np.float64)
      if "float32" not in pooled:
        continue
      a = pooled["float32"]
      for way in ("export option", "oneDNN rewrite"):
        if way not in pooled:
          continue
        b = pooled[way]
        cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        acc.setdefault(label, {})[way] = dict(
            cosine_min=float(cos.min()), cosine_mean=float(cos.mean()),
            max_abs_diff=float(np.max(np.abs(a - b))))
        log(f"bfloat16 ({way}) vs float32 pooled_output, {label}: cosine min "
            f"{cos.min():.5f}, mean {cos.mean():.6f}")

  def preprocessing(self):
    res = self.task("preprocessing", "preprocessing", repeats=self.args.prep_repeats,
                    seq_length=SEQ_LENGTH)
    if res:
      self.data["preprocessing"] = res
      for r in res["results"]:
        log(f"preprocessing {r['name']}: {r['sentences_per_second']:,.0f} sentences/s")


# -- the table -------------------------------------------------------------------
def _fmt(value, spec):
  return "n/a" if value is None else format(value, spec)


def _ratio(a, b):
  return None if a is None or b is None or b == 0 else a / b


def _verdict(ratio, *, at_most=None, at_least=None):
  if ratio is None:
    return "missing"
  ok = (at_most is None or ratio <= at_most) and (at_least is None or ratio >= at_least)
  return "met" if ok else "MISSED"


def _paired_ratio(inf, name, reference, batch):
  """(median, " (...)" range) over processes of name/reference measured in one
  process (infer_paired); (None, "") if they never shared one."""
  ratios = [p[name] / p[reference] for p in inf.get("paired", {}).get(str(batch), [])
            if p.get(name) and p.get(reference)]
  if not ratios:
    return None, ""
  return median(ratios), (f" (same-process ratios {min(ratios):.3f}-{max(ratios):.3f}"
                          f" over {len(ratios)} processes)")


def rows(data) -> list:
  """[(section, measure, ours, reference, third party, ratio, target)] as strings."""
  out, large = [], []
  exp = data.get("export", {})
  for size in ("base", "large"):
    e = exp.get(size)
    if not e:
      continue
    rows_ = out if size == "base" else large
    t = {i: median([r["seconds"] for r in e[i]]) for i in IMPLS}
    m = {i: median([r["peak_rss_mb"] for r in e[i]]) for i in IMPLS}
    n = {i: len(e[i]) for i in IMPLS}
    sec = "1" if size == "base" else "5"
    ratio = _ratio(t["ours"], t["reference"])
    rows_.append((sec, f"BERT-{size} export, wall s (median of {n['ours']}/{n['reference']}; "
                "ours includes verify)", _fmt(t["ours"], ".1f"), _fmt(t["reference"], ".1f"),
                "", _fmt(ratio, ".2f"),
                f"<= 0.5: {_verdict(ratio, at_most=0.5)}" if size == "base" else ""))
    weights_gb = e["weight_bytes"] / 2**30
    ratio_m = _ratio(m["ours"], m["reference"])
    target = ""
    if size == "large":
      over = _ratio(m["ours"] / 1024 if m["ours"] else None, weights_gb)
      target = (f"<= 3x weights ({3 * weights_gb:.2f} GB): ours "
                f"{_fmt(over, '.2f')}x, {_verdict(over, at_most=3)}")
    rows_.append((sec, f"BERT-{size} export, peak memory GB (weights {weights_gb:.2f} GB)",
                _fmt(m["ours"] and m["ours"] / 1024, ".2f"),
                _fmt(m["reference"] and m["reference"] / 1024, ".2f"), "",
                _fmt(ratio_m, ".2f"), target))
  ld = data.get("load", {})
  if ld:
    for loader, label in (("hub", "hub.KerasLayer"), ("tf", "tf.saved_model.load")):
      t = {i: median([r["seconds"] for r in ld.get(i, {}).get(loader, [])]) for i in IMPLS}
      ratio = _ratio(t["ours"], t["reference"])
      out.append(("2", f"load BERT-base with {label}, s", _fmt(t["ours"], ".2f"),
                  _fmt(t["reference"], ".2f"), "", _fmt(ratio, ".2f"),
                  f"<= 0.5: {_verdict(ratio, at_most=0.5)}"))
    size = {i: ld.get(i, {}).get("pb_bytes") for i in IMPLS}
    ratio = _ratio(size["ours"], size["reference"])
    out.append(("2", "saved_model.pb, MB", _fmt(size["ours"] and size["ours"] / 1e6, ".2f"),
                _fmt(size["reference"] and size["reference"] / 1e6, ".2f"), "",
                _fmt(ratio, ".2f"), f"<= 0.5: {_verdict(ratio, at_most=0.5)}"))
  inf = data.get("infer", {})
  mm = data.get("matmul", {})
  peak32 = mm.get("float32", {}).get("gflops")
  peak16 = mm.get("bfloat16", {}).get("gflops")
  if inf:
    from benchmarks.tasks import bert_config_json, matmul_flops_per_sequence  # pylint: disable=g-import-not-at-top
    flops = matmul_flops_per_sequence(bert_config_json("base"), SEQ_LENGTH)
    sps = lambda name, b: inf.get(name, {}).get(str(b), {}).get("sequences_per_second")
    for b in (1, 32) if "ours" in inf or "reference" in inf else ():
      ours, ref, torch = sps("ours", b), sps("reference", b), sps("pytorch", b)
      ratio, spread = _paired_ratio(inf, "ours", "reference", b)
      ratio = ratio if ratio is not None else _ratio(ours, ref)
      out.append(("3", f"BERT-base inference float32, batch {b}, seq {SEQ_LENGTH}: "
                  "sequences/s", _fmt(ours, ".2f"), _fmt(ref, ".2f"),
                  f"PyTorch transformers {_fmt(torch, '.2f')}", _fmt(ratio, ".3f"),
                  f">= 1.0: {_verdict(ratio, at_least=1.0)}{spread}"))
    for b in (1, 32) if "ours" in inf or "reference" in inf else ():
      g = {n: sps(n, b) and sps(n, b) * flops / 1e9 for n in ("ours", "reference", "pytorch")}
      frac = lambda x: "n/a" if x is None or not peak32 else f"{x:.0f} ({x / peak32:.0%})"
      out.append(("3", f"  GFLOP/s at batch {b} (fraction of the float32 4096^2 matmul "
                  f"peak, {_fmt(peak32, '.0f')} GFLOP/s)", frac(g["ours"]),
                  frac(g["reference"]), f"PyTorch {frac(g['pytorch'])}", "", ""))
    bf_labels = (("ours_bf16", "serving_precision=bfloat16 export (serving_default)"),
                 ("ours_onednn_bf16", "float32 export + oneDNN runtime bfloat16 rewrite"))
    for name, label in bf_labels:
      if name not in inf:
        continue
      for b in (1, 32):
        bf, ours, ref = sps(name, b), sps("ours", b), sps("reference", b)
        g = bf and bf * flops / 1e9
        ratio = _paired_ratio(inf, name, "reference", b)[0]
        out.append(("3", f"BERT-base inference bfloat16, {label}, batch {b}: sequences/s "
                    "(ratio: to the reference's float32)", _fmt(bf, ".2f"), _fmt(ref, ".2f"),
                    "", _fmt(ratio if ratio is not None else _ratio(bf, ref), ".2f"),
                    "; ".join(x for x in (
                        _ratio(bf, ours) and f"{_ratio(bf, ours):.2f}x ours float32",
                        g and peak16 and f"{g:.0f} GFLOP/s = {g / peak16:.0%} of the "
                        f"bfloat16 4096^2 matmul peak ({peak16:.0f})") if x)))
  bf = data.get("bfloat16", {})
  if bf.get("export"):
    out.append(("3", "saved_model.pb with serving_precision=bfloat16, MB",
                _fmt(bf["export"]["pb_bytes"] / 1e6, ".2f"), "", "", "", ""))
  for label, ways in bf.get("accuracy", {}).items():
    for way, a in ways.items():
      out.append(("3", f"bfloat16 accuracy ({way}), {label}: cosine of pooled_output to "
                  f"float32 on {bf['sentences']['sentences']} real sentences (min / mean)",
                  f"{a['cosine_min']:.5f} / {a['cosine_mean']:.6f}", "", "", "",
                  f"largest abs difference {a['max_abs_diff']:.3g}"))
  prep = data.get("preprocessing")
  if prep:
    r = {x["name"]: x["sentences_per_second"] for x in prep["results"]}
    ours = r.get("faithful")
    ref = r.get("tf-models")
    others = ", ".join(f"{k} {v:,.0f}" for k, v in r.items()
                       if k not in ("faithful", "tf-models"))
    out.append(("4", f"preprocessing, sentences/s ({prep['sentences']} sentences, batch "
                f"{prep.get('batch_size')}, seq {SEQ_LENGTH}; ours = faithful)",
                _fmt(ours, ",.0f"), _fmt(ref, ",.0f"), others, _fmt(_ratio(ours, ref), ".2f"),
                ""))
  elif "preprocessing" in data.get("errors", {}):
    out.append(("4", "preprocessing, sentences/s", "missing", "missing", "missing", "",
                "benchmarks/preprocessing.py failed: " + data["errors"]["preprocessing"][:120]))
  return out + large


def markdown(data) -> str:
  lines = ["| # | measure | ours | tf-models reference | third party | ours / reference | "
           "target |", "|---|---|---:|---:|---|---:|---|"]
  for r in rows(data):
    lines.append("| " + " | ".join(r) + " |")
  cpu = data["cpu"]
  samples = data.get("load_average_samples") or [data["load_average_start"][0]]
  notes = [
      "",
      f"{cpu['model']}, {cpu['cores']} cores ({', '.join(cpu['flags'])}); "
      + ", ".join(f"{k} {v}" for k, v in data["versions"].items() if v) + ".",
      f"Load average (1 min) when tasks started: median {median(samples):.2f}, max "
      f"{max(samples):.2f} on {cpu['cores']} cores (one benchmark process adds about 1)"
      + (": other processes competed for the CPU during the run, both sides alike."
         if max(samples) > cpu["cores"] + 0.5 else "."),
      f"Fresh processes per measurement: {data['args']['runs']} per BERT-base export, "
      f"{data['args']['load_runs']} per load, {data['args']['large_runs']} per "
      f"BERT-large export, {data['args']['runs']} per inference row (ours, the "
      "reference and ours in bfloat16 share each process, calls alternating), "
      f"each timing {data['args']['iters_b1']} (batch 1) / {data['args']['iters_b32']} "
      "(batch 32) calls per model after warm-up; medians throughout.",
  ]
  if data["errors"]:
    notes.append("Missing or failed: " + "; ".join(f"{k}: {v[:160]}"
                                                  for k, v in data["errors"].items()))
  return "\n".join(lines + notes)


# -- the plot --------------------------------------------------------------------
def plot(data, path) -> bool:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    log("matplotlib is not installed: no plot")
    return False
  panels = []
  exp = data.get("export", {})
  labels = [s for s in ("base", "large") if s in exp]
  if labels:
    panels.append(("export wall time (s)", [f"BERT-{s}" for s in labels], {
        i: [median([r["seconds"] for r in exp[s][i]]) for s in labels] for i in IMPLS}))
    panels.append(("export peak memory (GB)", [f"BERT-{s}" for s in labels], {
        **{i: [(median([r["peak_rss_mb"] for r in exp[s][i]]) or 0) / 1024 for s in labels]
           for i in IMPLS},
        "weights": [exp[s]["weight_bytes"] / 2**30 for s in labels]}))
  ld = data.get("load", {})
  if ld:
    panels.append(("load BERT-base (s)", ["hub.KerasLayer", "tf.saved_model.load"], {
        i: [median([r["seconds"] for r in ld.get(i, {}).get(l, [])]) for l in ("hub", "tf")]
        for i in IMPLS}))
    panels.append(("saved_model.pb (MB)", ["BERT-base"], {
        i: [(ld.get(i, {}).get("pb_bytes") or 0) / 1e6] for i in IMPLS}))
  inf = data.get("infer", {})
  if inf:
    names = [n for n in ("ours", "reference", "pytorch", "ours_bf16", "ours_onednn_bf16")
             if n in inf]
    panels.append(("inference BERT-base seq 128 (sequences/s)", ["batch 1", "batch 32"], {
        n: [inf[n].get(str(b), {}).get("sequences_per_second") for b in (1, 32)]
        for n in names}))
  prep = data.get("preprocessing")
  if prep:
    panels.append(("preprocessing (sentences/s)", ["seq 128"], {
        r["name"]: [r["sentences_per_second"]] for r in prep["results"]}))
  if not panels:
    return False
  cols = 3
  rows_ = (len(panels) + cols - 1) // cols
  fig, axes = plt.subplots(rows_, cols, figsize=(5 * cols, 3.8 * rows_), squeeze=False)
  for ax, (title, groups, series) in zip(axes.flat, panels):
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
      xs = [g + k * width for g in range(len(groups))]
      vals = [v or 0 for v in values]
      bars = ax.bar(xs, vals, width, label=name)
      ax.bar_label(bars, labels=[f"{v:.3g}" if v else "n/a" for v in values], fontsize=7)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))], groups)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(panels):]:
    ax.axis("off")
  fig.suptitle(f"bert-hub vs tf-models export_tfhub_lib ({data['cpu']['model']}, "
               f"{data['cpu']['cores']} cores; {data['started']})", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      description="bert-hub vs tf-models' exporter: export, load, inference, "
      "preprocessing (see benchmarks/README.md)")
  parser.add_argument("--runs", type=int, default=3,
                      help="fresh processes per BERT-base export and per inference "
                      "measurement (median)")
  parser.add_argument("--load-runs", type=int, default=5,
                      help="fresh processes per load measurement (median)")
  parser.add_argument("--large-runs", type=int, default=2,
                      help="runs of the BERT-large export (median)")
  parser.add_argument("--iters-b1", type=int, default=20,
                      help="timed inference calls at batch 1 (median)")
  parser.add_argument("--iters-b32", type=int, default=5,
                      help="timed inference calls at batch 32 (median)")
  parser.add_argument("--prep-repeats", type=int, default=3,
                      help="passes over the corpus in the preprocessing benchmark")
  parser.add_argument("--sentences", type=int, default=128,
                      help="real sentences for the bfloat16 accuracy")
  parser.add_argument("--only", default=",".join(SECTIONS),
                      help="comma-separated sections: " + ", ".join(SECTIONS))
  parser.add_argument("--quick", action="store_true",
                      help="a smoke run: 1 run, no BERT-large, fewer calls (minutes)")
  parser.add_argument("--work", default=os.path.join(RESULTS, "work"),
                      help="checkpoints and exports (reused across runs)")
  parser.add_argument("--results", default=RESULTS, help="where the table and plot go")
  args = parser.parse_args(argv)
  if args.quick:
    args.runs, args.load_runs, args.large_runs = 1, 1, 1
    args.iters_b1, args.iters_b32, args.prep_repeats = 5, 1, 1
    args.sentences = min(args.sentences, 32)
    args.only = ",".join(s for s in args.only.split(",") if s != "large")
  unknown = set(args.only.split(",")) - set(SECTIONS)
  if unknown:
    parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
  return args


def main(argv=None):
  args = parse_args(argv)
  sections = args.only.split(",")
  os.makedirs(args.results, exist_ok=True)
  bench = Bench(args)
  start = time.perf_counter()
  if "export" in sections:
    bench.exports("base", args.runs)
  if "load" in sections:
    bench.loads(args.load_runs)
  if "infer" in sections or "bfloat16" in sections:
    bench.matmul()
  contenders = bench.float_contenders() if "infer" in sections else []
  if "bfloat16" in sections:
    contenders += bench.bfloat16_contenders()
  bench.inference(contenders, args.runs)
  if "bfloat16" in sections:
    bench.bfloat16_accuracy()
  if "preprocessing" in sections:
    bench.preprocessing()
  if "large" in sections:
    bench.exports("large", args.large_runs)
  text_table = ""
  if "text" in sections:
    from benchmarks import text  # pylint: disable=g-import-not-at-top
    log("text servables (benchmarks/text.py)")
    try:
      text_table = text.main(["--rounds", "5" if args.quick else "15"])
    except RuntimeError as e:
      bench.data["errors"]["text"] = str(e)[-500:]
  if sections == ["text"]:
    return
  data = bench.data
  data["load_average_end"] = os.getloadavg()
  data["seconds"] = time.perf_counter() - start
  table = markdown(data)
  with open(os.path.join(args.results, "results.json"), "w") as f:
    json.dump(data, f, indent=1)
  with open(os.path.join(args.results, "results.md"), "w") as f:
    f.write(table + "\n")
  png = os.path.join(args.results, "benchmarks.png")
  plotted = plot(data, png)
  print(table)
  print(f"\n{len(data['errors'])} failed; took {data['seconds'] / 60:.1f} min; wrote "
        f"{os.path.relpath(args.results, REPO)}/results.md, results.json"
        + (", benchmarks.png" if plotted else ""))


if __name__ == "__main__":
  main()
