"""The export library: what `bert-hub-export` does, callable and tested.

  export_encoder(checkpoint=..., output_dir=..., ...)        -> ExportResult
  export_preprocessing(vocab=... | checkpoint=..., output_dir=..., ...) -> ExportResult
  export_text_embedding(checkpoint=..., output_dir=..., ...) -> ExportResult
  export_text_classifier(checkpoint=..., output_dir=..., labels=..., ...) -> ExportResult

Each is one export kind (export/kinds/) run through the one orchestration
(export/pipeline.py): resolve inputs (export/sources.py) -> build -> stage ->
save -> verify -> warmup -> page -> publish. `DIR/<version>/` appears complete
or not at all, and an existing version is never replaced unless asked.
`report(stage, detail)` is called as the export goes (print_report, quiet_report).
"""
from bert_hub import _keras  # noqa: F401
from export.kinds.encoder import export_encoder
from export.kinds.preprocessing import export_preprocessing
from export.kinds.text_classifier import export_text_classifier
from export.kinds.text_embedding import export_text_embedding
from export.pipeline import ExportResult, Report, print_report, quiet_report

__all__ = ["export_encoder", "export_preprocessing", "export_text_embedding",
           "export_text_classifier",
           "ExportResult", "Report", "print_report", "quiet_report"]
