"""The export kinds: each supplies what is its own to export/pipeline.py.

  encoder.py         encoder SavedModels, interface versions 1-3 (TF Hub's)
  preprocessing.py   the companion preprocessing SavedModel
  text_embedding.py  sentences in, embeddings out, one request (TF Serving)
  text_embedding_head.py  its embedding head (pooling, Dense, normalize, prompts)
  text_classifier.py  sentences in, label names and scores out (classifiers,
                     rerankers; predict, pairs, Classify/Regress signatures)

A kind is an export.pipeline.ExportKind: made from resolved inputs (export/
sources.py), with checks of its options that run before any work; it builds
the object to save, names the checks after reloading, its warmup requests and
its page. Each module also has the public export function (export_encoder,
...) that export/lib.py offers and the CLI calls.
"""
