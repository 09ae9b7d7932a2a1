"""export/demo.py, the README's main job: export MiniLM, then use it.

The oracle is sentence-transformers (PyTorch) on the same pairs: both tables the
demo prints must agree with it, and a second run reuses the exports. The first
run is the `minilm_demo` fixture (tests/conftest.py), whose exports other test
modules reuse as the real-weights models.
"""
import re

import pytest

from export import demo


def _largest_differences(out: str) -> list:
  return [float(x) for x in re.findall(
      r"^largest difference from sentence-transformers: (\S+)$", out, flags=re.M)]


@pytest.mark.slow  # three MiniLM exports (shared with other modules)
def test_demo_agrees_with_sentence_transformers_and_reuses_its_exports(minilm_demo, capsys):
  out = minilm_demo["printed"]
  differences = _largest_differences(out)
  assert len(differences) == 2, out  # the hub.KerasLayer pipeline and the servable
  assert all(d < 1e-5 for d in differences), out
  for pair in demo.PAIRS:
    assert out.count(repr(pair[0])) == 2
  output = minilm_demo["output"]
  assert {p.name for p in output.iterdir()} == {
      "minilm_l6_encoder", "minilm_l6_preprocess", "minilm_l6_embed"}
  assert out.count("[reuse]") == 0, out
  assert demo.main(["--output", str(output)]) == 0
  again = capsys.readouterr().out
  assert again.count("[reuse]") == 3, again
  assert _largest_differences(again) == differences
