"""Verification: a reloaded export must compute what the in-memory model computes.

Every export kind hands the pipeline a list of `Check`s (an output of the
reloaded SavedModel beside the same output of the in-memory model, and how
close they must be); `check_all` measures them all and raises one
ExportVerificationError listing every check over its bound.

Measures:
  scaled    max|got - want| / max(1, max|want|): float32 outputs; the bound is
            VERIFY_TOLERANCE (float32 rounding grows with the values' size).
  relative  ||got - want|| / ||want||: outputs computed in bfloat16, bound
            BFLOAT16_TOLERANCE.
  exact     ids, masks, strings: equal, or it fails.
"""
import dataclasses
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from bert_hub.errors import ExportVerificationError

# Reloading a SavedModel changes nothing but graph rewrites (op fusion, constant
# folding), which move float32 outputs by about 1e-6 per unit of magnitude
# (MiniLM: 5.7e-6); a real mistake (a missing weight, gelu erf vs tanh) moves
# them by 1e-3 or more. 5e-5 is Hugging Face pt_to_tf's bound, between the two.
VERIFY_TOLERANCE = 5e-5
# bfloat16 keeps 8 significant bits: bfloat16 outputs differ from float32 by
# about 1% in relative_difference() where oneDNN's bfloat16 kernels accumulate
# in float32 (AVX512-BF16/AMX: BERT-base 0.9%, all-MiniLM-L6-v2 1.2%), single
# values by up to 11% of the output's largest. Without them (AVX2 only) every op
# rounds: all-MiniLM-L6-v2 2.4% on the warmup sentences and 7.2% on one of 256
# tokens (token_embeddings; 5.0% its embedding; measured 2026-12-07), where
# 5% failed the export. The bound checks the weights and wiring of the bfloat16
# copies: adjacent layers' outputs differ by about 40%, a wrong weight by about
# 100%; subtler mistakes show in the float32 signatures (serving_float32, the
# object API), held to VERIFY_TOLERANCE, and the twin's own test
# (tests/test_encoder.py) holds it within 5% of float32 on a tiny model.
BFLOAT16_TOLERANCE = 0.2

MEASURES = ("scaled", "relative", "exact")


def scaled_difference(got, want) -> float:
  """max|got - want| / max(1, max|want|): the error relative to the output's scale."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  if got.size == 0 and want.size == 0:
    return 0.0
  return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def relative_difference(got, want) -> float:
  """||got - want|| / ||want|| (Euclidean norms over all values)."""
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  norm = float(np.linalg.norm(want))
  return float(np.linalg.norm(got - want)) / norm if norm else float(np.max(np.abs(got)))


@dataclasses.dataclass
class Check:
  """One output of the reloaded export against the in-memory model's."""
  name: str  # e.g. "serving_default pooled_output"
  got: Any  # array-like (tf.Tensor or numpy)
  want: Any
  measure: str = "scaled"  # one of MEASURES
  tolerance: float = VERIFY_TOLERANCE

  def difference(self) -> float:
    got = np.asarray(self.got)
    want = np.asarray(self.want)
    if self.measure == "exact":
      return 0.0 if got.shape == want.shape and np.array_equal(got, want) else float("inf")
    if got.shape != want.shape:
      return float("inf")
    if self.measure == "relative":
      return relative_difference(got, want)
    return scaled_difference(got, want)


def output_check(name: str, got, want, *, bfloat16: bool = False) -> Check:
  """How an output is compared: ids, masks and strings exact; float outputs
  scaled within VERIFY_TOLERANCE, or, computed in bfloat16, relative within
  BFLOAT16_TOLERANCE (named "... (bfloat16)")."""
  if not np.issubdtype(np.asarray(want).dtype, np.floating):
    return Check(name, got, want, measure="exact")
  if bfloat16:
    return Check(name + " (bfloat16)", got, want, measure="relative",
                 tolerance=BFLOAT16_TOLERANCE)
  return Check(name, got, want)


@dataclasses.dataclass
class Verification:
  """What check_all measured, for the report, the page and bert_hub.json."""
  max_diff: float  # the largest difference of the float32 ("scaled") checks
  tolerance: float
  compared: str  # what was compared, in words

  def to_dict(self) -> dict:
    return dict(passed=True, max_diff=self.max_diff, tolerance=self.tolerance,
                compared=self.compared)


def check_all(path: str, checks: Sequence[Check], *, compared: str) -> Verification:
  """Measures every check; raises ExportVerificationError listing all failures."""
  failed: List[str] = []
  scaled = []
  for check in checks:
    diff = check.difference()
    if check.measure == "scaled":
      scaled.append(diff)
    if not diff <= check.tolerance:
      bound = "not equal" if check.measure == "exact" else (
          f"{diff:.3g} > {check.tolerance:g} ({check.measure})")
      failed.append(f"{check.name}: {bound}")
  if failed:
    raise ExportVerificationError(
        f"export verification failed: reloaded {path} differs from the in-memory "
        f"model: " + ", ".join(failed))
  return Verification(max_diff=max(scaled, default=0.0), tolerance=VERIFY_TOLERANCE,
                      compared=compared)


def signature_checks(loaded, requests: dict, reference: dict,
                     check: Callable[[str, str, Any, Any, str], Optional[Check]]
                     ) -> List[Check]:
  """Every request of every signature, run on the reloaded `loaded`, against the
  reference's outputs for it.

  requests: {signature: [feeds]}; reference: {signature: [outputs]} in the same
  order. Output names that differ are one exact check; otherwise
  `check(signature, key, got, want, name)` makes each output's Check (None: not
  compared), `name` being "<signature> <key> (request <i>)".
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  checks = []
  for signature, batch in requests.items():
    for i, feeds in enumerate(batch):
      got = loaded.signatures[signature](**{k: tf.constant(v) for k, v in feeds.items()})
      want = reference[signature][i]
      if sorted(got) != sorted(want):
        checks.append(Check(f"{signature} output names", sorted(got), sorted(want),
                            measure="exact"))
        continue
      made = (check(signature, key, got[key], want[key], f"{signature} {key} (request {i})")
              for key in want)
      checks += [c for c in made if c is not None]
  return checks
