"""The text-classifier SavedModel object: its signatures, and the method-name rewrite.

Built by export/kinds/text_classifier.py (which documents the servable); this
module is the object alone: tf-models' ClassificationHead on the Encoder, the
head function, its tf.functions (float32, and bfloat16 ones for the signatures of
a --serving-precision bfloat16 export) and their SignatureDefs.

Every signature packs to S and then runs the encoder on the rows' own
lengths (bert_hub/length_buckets.py: rows ordered by length, chunks each
trimmed to their longest), results in the request's order: equal to the
computation padded to S, at the cost of the real tokens.

Signatures (TF Serving), B = batch, N = number of labels, S = seq_length:
  serving_default
    inputs:  sentences        string [B]
    outputs (classifier):
             probabilities    float32 [B, N]  softmax or sigmoid of the logits
             label            string [B]      the name of the most probable label
                                              (multi-label: the single most
                                              probable one; read `probabilities`
                                              for every label over a threshold)
             logits           float32 [B, N]  the head's raw outputs
    outputs (regression):
             score            float32 [B]     the head's one output
             logits           float32 [B, 1]
  pairs
    inputs:  sentences, second_sentences   string [B] each
    outputs: as serving_default, for [CLS] sentence [SEP] second_sentence [SEP]
             (input_type_ids 0 then 1), trimmed round-robin to S tokens: NLI
             premise/hypothesis, reranker query/passage.
  classification   (classifiers; method_name tensorflow/serving/classify: the
                   `:classify` REST API and the Classify gRPC API)
    inputs:  inputs           string [B]  serialized tf.Examples with a bytes
                                          feature `sentences` (required) and,
                                          for a pair, `second_sentences`
    outputs: classes          string [B, N]   the label names, in head order
             scores           float32 [B, N]  probabilities, as serving_default
  regression       (regression heads; method_name tensorflow/serving/regress)
    inputs:  inputs           as for classification
    outputs: outputs          float32 [B]     the score
  serving_float32  only with serving_precision="bfloat16" (every other signature
                   then computes the encoder in bfloat16): serving_default in float32
  How an Example says it is a pair: it has a `second_sentences` feature (one
  value, possibly empty). Examples without it are single sentences; one batch
  may mix both. A model trained on pairs should get pairs, one trained on
  single sentences single sentences: the SavedModel cannot tell which it was.

tf.saved_model.save writes method_name tensorflow/serving/predict for every
signature (tensorflow/tensorflow#38081, tensorflow/serving#1512, #1521), so
`set_example_method_names` rewrites the Example signature's method_name in
saved_model.pb in the staging directory (ExportKind.after_save), before the
export is reloaded and verified, and writes the fingerprint anew.

Object API (tf.saved_model.load, hub.KerasLayer):
  obj(sentences)                        -> dict as serving_default
  obj.classify_pairs(sentences, second_sentences) -> dict as pairs
  obj.classify_examples(inputs)         -> dict as the Example signature
  obj.get_labels()                      -> string [N], the label names
  obj.labels_file                       tf.saved_model.Asset, labels.txt, one
                                        name per line in head order
  obj.preprocessor, obj.vocab_file      the preprocessing model, its vocab
  obj.variables, obj.trainable_variables, obj.regularization_losses
"""
import os

import numpy as np

from bert_hub import _keras  # noqa: F401  (legacy Keras before tensorflow loads)
from bert_hub import encoder as encoder_lib
from bert_hub import length_buckets
from bert_hub._tf_private import write_fingerprint
from bert_hub.checkpoints import heads, names
from export.saved_model import FLOAT32_SIGNATURE, trackable, tracked_bfloat16_twin

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

PAIRS_SIGNATURE = "pairs"
CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
EXAMPLE_FEATURES = ("sentences", "second_sentences")
CLASSIFIER_OUTPUTS = ("probabilities", "label", "logits")
REGRESSION_OUTPUTS = ("score", "logits")


def _sentences_spec(name):
  return tf.TensorSpec([None], tf.string, name=name)


# ---------------------------------------------------------------- the model


def build_head(config, head: heads.ClassifierHead):
  """tf-models' ClassificationHead, weights assigned.

  inner_dim 0: over the pooled output [B, H]; inner_dim H (TF2 BertClassifier
  with use_encoder_pooler=False): over the sequence output [B, S, H], dense +
  tanh on the [CLS] token first.
  """
  from official.nlp.modeling import layers  # pylint: disable=g-import-not-at-top
  layer = layers.ClassificationHead(inner_dim=head.inner_dim, num_classes=head.num_labels,
                                    dropout_rate=0.0,
                                    name=names.CLASSIFIER_HEAD_SCOPE)
  layer(tf.zeros([1, 1, config.hidden_size] if head.inner_dim else [1, config.hidden_size]))
  kernel, bias = names.CLASSIFIER_HEAD
  layer.out_proj.kernel.assign(head.arrays[kernel.canonical])
  layer.out_proj.bias.assign(head.arrays[bias.canonical])
  if head.inner_dim:
    layer.dense.kernel.assign(head.arrays[heads.TF2_DENSE[0]])
    layer.dense.bias.assign(head.arrays[heads.TF2_DENSE[1]])
  return layer


def head_outputs(logits, *, function: str, labels: tuple) -> dict:
  """serving_default's outputs from logits float32 [B, N] (module docstring).

  classifiers: probabilities float32 [B, N] (softmax or sigmoid), label string
  [B] (the name at argmax of the logits), logits; regression (IDENTITY, N = 1):
  score float32 [B], logits float32 [B, 1].
  """
  if function == heads.IDENTITY:
    return {"score": logits[:, 0], "logits": logits}
  probabilities = (tf.nn.softmax(logits, axis=-1) if function == heads.SOFTMAX
                   else tf.math.sigmoid(logits))
  label = tf.gather(tf.constant(labels), tf.argmax(logits, axis=-1, output_type=tf.int32))
  return {"probabilities": probabilities, "label": label, "logits": logits}


def parse_examples(serialized):
  """Serialized tf.Examples [B] -> (sentences [B], second_sentences [B], is_pair [B]).

  `sentences`: a required bytes feature with one value; `second_sentences`:
  optional, at most one value; absent -> is_pair False (second is "").
  """
  features = tf.io.parse_example(serialized, {
      "sentences": tf.io.FixedLenFeature([], tf.string),
      "second_sentences": tf.io.VarLenFeature(tf.string)})
  second = tf.RaggedTensor.from_sparse(features["second_sentences"])
  count = second.row_lengths()
  check = tf.debugging.assert_less_equal(
      count, tf.constant(1, count.dtype),
      message="second_sentences: at most one value per tf.Example")
  with tf.control_dependencies([check]):
    first_second = second[:, :1].to_tensor(default_value="", shape=[None, 1])[:, 0]
  return features["sentences"], first_second, count > 0


def classifier_object(model: encoder_lib.Encoder, head_layer, preprocessor, *,
                      seq_length: int, labels: tuple, function: str,
                      labels_file: str, serving_precision: str = "float32"):
  """The object to save, and its signatures (see the module docstring).

  Args:
    model: the Encoder, weights assigned.
    head_layer: build_head()'s layer.
    preprocessor: the preprocessing model of the checkpoint's vocab, with
      default_seq_length=seq_length.
    seq_length: S.
    labels: the N label names.
    function: heads.SOFTMAX, SIGMOID or IDENTITY.
    labels_file: a labels.txt to become the labels_file Asset.
    serving_precision: "bfloat16": the encoder computes in bfloat16 (the
      bfloat16 twin: bfloat16 copies of the projections, the other variables
      shared) in every signature but `serving_float32` (serving_default in
      float32); the head and outputs stay float32, and so does the object API.

  Returns:
    (obj, signatures) for tf.saved_model.save(obj, path, signatures=signatures).
  """
  from bert_hub import preprocessing  # pylint: disable=g-import-not-at-top
  regression = function == heads.IDENTITY
  int_spec = tf.TensorSpec([None, seq_length], tf.int32)
  def functions(network):
    """(classify, classify_pairs, classify_examples) with the encoder `network`."""

    def logits_of(inputs):  # int32 [b, s] rows -> {logits: float32 [b, N]}
      out = network(inputs, training=False)
      features = out["sequence_output" if head_layer.inner_dim else "pooled_output"]
      return {"logits": head_layer(tf.cast(features, tf.float32))}

    @tf.function(autograph=False,
                 input_signature=[{name: int_spec for name in encoder_lib.INPUT_NAMES}])
    def classify_packed(inputs):
      # The encoder runs on the rows' own lengths, not on S (bert_hub/length_buckets).
      logits = length_buckets.run_by_length(logits_of, inputs)["logits"]  # [B, N]
      return head_outputs(logits, function=function, labels=labels)

    @tf.function(autograph=False, input_signature=[_sentences_spec("sentences")])
    def classify(sentences):
      return classify_packed(preprocessor(sentences))

    @tf.function(autograph=False, input_signature=[_sentences_spec("sentences"),
                                  _sentences_spec("second_sentences")])
    def classify_pairs(sentences, second_sentences):
      check = tf.debugging.assert_equal(
          tf.size(sentences), tf.size(second_sentences),
          message="pairs: sentences and second_sentences must have the same batch size")
      with tf.control_dependencies([check]):
        return classify_packed(pack_pairs(sentences, second_sentences))

    @tf.function(autograph=False, input_signature=[_sentences_spec("inputs")])
    def classify_examples(inputs):
      sentences, second, is_pair = parse_examples(inputs)
      first = preprocessor.tokenize(sentences)
      single = pack(first)  # as preprocessor(sentences)
      pair = pack(first, preprocessor.tokenize(second))
      packed = {k: tf.where(is_pair[:, tf.newaxis], pair[k], single[k])
                for k in encoder_lib.INPUT_NAMES}
      out = classify_packed(packed)
      if regression:
        return {"outputs": out["score"]}
      scores = out["probabilities"]
      classes = tf.broadcast_to(tf.constant(labels)[tf.newaxis, :], tf.shape(scores))
      return {"classes": classes, "scores": scores}
    return classify, classify_pairs, classify_examples

  def pack(*segments):  # token RaggedTensors [B, (W), (P)] -> encoder inputs
    return preprocessing.pack_inputs(list(segments), seq_length,
                                     preprocessor.special_tokens)

  def pack_pairs(sentences, second_sentences):
    return pack(preprocessor.tokenize(sentences), preprocessor.tokenize(second_sentences))

  @tf.function(autograph=False, input_signature=[])
  def get_labels():
    return tf.constant(labels)

  classify, classify_pairs, classify_examples = functions(model)  # float32
  served = (classify, classify_pairs, classify_examples)
  head_vars = list(head_layer.variables)
  obj = trackable(list(model.variables) + head_vars,
                  list(model.trainable_variables) + list(head_layer.trainable_variables))
  if serving_precision == "bfloat16":
    served = functions(tracked_bfloat16_twin(model, obj))
  obj.preprocessor = preprocessor
  obj.vocab_file = preprocessor.vocab_file
  obj.labels_file = tf.saved_model.Asset(labels_file)
  obj.__call__ = classify
  obj.classify_pairs = classify_pairs
  obj.classify_examples = classify_examples
  obj.get_labels = get_labels
  signatures = {"serving_default": served[0].get_concrete_function(),
                PAIRS_SIGNATURE: served[1].get_concrete_function(),
                example_signature(function): served[2].get_concrete_function()}
  if serving_precision == "bfloat16":
    signatures[FLOAT32_SIGNATURE] = classify.get_concrete_function()
  return obj, signatures


def example_signature(function: str) -> str:
  """The name of the tf.Example signature of a head with this function."""
  return REGRESS_SIGNATURE if function == heads.IDENTITY else CLASSIFY_SIGNATURE


def example_method(function: str) -> str:
  """Its method_name: tensorflow/serving/regress or tensorflow/serving/classify."""
  return REGRESS_METHOD if function == heads.IDENTITY else CLASSIFY_METHOD


# ------------------------------------------------- the method-name rewrite


def set_example_method_names(saved_model_dir: str, method_names: dict) -> None:
  """Sets SignatureDef method names in a written SavedModel's saved_model.pb.

  tf.saved_model.save gives every signature method_name
  "tensorflow/serving/predict" and has no option for another
  (tensorflow/tensorflow#38081); TF Serving's Classify and Regress APIs refuse
  a signature without theirs ("Expected classification signature method_name
  to be tensorflow/serving/classify"). This changes only that string in the
  serving MetaGraph and writes fingerprint.pb anew (its checksum covers
  saved_model.pb). tf.saved_model.load ignores method names.

  Args:
    saved_model_dir: the SavedModel directory (the staging directory).
    method_names: {signature name: method name}.
  """
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(saved_model_dir, "saved_model.pb")
  saved_model = saved_model_pb2.SavedModel()
  with open(path, "rb") as f:
    saved_model.ParseFromString(f.read())
  for meta_graph in saved_model.meta_graphs:
    for name, method in method_names.items():
      if name not in meta_graph.signature_def:
        raise RuntimeError(f"internal error: no signature {name!r} to rewrite")
      meta_graph.signature_def[name].method_name = method
  with open(path, "wb") as f:
    f.write(saved_model.SerializeToString())
  if os.path.exists(os.path.join(saved_model_dir, "fingerprint.pb")):
    write_fingerprint(saved_model_dir)


def signature_method_names(saved_model_dir: str) -> dict:
  """{signature name: method_name} of the serving MetaGraph (parsed from the proto)."""
  from export.serving import files  # pylint: disable=g-import-not-at-top
  meta_graph = files.serving_meta_graph(saved_model_dir)
  return {name: sig.method_name for name, sig in meta_graph.signature_def.items()
          if not name.startswith("__")}

# ---------------------------------------------------------------- requests


def example_bytes(sentences, second_sentences=None) -> np.ndarray:
  """Serialized tf.Examples (object array [B]) of sentences (and pairs).

  second_sentences: None, or one entry per sentence: a string (a pair) or
  None (that Example has no second_sentences: a single sentence).
  """
  out = []
  for i, sentence in enumerate(sentences):
    feature = {"sentences": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[sentence.encode("utf-8")]))}
    second = None if second_sentences is None else second_sentences[i]
    if second is not None:
      feature["second_sentences"] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[second.encode("utf-8")]))
    out.append(tf.train.Example(features=tf.train.Features(feature=feature))
               .SerializeToString())
  return np.array(out, dtype=object)
