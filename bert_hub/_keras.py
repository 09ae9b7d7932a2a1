"""Makes tf_keras (legacy Keras 2) the Keras of this process, before TensorFlow loads.

`hub.KerasLayer` is a tf_keras layer and tf-models-official builds tf_keras models,
so bert-hub needs `tf.keras` to be tf_keras too. TensorFlow reads
TF_USE_LEGACY_KERAS when it is first imported, so this module must be imported
before tensorflow; `bert_hub/__init__.py` and `export/__init__.py` import it first.
Users never set the variable themselves.
"""
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
  # TensorFlow already chose its Keras. tf_keras still works when used directly
  # (which is all bert-hub does); only code that says `tf.keras` would differ.
  import warnings
  warnings.warn(
      "bert_hub was imported after tensorflow without TF_USE_LEGACY_KERAS=1: "
      "bert_hub itself uses tf_keras directly, but your own `tf.keras` is Keras 3, "
      "which cannot hold a hub.KerasLayer; import bert_hub first to fix this.",
      stacklevel=3)
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
