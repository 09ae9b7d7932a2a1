"""--serving-precision bfloat16: a faster serving_default, float32 everywhere else."""
import numpy as np

import bert_hub  # noqa: F401
from bert_hub.encoder import load_encoder, sample_inputs
from export import cli
from tests import fixtures

import tensorflow as tf  # pylint: disable=wrong-import-order


def test_bfloat16_serving_signature_keeps_float32_api(tmp_path, capsys):
  config = fixtures.tiny_config()
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "ckpt", config, with_mlm=False)
  fixtures.write_vocab(tmp_path / "ckpt")
  code = cli.main(["encoder", "--checkpoint", prefix, "--output", str(tmp_path / "out"),
                   "--lower-case", "--serving-precision", "bfloat16"])
  assert code == 0, capsys.readouterr().err
  loaded = tf.saved_model.load(str(tmp_path / "out" / "3"))
  assert set(loaded.signatures) == {"serving_default", "serving_float32"}
  inputs = sample_inputs(config, batch=3, seq_length=12)
  feeds = {k: tf.constant(v) for k, v in inputs.items()}
  want = load_encoder(prefix)(inputs, training=False)
  fast = loaded.signatures["serving_default"](**feeds)
  exact = loaded.signatures["serving_float32"](**feeds)
  call = loaded(inputs)
  assert fast["pooled_output"].dtype == tf.float32  # float32 outputs
  np.testing.assert_allclose(exact["pooled_output"], want["pooled_output"], atol=5e-5)
  np.testing.assert_allclose(call["sequence_output"], want["sequence_output"], atol=5e-5)
  # bfloat16 has 8 significant bits: close to float32, but not equal to it.
  a, b = fast["pooled_output"].numpy(), want["pooled_output"].numpy()
  cosine = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
  assert cosine.min() > 0.999, cosine
  assert np.max(np.abs(a - b)) > 0  # it really computes in bfloat16


def test_bad_encoder_options_fail_before_any_work(tmp_path):
  import pytest
  from bert_hub.errors import BertHubError
  from export import lib
  config = fixtures.tiny_config()
  prefix, _ = fixtures.write_tf1_checkpoint(tmp_path / "ckpt", config)
  fixtures.write_vocab(tmp_path / "ckpt")
  out = tmp_path / "out"
  with pytest.raises(BertHubError, match="unknown serving precision.*received 'float16'"):
    lib.export_encoder(checkpoint=prefix, output_dir=str(out), serving_precision="float16",
                       report=lib.quiet_report)
  with pytest.raises(BertHubError, match="MLM head needs the dict API.*--version 1"):
    lib.export_encoder(checkpoint=prefix, output_dir=str(out), version=1, with_mlm=True,
                       report=lib.quiet_report)
  assert not out.exists()
