"""What each interface version of the encoder exposes: the changelog, in code.

The changelog of the TF Hub BERT encoders (shared/seeds/000_*.txt):

  Version 3  Dict (not list) inputs and outputs; a companion preprocessing model;
             still provides the legacy `.vocab_file` and `.do_lower_case`.
  Version 2  Fixes missing dropout (v1 did not apply dropout when re-training);
             improves shape propagation (a statically known max_seq_length gives
             `sequence_output` a known dimension 1).
  Version 1  Initial release (list API: [input_word_ids, input_mask, segment_ids]
             -> [pooled_output, sequence_output]; shared/seeds/002_*.txt).

Each Version also lists its known defects as released (version 1: no dropout
when re-training, no static seq_length); model pages only render these.

Every version carries `vocab_file` (a tf.saved_model.Asset) and `do_lower_case`
(a non-trainable tf.Variable). All versions of one checkpoint compute identical
numbers in inference mode; they differ only in interface and training behaviour.
"""
import dataclasses
from typing import Tuple

from bert_hub.errors import BertHubError


@dataclasses.dataclass(frozen=True)
class Version:
  number: int
  dict_api: bool  # dict inputs/outputs (v3) or lists (v1, v2)
  dropout_when_training: bool  # False reproduces v1's defect
  static_seq_length: bool  # a known input seq_length reaches sequence_output
  input_names: Tuple[str, ...]  # serving signature input names, in list order
  changes: Tuple[str, ...]  # the changelog lines of this version
  defects: Tuple[str, ...] = ()  # known defects of this version, as released

  @property
  def output_names(self) -> Tuple[str, ...]:
    """The outputs of `__call__` (dict keys, or the list's order)."""
    if self.dict_api:
      return ("pooled_output", "sequence_output", "encoder_outputs", "default")
    return self.list_output_names

  @property
  def list_output_names(self) -> Tuple[str, ...]:
    return ("pooled_output", "sequence_output")


_LIST_INPUTS = ("input_word_ids", "input_mask", "segment_ids")
_DICT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")

VERSIONS = {
    1: Version(1, dict_api=False, dropout_when_training=False,
               static_seq_length=False, input_names=_LIST_INPUTS,
               changes=("Initial release.",),
               defects=(
                   "Dropout is not applied when re-training the SavedModel "
                   "(`training=True` computes the same as inference), possibly "
                   "resulting in a loss of quality. Fixed in version 2.",
                   "A statically known `max_seq_length` of the inputs does not "
                   "reach `sequence_output` (its dimension 1 is unknown). "
                   "Fixed in version 2.")),
    2: Version(2, dict_api=False, dropout_when_training=True,
               static_seq_length=True, input_names=_LIST_INPUTS,
               changes=(
                   "Fixes missing dropout. Previously, dropout was not applied when "
                   "re-training the SavedModel, possibly resulting in a loss of quality.",
                   "Improves shape propagation. Applying the model to inputs of "
                   "statically known `max_seq_length` now produces `sequence_output` "
                   "with known dimension 1.")),
    3: Version(3, dict_api=True, dropout_when_training=True,
               static_seq_length=True, input_names=_DICT_INPUTS,
               changes=(
                   "Uses dicts (not lists) for inputs and outputs.",
                   "Comes with a companion model for preprocessing of plain text.",
                   "For legacy users, this version still provides the now-obsolete "
                   "`.vocab_file` and `.do_lower_case` attributes on "
                   "`bert_layer.resolved_object`.")),
}
LATEST = 3


def get(number) -> Version:
  if number not in VERSIONS:
    raise BertHubError(
        "unknown interface version", expected="1, 2 or 3",
        received=repr(number), fix="pass --version 1, 2 or 3 (3 is the current API)")
  return VERSIONS[number]
