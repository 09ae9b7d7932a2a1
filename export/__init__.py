"""Writing SavedModels: versions 1-3, the CLI, serving artifacts."""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
