"""The text-embedding servable's object and signatures (export/kinds/text_embedding.py
documents the servable; this module builds its graph).

Every signature packs to seq_length S (the documented shapes) and then runs
the encoder by length (bert_hub/length_buckets.py): rows ordered by length,
chunks of rows each trimmed to their own longest, results in the request's
order. The embedding is computed per chunk (pooling, Dense, Normalize on the
trimmed rows); token_embeddings' sequence_output is padded back to S with zeros
on padding.

serving_precision="bfloat16": every signature's encoder computes in bfloat16
(bert_hub.encoder.bfloat16_twin: bfloat16 copies of the projections, the rest
shared; float32 outputs), and
`serving_float32` is serving_default in float32. The object API (`__call__`,
`embed_pairs`, `token_embeddings`) stays float32.
"""
from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from bert_hub import encoder as encoder_lib
from bert_hub import length_buckets
from bert_hub import pooling as pooling_lib
from export.kinds.text_embedding_head import (
    EMBEDDING, PAIRS_SIGNATURE, SERVING_SIGNATURE, TOKENS_SIGNATURE, Head)
from export.saved_model import (  # noqa: F401 (FLOAT32_SIGNATURE re-exported)
    FLOAT32_SIGNATURE, trackable, tracked_bfloat16_twin)

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order


def _sentences_spec(name):
  return tf.TensorSpec([None], tf.string, name=name)


def pack(preprocessor, sentences, second_sentences=None, *, seq_length: int) -> dict:
  """The encoder inputs of sentences (or pairs), as the preprocessing model packs them."""
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  if second_sentences is None:
    return preprocessor(sentences)
  segments = [preprocessor.tokenize(sentences), preprocessor.tokenize(second_sentences)]
  return preprocessing.pack_inputs(segments, seq_length, preprocessor.special_tokens)


def prompt_length(preprocessor, prompt: str, *, seq_length: int) -> int:
  """The positions sentence-transformers leaves out for include_prompt=False.

  Its Transformer measures the prompt alone: the tokens of [CLS] prompt [SEP]
  truncated to max_seq_length, minus the trailing [SEP]; 0 for no prompt.
  """
  if not prompt:
    return 0
  pieces = preprocessor.tokenize(tf.constant([prompt]))  # [1, (words), (pieces)]
  count = int(tf.size(pieces.flat_values))
  return min(1 + count, seq_length - 1)


def _encoder_function(network):
  """One traced encoder graph: int32 [b, s] inputs -> float32 sequence_output
  [b, s, H], pooled_output [b, H]; called by every signature."""

  @tf.function(autograph=False,
               input_signature=[{name: tf.TensorSpec([None, None], tf.int32, name=name)
                                 for name in encoder_lib.INPUT_NAMES}])
  def run_encoder(inputs):
    out = network(inputs, training=False)
    return dict(sequence_output=tf.cast(out["sequence_output"], tf.float32),
                pooled_output=tf.cast(out["pooled_output"], tf.float32))
  return run_encoder


def text_embedding_functions(model: encoder_lib.Encoder, preprocessor, *, seq_length: int,
                             head: Head, serving_precision: str = "float32"):
  """(obj, signatures, float32 functions): the object to save, its signatures
  (concrete functions), and (for verification's reference, which runs them
  eagerly) every signature's tf.function, computed in float32.

  Args:
    model: the Encoder, weights assigned.
    preprocessor: the preprocessing model of the checkpoint's vocab, with
      default_seq_length=seq_length.
    seq_length: S, the length every signature packs to.
    head: the embedding head.
    serving_precision: "float32" or "bfloat16" (module docstring).
  """
  dense = []
  for i, layer in enumerate(head.dense):
    kernel = tf.Variable(layer.kernel, name=f"dense_{i}/kernel")
    bias = (tf.Variable(layer.bias, name=f"dense_{i}/bias")
            if layer.bias is not None else None)
    dense.append((kernel, bias, layer.activation))
  dense_variables = [v for k, b, _ in dense for v in (k, b) if v is not None]
  obj = trackable(list(model.variables) + dense_variables,
                  list(model.trainable_variables) + dense_variables)
  lengths = {text: (0 if head.include_prompt else
                    prompt_length(preprocessor, text, seq_length=seq_length))
             for text in {head.default_prompt} | {t for _, t in head.prompts}}
  hidden_size = model.config.hidden_size
  encoders = {False: _encoder_function(model)}
  if serving_precision == "bfloat16":
    encoders[True] = _encoder_function(tracked_bfloat16_twin(model, obj))

  def head_of(outputs, mask, prompt):
    """Encoder outputs of [b, s] rows -> embedding float32 [b, D]."""
    if head.pooling == ("pooler",):
      x = outputs["pooled_output"]  # [b, H]
    else:
      x = pooling_lib.pool(outputs["sequence_output"], mask, modes=head.pooling,
                           prompt_length=lengths[prompt])  # [b, len(modes) H]
    for kernel, bias, activation in dense:
      x = pooling_lib.dense(x, kernel, bias, activation=activation)  # [b, D_out]
    if head.normalize:
      x = pooling_lib.l2_normalize(x)
    return x

  def packed(sentences, second_sentences, prompt):
    if prompt:
      sentences = tf.strings.join([tf.constant(prompt), sentences])  # [B]
    inputs = pack(preprocessor, sentences, second_sentences, seq_length=seq_length)
    return {name: inputs[name] for name in encoder_lib.INPUT_NAMES}  # [B, S] each

  def embedding(sentences, second_sentences=None, *, prompt: str, bfloat16=False):
    """float32 [B, D], the encoder and head run by length."""
    run_encoder = encoders[bfloat16]

    def chunk(inputs):  # [b, s] rows -> {embedding: [b, D]}
      return {EMBEDDING: head_of(run_encoder(inputs), inputs["input_mask"], prompt)}
    return length_buckets.run_by_length(
        chunk, packed(sentences, second_sentences, prompt))[EMBEDDING]

  def tokens(sentences, *, bfloat16=False):
    """sequence_output float32 [B, S, H] (zeros on padding), input_mask int32 [B, S]."""
    run_encoder = encoders[bfloat16]
    inputs = packed(sentences, None, default)
    out = length_buckets.run_by_length(
        lambda rows: {"sequence_output": run_encoder(rows)["sequence_output"]},
        inputs, per_token=("sequence_output",))
    return dict(sequence_output=tf.ensure_shape(out["sequence_output"],
                                                [None, seq_length, hidden_size]),
                input_mask=tf.ensure_shape(inputs["input_mask"], [None, seq_length]))

  def check_pairs(sentences, second_sentences):
    return tf.debugging.assert_equal(
        tf.size(sentences), tf.size(second_sentences),
        message="pairs: sentences and second_sentences must have the same batch size")

  default = head.default_prompt
  one = [_sentences_spec("sentences")]
  two = [_sentences_spec("sentences"), _sentences_spec("second_sentences")]

  @tf.function(input_signature=one, autograph=False)
  def embed(sentences):
    return embedding(sentences, prompt=default)

  @tf.function(input_signature=two, autograph=False)
  def embed_pairs(sentences, second_sentences):
    with tf.control_dependencies([check_pairs(sentences, second_sentences)]):
      return embedding(sentences, second_sentences, prompt=default)

  @tf.function(input_signature=one, autograph=False)
  def token_embeddings(sentences):
    return tokens(sentences)

  def all_signatures(bfloat16):
    """{name: tf.function with its input_signature} of every signature at one
    precision; the float32 ones call the object API's functions (one graph,
    not two)."""
    def as_signature(function, specs):
      return tf.function(function, autograph=False, input_signature=specs)

    def pairs(sentences, second_sentences):
      if not bfloat16:
        return {EMBEDDING: embed_pairs(sentences, second_sentences)}
      with tf.control_dependencies([check_pairs(sentences, second_sentences)]):
        return {EMBEDDING: embedding(sentences, second_sentences, prompt=default,
                                     bfloat16=True)}

    def one_prompt(text):
      if text == default and not bfloat16:
        return as_signature(lambda sentences: {EMBEDDING: embed(sentences)}, one)
      return as_signature(lambda sentences: {EMBEDDING: embedding(
          sentences, prompt=text, bfloat16=bfloat16)}, one)
    out = {SERVING_SIGNATURE: one_prompt(default),
           PAIRS_SIGNATURE: as_signature(pairs, two),
           TOKENS_SIGNATURE: (token_embeddings if not bfloat16 else
                              as_signature(lambda sentences: tokens(sentences, bfloat16=True),
                                           one))}
    for name, text in head.prompts:
      out[name] = one_prompt(text)
    return out

  def concrete(functions):
    return {name: f.get_concrete_function() for name, f in functions.items()}

  float32 = all_signatures(False)
  if serving_precision == "bfloat16":
    # Of the float32 ones, only serving_float32 is saved as a signature.
    float32[FLOAT32_SIGNATURE] = float32[SERVING_SIGNATURE]
    signatures = concrete(all_signatures(True))
    signatures[FLOAT32_SIGNATURE] = float32[FLOAT32_SIGNATURE].get_concrete_function()
  else:
    signatures = concrete(float32)

  obj.vocab_file = preprocessor.vocab_file
  obj.__call__ = embed
  obj.embed_pairs = embed_pairs
  obj.token_embeddings = token_embeddings
  return obj, signatures, float32

