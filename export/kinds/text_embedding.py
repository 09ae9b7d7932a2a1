"""The text-embedding servable: sentences in, the model's sentence embedding out.

For the most common request to a BERT server: the client sends strings and gets
one vector per string back, with no tokenizer on its side and no pooling to do.
The SavedModel holds the preprocessing model (bert_hub/preprocessing, faithful
to BERT's FullTokenizer), the encoder's variables and the embedding head, and
runs all of them in one graph.

The embedding head (`Head`) is the model's own when the checkpoint is a
sentence-transformers directory (modules.json; bert_hub/sentence_transformers.py):
its Pooling mode(s), Dense layers and Normalize, its max_seq_length as the
default seq_length, its prompts; what it cannot reproduce is refused. For other
checkpoints it is `--pooling pooler|cls|mean|max` (default pooler, TF Hub's
`default` output) and `--normalize`. The ops are bert_hub/pooling.py's.

Signatures (TF Serving), B = batch, S = seq_length, H = hidden size, D = the
embedding's size:
  serving_default   sentences string [B] -> embedding float32 [B, D]
  pairs             sentences, second_sentences string [B] each
                    -> embedding float32 [B, D] of [CLS] a [SEP] b [SEP]
                    (input_type_ids 0 then 1, trimmed round-robin to S tokens)
  token_embeddings  sentences string [B] -> sequence_output float32 [B, S, H]
                                            (zeros where input_mask is 0),
                                            input_mask int32 [B, S]
  <prompt name>     one per named prompt of the model (config_sentence_transformers
                    .json), e.g. "query": sentences string [B] -> embedding
                    [B, D] of prompt + sentence, as encode(prompt_name=...).
  A model's default_prompt_name applies to serving_default, pairs (first
  segment) and token_embeddings, as encode() applies it when given no prompt.
  serving_float32   with --serving-precision bfloat16 (every other signature
                    then computes in bfloat16, float32 outputs): serving_default
                    in float32.

Every signature computes on the request's own lengths, not on S
(bert_hub/length_buckets.py: rows ordered by length, chunks each trimmed to
their longest): a short request costs what its tokens cost, so S defaults to
what the model supports (sentence-transformers' max_seq_length, else
max_position_embeddings). Results equal the computation padded to S.

Object API (tf.saved_model.load, hub.KerasLayer, Keras 3's TFSMLayer with
call_endpoint="__call__"):
  obj(sentences)                                -> embedding float32 [B, D]
  obj.embed_pairs(sentences, second_sentences)  -> embedding float32 [B, D]
  obj.token_embeddings(sentences)               -> dict as the token_embeddings signature
  obj.vocab_file (tf.saved_model.Asset), obj.variables, obj.trainable_variables,
  obj.regularization_losses (the encoder's and the Dense layers'; no dropout)
  The preprocessing model's own API (tokenize, bert_pack_inputs) is the
  `preprocessing` export's: saving it here too would double the save time.

  export_text_embedding(checkpoint=..., output_dir=..., ...) -> pipeline.ExportResult
"""
from typing import Optional

import numpy as np

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from bert_hub import encoder as encoder_lib
from bert_hub import pooling as pooling_lib
from bert_hub import sentence_transformers as st
from bert_hub.errors import BertHubError
from export import pipeline, publish, sources, warmup
from export.kinds.encoder import no_pooler_error
from export.kinds.preprocessing import create_from_settings
from export.kinds.text_embedding_head import (  # noqa: F401  (the kind's public names)
    EMBEDDING, FIXED_SIGNATURES, PAIRS_SIGNATURE, POOLINGS, SERVING_SIGNATURE,
    TOKEN_OUTPUTS, TOKENS_SIGNATURE, Head, check_prompt_names, head_from_options,
    head_from_spec)
from export.kinds.text_embedding_graph import (  # noqa: F401  (public names)
    FLOAT32_SIGNATURE, pack, prompt_length, text_embedding_functions)
from export.saved_model import check_serving_precision
from export.verify import Check, output_check, signature_checks

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

DEFAULT_VERSION = 1


def verification_feeds(seq_length: int, signature_names) -> dict:
  """{signature: [feeds, feeds]} compared after reload: the warmup sentences
  (lengths mixed, non-ASCII, empty), then one longer than seq_length
  (truncated) beside a short one. Apart: every row of a batch this small is
  padded to its longest (bert_hub/length_buckets.py), and MiniLM computes five
  rows of S = 256 tokens in 0.49 s, the four alone in 0.025 s and the long one
  in 0.086 s (measured 2026-12-07)."""
  long = " ".join(["hello world"] * seq_length)
  requests = [(list(warmup.SENTENCES), list(warmup.SECOND_SENTENCES)),
              ([warmup.SENTENCES[0], long],
               [warmup.SECOND_SENTENCES[0], "a short second segment"])]
  out = {}
  for name in signature_names:
    out[name] = []
    for sentences, second in requests:
      feeds = dict(sentences=np.array(sentences, dtype=object))
      if name == PAIRS_SIGNATURE:
        feeds["second_sentences"] = np.array(second, dtype=object)
      out[name].append(feeds)
  return out


def warmup_requests(signature_names) -> dict:
  """Two requests (batch 1 and all of warmup.SENTENCES) for every signature."""
  def strings(values):
    return np.array([v.encode("utf-8") for v in values], dtype=object)
  out = {}
  for name in signature_names:
    if name == PAIRS_SIGNATURE:
      out[name] = [{"sentences": strings(warmup.SENTENCES[:1]),
                    "second_sentences": strings(warmup.SECOND_SENTENCES[:1])},
                   {"sentences": strings(warmup.SENTENCES),
                    "second_sentences": strings(warmup.SECOND_SENTENCES)}]
    else:
      out[name] = [{"sentences": strings(warmup.SENTENCES[:1])},
                   {"sentences": strings(warmup.SENTENCES)}]
  return out


class TextEmbeddingExport(pipeline.ExportKind):
  """The text-embedding servable of a checkpoint (see the module docstring)."""
  compared = ("every signature and __call__ vs the in-memory model on the warmup "
              "sentences, and on one longer than seq_length beside a short one")

  def __init__(self, *, source: sources.ModelSource, seq_length: int,
               normalization: str, head: Head, clock, serving_precision: str = "float32"):
    self.source, self.seq_length, self.head = source, seq_length, head
    self.normalization = normalization
    self.serving_precision = serving_precision
    check_prompt_names(head)
    self.signature_names = list(FIXED_SIGNATURES) + [n for n, _ in head.prompts] + (
        [FLOAT32_SIGNATURE] if serving_precision == "bfloat16" else [])
    self.noun = ", ".join(self.signature_names) + " signatures"
    clock("reading", f"{source.checkpoint} ({source.config.describe()})")
    self.model = encoder_lib.load_encoder(source.checkpoint, source.config,
                                          checkpoint_format=source.checkpoint_format)
    if head.pooling == ("pooler",) and not self.model.has_pooler:
      raise no_pooler_error(source.checkpoint)  # pooled_output is never made up
    self.weights_source = self.model.source
    self.source_files = list(self.model.source.files)
    clock("building", f"preprocessing for {source.vocab_path} "
          f"({source.tokenizer.describe()}, seq_length={seq_length}, "
          f"normalization={normalization}); embedding: {head.describe()} "
          f"(from {head.origin})")
    # Only its tokenizer is saved (the object docstring above): no
    # bert_pack_inputs and its six traces.
    self.preprocessor = create_from_settings(
        vocab_file=source.vocab_path, tokenizer=source.tokenizer,
        seq_length=seq_length, normalization=normalization, bert_pack_inputs=False)
    self._functions = None

  def build(self, stage, clock):
    obj, signatures, float32 = text_embedding_functions(
        self.model, self.preprocessor, seq_length=self.seq_length, head=self.head,
        serving_precision=self.serving_precision)
    # The reference is float32: bfloat16 signatures are held to BFLOAT16_TOLERANCE.
    self._functions = dict(float32, __call__=obj.__call__)
    return pipeline.Built(obj=obj, signatures=signatures)

  def reference(self):
    out = {}
    feeds = verification_feeds(self.seq_length, self.signature_names)
    for name, requests in feeds.items():
      out[name] = []
      for feed in requests:
        got = self._functions[name](**{k: tf.constant(v) for k, v in feed.items()})
        out[name].append({k: v.numpy() for k, v in got.items()})
    out["__call__"] = [{EMBEDDING: self._functions["__call__"](
        tf.constant(feed["sentences"])).numpy()} for feed in feeds[SERVING_SIGNATURE]]
    return out

  def release(self):
    del self.model
    self._functions = None

  def checks(self, loaded, reference):
    feeds = verification_feeds(self.seq_length, self.signature_names)
    bfloat16 = self.serving_precision == "bfloat16"
    checks = signature_checks(
        loaded, feeds, reference,
        lambda signature, key, got, want, name: output_check(  # input_mask: exact
            name, got, want, bfloat16=bfloat16 and signature != FLOAT32_SIGNATURE))
    checks += [Check(f"__call__ embedding (request {i})", loaded(tf.constant(feed["sentences"])),
                     reference["__call__"][i][EMBEDDING])
               for i, feed in enumerate(feeds[SERVING_SIGNATURE])]
    return checks

  def warmup_requests(self):
    return warmup_requests(self.signature_names)

  def files(self, *, model_path, verification, digests):
    from export.pages import text_embedding_page  # pylint: disable=g-import-not-at-top
    return text_embedding_page.files(
        config=self.source.config, head=self.head, seq_length=self.seq_length,
        signature_names=self.signature_names, tokenizer=self.source.tokenizer,
        normalization=self.normalization, source=self.weights_source,
        verification=verification.to_dict(), model_path=model_path,
        serving_precision=self.serving_precision, digests=digests)


def resolve_head(source: sources.ModelSource, *, pooling: Optional[str],
                 normalize: Optional[bool]):
  """(head, spec or None): the model's own head, or the options' for plain BERT."""
  spec = st.read(source.folder, hidden_size=source.config.hidden_size)
  if spec is None:
    return head_from_options(pooling=pooling, normalize=normalize), None
  if pooling is not None or normalize is not None:
    raise BertHubError(
        "--pooling/--normalize given for a sentence-transformers model",
        expected="no --pooling or --normalize (the model defines its embedding in "
        "modules.json)",
        received=" ".join(filter(None, [pooling and f"--pooling {pooling}",
                                        normalize and "--normalize"])) or "--no-normalize",
        fix=f"drop them; {spec.describe()} is exported as sentence-transformers computes it")
  return head_from_spec(spec), spec


def export_text_embedding(*, checkpoint: str, output_dir: str,
                          vocab: Optional[str] = None, config=None,
                          seq_length: Optional[int] = None, version: int = DEFAULT_VERSION,
                          lower_case: Optional[bool] = None,
                          normalization: str = "faithful",
                          checkpoint_format: Optional[str] = None,
                          pooling: Optional[str] = None, normalize: Optional[bool] = None,
                          overwrite: bool = False, serving_precision: str = "float32",
                          report: pipeline.Report = pipeline.print_report
                          ) -> pipeline.ExportResult:
  """Exports a checkpoint as a text-embedding SavedModel at DIR/<version>/.

  Beside the SavedModel, DIR/<version>/ gets its model page README.md and
  bert_hub.json (export/pages/text_embedding_page.py).

  Args:
    checkpoint: a TF1 or TF2 checkpoint prefix, or a Hugging Face model
      directory or .safetensors file; a sentence-transformers directory
      (modules.json) exports the model's own embedding.
    output_dir: DIR; the export becomes DIR/<version>/.
    vocab: the checkpoint's WordPiece vocab.txt (default: vocab.txt beside the
      checkpoint); its size must be the config's vocab_size.
    config: a config path or BertConfig (default: the config beside the checkpoint).
    seq_length: S, from 3 to max_position_embeddings (default: the
      sentence-transformers max_seq_length, else max_position_embeddings;
      requests compute on their own lengths, not on S).
    version: the model version directory, an integer >= 1 (default 1). There is
      one interface; bump the version when re-exporting for a running server.
    lower_case: the tokenizer's do_lower_case (default: from the model's files
      or its vocab, bert_hub/tokenizer_settings.py).
    normalization: "faithful" (FullTokenizer's ids) or "tf_text".
    checkpoint_format: "tf1", "tf2" or "hf" to override detection.
    pooling: pooler (default), cls, mean or max; not for sentence-transformers models.
    normalize: L2-normalize the embedding; not for sentence-transformers models.
    serving_precision: "float32", or "bfloat16": every signature computes in
      bfloat16 (float32 outputs; faster on CPUs with AVX512-BF16 or AMX), and
      serving_float32 is serving_default in float32.
    overwrite: replace an existing DIR/<version>.
    report: called with (stage, detail) as the export goes.
  """
  clock = pipeline.Clock(report)
  sources.check_model_version(version)
  check_serving_precision(serving_precision)
  if pooling is not None and pooling not in POOLINGS:
    head_from_options(pooling=pooling, normalize=normalize)  # raises
  source = sources.model_source(checkpoint=checkpoint, vocab=vocab, config=config,
                                checkpoint_format=checkpoint_format,
                                lower_case=lower_case, report=clock)
  head, spec = resolve_head(source, pooling=pooling, normalize=normalize)
  check_prompt_names(head)
  seq_length = sources.text_seq_length(
      seq_length, max_positions=source.config.max_position_embeddings,
      model_max=spec.max_seq_length if spec is not None else None, report=clock)
  publish.check_target(output_dir, version, overwrite=overwrite)
  kind = TextEmbeddingExport(source=source, seq_length=seq_length, head=head,
                             normalization=normalization, clock=clock,
                             serving_precision=serving_precision)
  return pipeline.run(kind, output_dir=output_dir, version=version,
                      overwrite=overwrite, clock=clock)
