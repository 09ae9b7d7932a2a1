"""Config readers (bert_hub/config.py): every bad config is one clear error.

Rows of the README's "Bad input and faults" table; helpers in tests/cli_utils.py.
"""
import json

import pytest

import bert_hub  # noqa: F401  (legacy Keras first)
from tests import fixtures
from tests.cli_utils import cli_error, encoder_args


# ------------------------------------------------------------------ configs


def config_error(tmp_path, capsys, tiny, config_json, *needles, name="bert_config.json"):
  path = tmp_path / name
  path.write_text(config_json if isinstance(config_json, str) else json.dumps(config_json))
  return cli_error(capsys, *encoder_args(tiny.prefix, tmp_path / "out",
                                         "--config", path), needles=needles)


def test_config_missing_keys(tmp_path, capsys, tiny):
  data = fixtures.bert_config_json(tiny.config)
  del data["hidden_size"], data["num_attention_heads"]
  config_error(tmp_path, capsys, tiny, data, "incomplete bert_config.json",
               "received no hidden_size, num_attention_heads", "add the missing keys")


@pytest.mark.parametrize("name,change,needle", [
    ("bert_config.json", dict(hidden_size="16"), "hidden_size='16' (a positive integer)"),
    ("bert_config.json", dict(num_hidden_layers=2.0), "num_layers=2.0"),
    ("bert_config.json", dict(num_attention_heads=None), "num_heads=None"),
    ("bert_config.json", dict(hidden_dropout_prob="0.1"), "hidden_dropout='0.1'"),
    ("bert_config.json", dict(initializer_range="0.02"), "initializer_range='0.02'"),
    ("config.json", dict(model_type="bert", layer_norm_eps="1e-12"),
     "layer_norm_eps='1e-12' (a positive number)"),
    ("bert_config.json", dict(hidden_act=5), "unknown activation"),
    ("config.json", dict(model_type=["bert"]), 'received "model_type": ["bert"]'),
])
def test_config_wrong_types(tmp_path, capsys, tiny, name, change, needle):
  data = dict(fixtures.bert_config_json(tiny.config), **change)
  config_error(tmp_path, capsys, tiny, data, needle, name=name)


@pytest.mark.parametrize("text,needle", [
    ("[1, 2]", "holding a list"),
    ("encoder: 5\n", "received encoder: 5"),
    ("encoder:\n  type: bert\n  bert:\n", "received bert: None"),
    ("{", "valid YAML"),
])
def test_config_yaml_of_the_wrong_shape(tmp_path, capsys, tiny, text, needle):
  config_error(tmp_path, capsys, tiny, text, needle, name="encoder.yaml")


def test_config_hidden_size_not_divisible_by_heads(tmp_path, capsys, tiny):
  data = dict(fixtures.bert_config_json(tiny.config), num_attention_heads=5)
  config_error(tmp_path, capsys, tiny, data, "hidden_size divisible by the number of "
               "attention heads", "hidden_size=16, heads=5 (remainder 1)")


@pytest.mark.parametrize("name,act", [("bert_config.json", "gelu_new"),
                                      ("config.json", "gelu_newest")])
def test_config_unknown_activation(tmp_path, capsys, tiny, name, act):
  data = dict(fixtures.bert_config_json(tiny.config), hidden_act=act)
  if name == "config.json":
    data["model_type"] = "bert"
  config_error(tmp_path, capsys, tiny, data, "unknown activation", f"received '{act}'",
               name=name)


@pytest.mark.parametrize("change,needle", [
    (dict(num_hidden_layers=3), "the checkpoint has 2 layers (config: num_layers=3)"),
    (dict(hidden_size=32), "hidden size 16 (config: hidden_size=32)"),
    (dict(intermediate_size=24), "of the wrong shape"),
])
def test_config_that_disagrees_with_the_checkpoint(tmp_path, capsys, tiny, change, needle):
  data = dict(fixtures.bert_config_json(tiny.config), **change)
  config_error(tmp_path, capsys, tiny, data, needle)
