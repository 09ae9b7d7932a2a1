"""The preprocessing model: text in, BERT encoder inputs out, all in-graph.

`create_preprocessing()` builds a `tf.Module` that implements the TF Hub
Preprocessor API for BERT (https://www.tensorflow.org/hub/common_saved_model_apis/text),
like tf-models' `official/nlp/tools/export_tfhub_lib.py::create_preprocessing`,
but tokenizing *exactly* like the original BERT `FullTokenizer` that every
BERT checkpoint was trained with, or like Hugging Face's BertTokenizer with
its strip_accents / tokenize_chinese_chars settings. Save it with

  preprocessor = create_preprocessing(vocab_file="vocab.txt", lower_case=True)
  tf.saved_model.save(preprocessor, path,
                      signatures=preprocessing_signatures(preprocessor))

  create_preprocessing(vocab_file=..., lower_case=True, strip_accents=False,
                       tokenize_chinese_chars=False)   # Hugging Face settings

Shape legend: B = batch size, W = words, P = word pieces, T = seq_length.

The saved object provides:

  preprocessor(sentences)
      sentences: tf.string [B], UTF-8 (anything else is handled, see below).
      Returns a dict, each value int32 [B, default_seq_length]:
        input_word_ids: [CLS] pieces [SEP] then [PAD] ids.
        input_mask:     1 on the positions of input_word_ids before padding, else 0.
        input_type_ids: 0 everywhere (one segment).

  preprocessor.tokenize(sentences)
      sentences: tf.string [B].
      Returns int32 RaggedTensor [B, (W), (P)]: tokens[i, j, k] is the id of the
      k-th word piece of the j-th word of sentences[i].
  preprocessor.tokenize.get_special_tokens_dict()
      Returns a dict of int32 scalars: vocab_size (one past the largest id),
      start_of_sequence_id ([CLS]), end_of_segment_id ([SEP]),
      padding_id ([PAD]), mask_id ([MASK]).

  preprocessor.tokenize_with_offsets(sentences)   (if tokenize_with_offsets=True)
      Returns (tokens, start_offsets, limit_offsets): tokens as above; the
      offsets are int64 RaggedTensors [B, (W), (P)] of the same shape, in BYTES
      of the ORIGINAL input: sentences[i][start:limit] is the text the piece
      came from. Has the same .get_special_tokens_dict().

  preprocessor.bert_pack_inputs(segments, seq_length=default_seq_length)
      (unless created with bert_pack_inputs=False)
      segments: a list of 1 to MAX_SEGMENTS int32 RaggedTensors, each
        [B, (tokens)] or [B, (W), (P)] (the output of .tokenize).
      seq_length: optional int32 scalar T (a Python int works too).
      After saving, these input structures are traced: 1 to MAX_SEGMENTS (3)
      segments, all of ragged rank 1 or all of ragged rank 2.
      Returns a dict, each value int32 [B, T]:
        input_word_ids: [CLS] seg_0 [SEP] seg_1 [SEP] ... then [PAD]s.
        input_mask:     1 before the padding, 0 on it.
        input_type_ids: j on the tokens of seg_j and on the [SEP] after it
                        (0 on [CLS]), 0 on the padding.
      Segments too long for T - (len(segments) + 1) tokens are trimmed
      round-robin: one token at a time to each segment that still has some,
      exactly like tf-models' `BertPackInputs` (`text.RoundRobinTrimmer`), but
      with core TensorFlow ops only.

  preprocessor.vocab_file
      tf.saved_model.Asset: the vocabulary as one token per line with "\n"
      endings (bert_hub.vocab.Vocab.write_normalized), in the SavedModel's
      assets/, so the model needs nothing outside its directory.

  The SavedModel's `serving_default` signature (from `preprocessing_signatures`)
  takes `sentences` (tf.string [None]) and returns input_word_ids, input_mask,
  input_type_ids (int32 [None, default_seq_length]).

  preprocessor.special_tokens   (in memory only: not saved)
      The SpecialTokens (Python ints) behind get_special_tokens_dict(), for
      code that packs with pack_inputs(segments, seq_length, special) itself.

normalization="faithful" (the default) reproduces FullTokenizer(vocab_file,
do_lower_case=lower_case) of google-research/bert, id for id, extended by
Hugging Face BertTokenizer's strip_accents and tokenize_chinese_chars
(defaults: FullTokenizer's behaviour):
  1. Decoding: bytes that are not valid UTF-8 are dropped, as by
     `bytes.decode("utf-8", "ignore")`; every valid character after them is kept.
  2. Cleaning: U+0000, U+FFFD and characters of category Cc or Cf (other than
     tab, newline, carriage return) are dropped, e.g. U+00AD soft hyphen and
     U+200B zero width space; these do not split words ("a\\u200bb" is "ab").
     Whitespace (space, \\t, \\n, \\r, category Zs such as U+00A0 and U+3000,
     and U+2028/U+2029 which Python's str.split() also splits on) separates words.
  3. If tokenize_chinese_chars (the default): CJK ideographs (BERT's ranges,
     U+4E00-9FFF, 3400-4DBF, F900-FAFF, 20000-2A6DF, 2A700-2CEAF,
     2F800-2FA1F) are words of their own. If False, they stay inside the
     words that whitespace and punctuation make ("我爱北京。" is "我爱北京", "。").
  4. If lower_case: Python's str.lower() per whitespace-separated word (full
     case mapping, e.g. "İ" -> "i̇", and the final-sigma rule "ΟΔΟΣ" ->
     "οδος"). Then, if strip_accents (None means: if lower_case), NFD and
     characters of category Mn are dropped ("Café" -> "cafe"):
       lower_case  strip_accents     "Café ΟΔΟΣ"
       True        None or True      "cafe οδος"   (FullTokenizer, uncased)
       True        False             "café οδος"   (no NFD at all: "é" stays
                                                    precomposed, "e\\u0301"
                                                    decomposed)
       False       True              "Cafe ΟΔΟΣ"
       False       None or False     "Café ΟΔΟΣ"   (FullTokenizer, cased)
     These are the steps of transformers' Python BertTokenizer
     (BasicTokenizer.tokenize: `if do_lower_case: lower(); if strip_accents
     is not False: strip`, `elif strip_accents: strip`; on its NFC see
     below). No NFKC: "…", "ß", "ﬁ" and full-width letters stay what they are.
  5. Punctuation (ASCII non-alphanumerics 33-47, 58-64, 91-96, 123-126 and
     every Unicode category P*) is a word of its own.
  6. WordPiece: greedy longest match first with "##" continuations; a word that
     cannot be covered, or of more than MAX_CHARS_PER_WORD (200) characters
     after steps 1-5, is one [UNK].
  The character tables are built at export time from the exporting Python's
  `unicodedata` (Unicode 14.0 on Python 3.11), so they are those of the
  Python that runs FullTokenizer, and they travel inside the SavedModel.
  Note: tf-models' fork of FullTokenizer raised max_input_chars_per_word to
  400; google-research/bert, which the checkpoints were trained with, uses 200.

  Hugging Face's BertTokenizerFast (the Rust `tokenizers` BertNormalizer and
  BertPreTokenizer; `transformers.BertTokenizer` since transformers 5) gives
  the same ids for the same settings except (tests/test_tokenizer_settings_parity.py):
    * the final sigma: it lower-cases character by character, "ΟΔΟΣ" ->
      "οδοσ" (Python's str.lower(), FullTokenizer and this model: "οδος");
    * its Unicode tables: private-use characters (Co) are dropped, characters
      assigned or re-categorized after Unicode 14 differ, and its CJK range
      starts at U+2B920, not U+2B820;
    * words of 101-200 characters are [UNK] (max_input_chars_per_word 100);
    * special tokens written in the text ("[MASK]") are kept as one id.
  It strips accents before lower-casing; for Unicode 14 characters that gives
  the same text. transformers' Python BertTokenizer (BertTokenizerLegacy since
  transformers 5) also NFC-composes the text first, which matters only
  where accents are kept ("e\\u0301" becomes "é").

Defined behaviour for odd input (both measured in the tests):
  * NUL bytes are U+0000: dropped like FullTokenizer drops them; they never
    end or truncate the string ("a\\x00b" is the word "ab").
  * Bytes that are not part of valid UTF-8 (stray continuation bytes,
    truncated or overlong sequences, surrogates, > U+10FFFF) are dropped, as
    by bytes.decode("utf-8", "ignore"); the characters around them are kept
    and do not become one word unless nothing else separates them.
  * Words over 200 characters are one [UNK] whose offsets span the word.
  * Empty strings (or only dropped/space characters) give zero words, and
    [CLS] [SEP] when packed.
  * Offsets: a piece spans the original bytes of the characters it came from;
    characters dropped in steps 1, 2 or 4 (e.g. a separate combining accent)
    belong to no piece. A piece that starts or ends inside the expansion of one
    original character (e.g. a Hangul syllable decomposed into jamo by NFD)
    covers that whole character, so neighbouring pieces can overlap.

normalization="tf_text" gives the behaviour of the TF Hub preprocessors made by
tf-models (`text.BertTokenizer` over a vocab table from the asset): lower_case
applies NFKC case folding ("…" -> "...", "ß" -> "ss"), and words of over 100
bytes are [UNK]; its offsets are those of text.BertTokenizer. It cannot keep
accents while lower-casing, strip them while keeping the case, or leave CJK
inside words: create_preprocessing refuses those settings with a BertHubError
that names them.

Speed: most sentences (valid UTF-8 that the settings would only lower in
A-Z and split) skip the per-character work: ASCII lowering plus TF Text's
end-to-end FastWordpiece give the same ids and offsets (see FaithfulTokenizer).
That makes the root call several times faster than tf-models' preprocessor
(benchmarks/preprocessing.py).

Every op in the SavedModel is registered by core TensorFlow or by TF Text
2.12.1 (the version TF Serving images embed): UnicodeDecode, StaticRegexFullMatch,
StringLower, Gather, Cumsum, ..., and TF Text's FastWordpieceTokenizeWithOffsets
(faithful) or the ops of text.BertTokenizer (tf_text). No RoundRobinTrim (newer
than TF Text 2.12), no py_function, no Lambda layers.

Modules (imports run downwards only):
  unicode_tables.py  per-code-point tables from unicodedata; _not_fast
  faithful.py        FaithfulTokenizer (normalization="faithful")
  tf_text.py         TfTextTokenizer (normalization="tf_text"), check_settings
  packing.py         SpecialTokens, round_robin_lengths, pack_inputs
  model.py           the saved tf.Module objects, create_preprocessing,
                     preprocessing_signatures
"""
from bert_hub.preprocessing.faithful import MAX_CHARS_PER_WORD
from bert_hub.preprocessing.model import create_preprocessing
from bert_hub.preprocessing.model import MAX_SEGMENTS
from bert_hub.preprocessing.model import NORMALIZATIONS
from bert_hub.preprocessing.model import preprocessing_signatures
from bert_hub.preprocessing.packing import pack_inputs
from bert_hub.preprocessing.packing import round_robin_lengths
from bert_hub.preprocessing.packing import SpecialTokens

__all__ = ["create_preprocessing", "preprocessing_signatures", "pack_inputs",
           "round_robin_lengths", "SpecialTokens", "NORMALIZATIONS",
           "MAX_SEGMENTS", "MAX_CHARS_PER_WORD"]
