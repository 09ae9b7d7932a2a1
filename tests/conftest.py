"""Fixtures shared by several test files."""
import pytest


# ------------------------------------------------------ graph optimization in tests
#
# The first call of a tf.function (or of a reloaded signature) optimizes its
# graph with grappler: about 1 to 2 s per function here, with the tokenizer,
# the length loop and the encoder inside, and the suite makes hundreds of them
# (measured: 599 tests, 9 min 49 s with grappler, 7 min 54 s without). In this
# process grappler is off: the tests check what our graphs compute. What TF
# Serving runs, the optimized graph (grappler's fusions, oneDNN's rewrites), is
# checked where it is run: in the TF1-session children of tests/serving_utils.py
# and the real-process tests (test_cli, test_keras3, test_publish), which keep
# TensorFlow's default, and in the modules marked `optimized_graphs` (their
# results depend on the fusions: bfloat16 accuracy, fused projections).
#
# A module marked `eager_functions` runs the in-memory models' tf.functions
# eagerly (tf.config.run_functions_eagerly): the tokenizer-settings modules
# build a model per setting and call it on a few short texts, where tracing
# (0.6-1.2 s per function) costs more than running the same ops one by one
# (test_tokenizer_settings_parity: 83 s -> 49 s alone, measured 2026-12-07).
# What they compare is the ids; their saved-and-reloaded models (restored
# graphs, never run eagerly) are checked against the eager ones, and graph
# mode is what every other module runs. Modules that call a model on large
# batches are faster traced (test_preprocessing_model: 72 s traced, 83 s eager).


@pytest.fixture(scope="module", autouse=True)
def graph_optimization(request):
  """Grappler off for the module, unless it is marked optimized_graphs (and
  functions run eagerly if it is marked eager_functions)."""
  import bert_hub  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  optimized = request.node.get_closest_marker("optimized_graphs") is not None
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not optimized})
  eager = request.node.get_closest_marker("eager_functions") is not None
  tf.config.run_functions_eagerly(eager)
  yield optimized
  tf.config.run_functions_eagerly(False)


# ------------------------------------------------------ the order of modules
#
# `make test` gives each xdist worker whole modules (--dist loadscope), one after
# another, in the order collected (--no-loadscope-reorder). The slowest go
# first, so that the two workers end together instead of one running the last
# long module alone (measured 2026-12-07, 2 cores: 392 s and 362 s of tests
# on the two workers, ordered by number of tests). Their measured test time,
# seconds, in that run; modules not listed follow in file order. The first
# uses the MiniLM demo export (minilm_demo), the next is the other worker's
# start: the demo's other users come after it is made.
SLOWEST_FIRST = (
    "test_text_embedding.py",  # 147 (makes minilm_demo)
    "test_text_classifier.py",  # 93
    "test_preprocessing_model.py",  # 71
    "test_bench_text.py",  # 60 (minilm_demo)
    "test_checkpoint_variants.py",  # 55 (minilm_demo)
    "test_export_encoder.py",  # 39
    "test_versions.py",  # 38
    "test_tokenizer_settings_parity.py",  # 35
    "test_publish.py",  # 33
    "test_beam.py",  # 22
    "test_serving.py",  # 18
    "test_preprocessing_fuzz.py",  # 18
    "test_encoder.py",  # 17
    "test_keras3.py",  # 16
    "test_preprocessing_packing.py",  # 12
    "test_tokenizer_settings.py",  # 11
    "test_cli.py",  # 10
    "test_encoder_page.py",  # 10
)


def pytest_collection_modifyitems(items):
  """Modules in SLOWEST_FIRST order (each module's tests keep theirs)."""
  rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


# ------------------------------------------------------ the garbage collector
#
# A test process holds about a million Python objects (TensorFlow, Keras, the
# models of the modules run so far), and Python's automatic full collections
# scan them all: 0.3 s each, dozens per module (measured 2026-12-07:
# test_text_classifier + test_tokenizer_settings_parity in one process, 10.4 s
# of collections, 9.1 s of them full ones; 5.6 s as below, measured with the
# second module already eager, so part of the gain is that). Here the
# automatic collections stop at the middle generation; each module starts with
# one full collection (what the modules before it left) and freezes what
# survives (imports, session fixtures), so that the collections after it, the
# exports' own included, scan only what the module makes.


def pytest_configure(config):  # pylint: disable=unused-argument
  import gc  # pylint: disable=g-import-not-at-top
  threshold0, threshold1, _ = gc.get_threshold()
  gc.set_threshold(threshold0, threshold1, 10**9)  # no automatic full collection


@pytest.fixture(scope="module", autouse=True)
def collected_between_modules():
  import gc  # pylint: disable=g-import-not-at-top
  gc.collect()
  gc.freeze()


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory):
  """The tiny SavedModels of tests/serving_models.py, saved once per session.

  {"plain" | "text" | "trim": pathlib.Path of DIR/1}; tests may copy them but
  must not change them.
  """
  from tests import serving_models  # pylint: disable=g-import-not-at-top
  return serving_models.build(tmp_path_factory.mktemp("serving_models"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
  """A TF1 checkpoint folder (bert_model.ckpt.*, bert_config.json, vocab.txt)."""
  import types  # pylint: disable=g-import-not-at-top
  from tests import fixtures  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("reliability")
  config = fixtures.tiny_config()
  prefix, arrays = fixtures.write_tf1_checkpoint(root / "tf1", config, with_mlm=False)
  fixtures.write_vocab(root / "tf1")
  return types.SimpleNamespace(root=root, config=config, prefix=prefix, arrays=arrays,
                               folder=root / "tf1", vocab=str(root / "tf1/vocab.txt"))


@pytest.fixture(scope="session")
def exported(tiny):
  """`tiny` exported as DIR/3 (the "previous version" the fault tests keep safe).

  Tests may read it and export other versions beside it, never change it.
  """
  from export import lib  # pylint: disable=g-import-not-at-top
  result = lib.export_encoder(checkpoint=tiny.prefix, output_dir=str(tiny.root / "models"),
                              lower_case=True, report=lib.quiet_report)
  return result.path


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory):
  """A tiny Hugging Face BertModel directory (model.safetensors, config.json, vocab)."""
  from tests import fixtures  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("hf")
  fixtures.write_hf_checkpoint(folder, fixtures.tiny_config(), pretraining=False)
  fixtures.write_vocab(folder)
  return folder


# ----------------------------------------------- made once per run, shared by workers
#
# `make test` runs one pytest-xdist worker per core; a session fixture is made
# once per worker. The real-weights exports below are made once per RUN: the
# first worker to ask makes it under a file lock in the run's shared temp
# directory, the others wait and reuse it. Tests must not change them.


@pytest.fixture(scope="session")
def run_shared(tmp_path_factory, request):
  """A directory all xdist workers of this run share (a session's own without xdist)."""
  base = tmp_path_factory.getbasetemp()
  worker = hasattr(request.config, "workerinput")  # set in xdist workers only
  root = (base.parent if worker else base) / "shared"
  root.mkdir(exist_ok=True)
  return root


# The longest a worker waits for another to make a shared export (the slowest,
# the MiniLM demo, takes about 2 minutes on 2 busy cores).
MADE_ONCE_TIMEOUT = 900


def made_once(shared, name: str, make):
  """shared/name, made by `make(path)` in the first worker that asks, under a lock
  (waiting at most MADE_ONCE_TIMEOUT seconds for another worker's)."""
  import filelock  # pylint: disable=g-import-not-at-top
  path = shared / name
  done = shared / f"{name}.done"
  lock = filelock.FileLock(str(shared / f"{name}.lock"))
  try:
    lock.acquire(timeout=MADE_ONCE_TIMEOUT)
  except filelock.Timeout:
    pytest.fail(f"{name}: another worker held its lock for over {MADE_ONCE_TIMEOUT} s "
                f"(hung while making it?); rerun, or without -n to make it here")
  try:
    if not done.exists():
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(path, ignore_errors=True)  # what a failed attempt left
      make(path)
      done.touch()
  finally:
    lock.release()
  return path


@pytest.fixture(scope="session")
def minilm_demo(run_shared):
  """`python -m export.demo --output DIR` run once (the README's main job).

  {"output": DIR, "printed": what it printed}: DIR holds minilm_l6_encoder/3,
  minilm_l6_preprocess/3 and minilm_l6_embed/1 (the published MiniLM as a
  text-embedding servable with the default options), the real-weights exports
  other tests reuse.
  """
  def make(path):
    import contextlib  # pylint: disable=g-import-not-at-top
    import io  # pylint: disable=g-import-not-at-top
    from export import demo  # pylint: disable=g-import-not-at-top
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      assert demo.main(["--output", str(path / "models")]) == 0
    (path / "printed.txt").write_text(printed.getvalue(), encoding="utf-8")

  path = made_once(run_shared, "minilm_demo", make)
  return {"output": path / "models",
          "printed": (path / "printed.txt").read_text(encoding="utf-8")}
