"""bert-hub: build BERT encoders and preprocessing from real checkpoints.

Importing this package makes tf_keras the Keras of the process (see `_keras.py`),
so `hub.KerasLayer` and our models mix; users never set TF_USE_LEGACY_KERAS.

Public API:
  load_encoder(checkpoint, config=None, *, checkpoint_format=None) -> tf_keras.Model
  BertConfig, load_config(path)
  BertHubError
"""
from bert_hub import _keras  # noqa: F401  (must run before tensorflow is imported)
from bert_hub.errors import BertHubError, CheckpointMismatchError

__all__ = ["BertHubError", "CheckpointMismatchError", "BertConfig", "load_config",
           "load_encoder"]


def __getattr__(name):
  # Lazy, so that `import bert_hub` stays cheap and sets up Keras first.
  if name in ("BertConfig", "load_config"):
    from bert_hub import config
    return getattr(config, name)
  if name == "load_encoder":
    from bert_hub.encoder import load_encoder
    return load_encoder
  raise AttributeError(f"module 'bert_hub' has no attribute {name!r}")
