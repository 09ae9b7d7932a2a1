"""What is written beside a SavedModel for people: model pages and bert_hub.json.

  naming.py        facts the checkpoint cannot tell (--publisher, --name, ...),
                   their checks, and the TF Hub name
  metadata.py      bert_hub.json's shared keys, checksums, package versions
  encoder_page.py  the encoder's page in the form of the TF Hub BERT pages
"""
