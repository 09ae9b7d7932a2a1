"""The `inspect` and `serving-config` subcommands, as bert-hub-export runs them.

export/serving_cli.py adds them to export/cli.py's parser; cli.main prints a
BertHubError as one `error:` line and exits 2.
"""
import bert_hub  # noqa: F401  (must come before tensorflow)

import pathlib

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from export import cli
from export import serving_cli


def _parse_models_config(path) -> model_server_config_pb2.ModelServerConfig:
  return text_format.Parse(pathlib.Path(path).read_text(),
                           model_server_config_pb2.ModelServerConfig())


def test_cli_serving_config_and_inspect(serving_models, tmp_path, capsys):
  out = tmp_path / "cli"
  assert cli.main([
      "serving-config", "--model", f"plain={serving_models['plain'].parent}",
      "--model", f"text={serving_models['text'].parent}", "--output", str(out),
      "--version-policy", "specific:1", "--num-batch-threads", "2"]) == 0
  configs = _parse_models_config(out / "models.config").model_config_list.config
  assert [list(c.model_version_policy.specific.versions) for c in configs] == [[1], [1]]
  printed = capsys.readouterr().out
  assert f"wrote {out / 'models.config'}" in printed
  assert f"wrote {out / 'batching_parameters.txt'}" in printed
  assert "tensorflow_model_server" in printed and "--enable_batching" in printed

  assert cli.main(["serving-config", "--model", "a=/nonexistent",
                   "--output", str(out)]) == cli.EXIT_BAD_INPUT
  captured = capsys.readouterr()
  assert captured.err.startswith("error: model 'a': no directory")
  assert len(captured.err.splitlines()) == 1

  assert cli.main(["inspect", str(serving_models["text"])]) == 0
  assert "(need tensorflow_text): FastWordpieceTokenizeWithOffsets" in \
      capsys.readouterr().out

  assert cli.main(["inspect", str(serving_models["text"].parent)]) == cli.EXIT_BAD_INPUT
  assert "error: no SavedModel at" in capsys.readouterr().err


def test_cli_serving_config_without_batching(serving_models, tmp_path, capsys):
  out = tmp_path / "cli"
  assert cli.main(["serving-config", "--model", f"plain={serving_models['plain'].parent}",
                   "--output", str(out), "--no-batching"]) == 0
  assert "--enable_batching" not in capsys.readouterr().out
  assert not (out / "batching_parameters.txt").exists()
  (config,) = _parse_models_config(out / "models.config").model_config_list.config
  assert config.model_version_policy.WhichOneof("policy_choice") == "latest"


@pytest.mark.parametrize("argv", [
    ["serving-config", "--model", "no_equals_sign", "--output", "x"],
    ["serving-config", "--model", "a=b", "--output", "x", "--version-policy", "specific:"],
    ["serving-config", "--model", "a=b", "--output", "x", "--version-policy", "1,2"],
    ["serving-config", "--model", "a=b", "--output", "x", "--version-policy",
     "specific:1,x"],
    ["serving-config", "--output", "x"],
    ["inspect"],
])
def test_cli_rejects_bad_arguments(argv, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(argv)
  assert exit_.value.code == 2
  assert "error:" in capsys.readouterr().err


def test_serving_cli_adds_only_its_subcommands():
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser()
  serving_cli.add_subcommands(parser.add_subparsers(dest="command"))
  args = parser.parse_args(["serving-config", "--model", "m=d", "--output", "o",
                            "--version-policy", "specific:3,1"])
  assert (args.func, args.model, args.version_policy, args.batching) == (
      serving_cli.run_serving_config, [("m", "d")], [3, 1], True)
  assert parser.parse_args(["inspect", "p"]).func is serving_cli.run_inspect
  assert not hasattr(serving_cli, "main")
