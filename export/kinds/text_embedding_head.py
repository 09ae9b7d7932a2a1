"""The text-embedding servable's head: what turns the encoder's outputs into the embedding.

  Head                      pooling, include_prompt, Dense layers, normalize, prompts
  head_from_spec(spec)      a sentence-transformers model's own (bert_hub/sentence_transformers.py)
  head_from_options(pooling=, normalize=)   --pooling / --normalize for other checkpoints
  check_prompt_names(head)  each prompt becomes a signature: refuses names that cannot be
The signature names are here too; export/kinds/text_embedding.py builds the graph.
"""
import dataclasses
from typing import Optional, Tuple

from bert_hub import sentence_transformers as st
from bert_hub.errors import BertHubError

SERVING_SIGNATURE = "serving_default"
PAIRS_SIGNATURE = "pairs"
TOKENS_SIGNATURE = "token_embeddings"
FIXED_SIGNATURES = (SERVING_SIGNATURE, PAIRS_SIGNATURE, TOKENS_SIGNATURE)
EMBEDDING = "embedding"
TOKEN_OUTPUTS = ("sequence_output", "input_mask")
# --pooling for checkpoints that do not define their own (pooler: the encoder's
# pooled_output, TF Hub's `default`).
POOLINGS = ("pooler", "cls", "mean", "max")


@dataclasses.dataclass(frozen=True)
class Head:
  """What turns the encoder's outputs into the embedding, and the prompts.

  pooling: ("pooler",), or sentence-transformers pooling modes (concatenated).
  include_prompt: False: the prompt's positions are left out of the pooling.
  dense: bert_hub.sentence_transformers.DenseLayer values, in order.
  normalize: L2-normalize the result.
  prompts: (name, text) pairs; one signature each.
  default_prompt_name: the prompt applied when none is named, or None.
  origin: where the head came from, in words (for the log and the page).
  """
  pooling: Tuple[str, ...]
  origin: str
  include_prompt: bool = True
  dense: tuple = ()
  normalize: bool = False
  prompts: Tuple[Tuple[str, str], ...] = ()
  default_prompt_name: Optional[str] = None

  @property
  def default_prompt(self) -> str:
    return dict(self.prompts).get(self.default_prompt_name, "") if self.default_prompt_name else ""

  def dimension(self, hidden_size: int) -> int:
    """D, the embedding's size."""
    if self.dense:
      return self.dense[-1].out_features
    return hidden_size * (1 if self.pooling == ("pooler",) else len(self.pooling))

  def describe(self) -> str:
    parts = ["pooled_output (the encoder's pooler)" if self.pooling == ("pooler",)
             else "pooling " + " + ".join(self.pooling) +
             ("" if self.include_prompt else " (prompt tokens excluded)")]
    parts += [d.describe() for d in self.dense]
    if self.normalize:
      parts.append("L2 normalization")
    return ", ".join(parts)


def head_from_spec(spec: st.SentenceTransformerSpec) -> Head:
  return Head(pooling=spec.pooling_modes, include_prompt=spec.include_prompt,
              dense=spec.dense, normalize=spec.normalize, prompts=spec.prompts,
              default_prompt_name=spec.default_prompt_name,
              origin=f"the sentence-transformers modules of {spec.folder}: "
              + " -> ".join(spec.modules))


def head_from_options(*, pooling: Optional[str], normalize: Optional[bool]) -> Head:
  pooling = pooling or POOLINGS[0]
  if pooling not in POOLINGS:
    raise BertHubError("unknown --pooling", expected=" or ".join(POOLINGS),
                       received=repr(pooling), fix="pass --pooling pooler (the default), "
                       "cls, mean or max")
  return Head(pooling=(pooling,), normalize=bool(normalize),
              origin=f"--pooling {pooling}" + (" --normalize" if normalize else ""))


def check_prompt_names(head: Head) -> None:
  """Each prompt becomes a signature: its name must be one, and not a fixed one."""
  for name, _ in head.prompts:
    if name in FIXED_SIGNATURES or not st.valid_signature_name(name):
      raise BertHubError(
          f"prompt name {name!r} cannot be a signature name",
          expected="a name of letters, digits, '_', '.' or '-' other than "
          + ", ".join(FIXED_SIGNATURES),
          received=repr(name),
          fix="rename the prompt in config_sentence_transformers.json (clients "
          "then send \"signature_name\": the new name)")
