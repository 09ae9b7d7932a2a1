"""Fixtures shared by several test files."""
import pytest


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
