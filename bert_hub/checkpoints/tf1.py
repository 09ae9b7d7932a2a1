"""Original google-research BERT checkpoints (TF1 name-based, `bert_model.ckpt.*`).

Names like `bert/encoder/layer_0/attention/self/query/kernel` (kernels [in, out]),
`bert/pooler/dense/kernel`, and the MLM head under `cls/predictions/...`; the
mapping lives in names.py. Optimizer slots and `global_step` are skipped; the
next-sentence head `cls/seq_relationship/*` is not part of the encoder.
"""
from bert_hub.checkpoints import names
from bert_hub.checkpoints.common import match_named, open_tf_checkpoint, read_tf_tensor


def read(prefix, config, *, with_mlm):
  reader = open_tf_checkpoint(prefix)
  keys = [k for k in reader.get_variable_to_shape_map()
          if k not in names.TF1_IGNORED and not k.endswith(names.TF1_IGNORED_SUFFIXES)]
  encoder_keys = [k for k in keys if k.startswith(names.TF1_ENCODER_PREFIX) or
                  (with_mlm and k.startswith(names.TF1_MLM_PREFIX))]
  source = {k: read_tf_tensor(reader, k, prefix) for k in encoder_keys}
  return match_named(source, config, fmt="tf1", with_mlm=with_mlm,
                     encoder_keys=encoder_keys, path=prefix,
                     layer_pattern=r"bert/encoder/layer_(\d+)/")
