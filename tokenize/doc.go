// Package tokenize owns medseq's vocabulary and encoder: a WordPiece vocabulary over whole
// medical codes (a code such as ICD10/E11.9 or SNOMED/44054006 is one word: no lowercasing, no
// splitting on punctuation), WordPiece pieces learned from the codes' own structure as a
// fallback for codes outside the vocabulary, the encoder ([CLS] codes [SEP], optional visit
// separators, truncation that keeps the most recent codes, padding, attention masks and
// per-token ages), value tokens for numeric values (per-code quantile bins, values.go), and the
// files people already use: vocab.txt and a HuggingFace tokenizer.json that the HuggingFace
// tokenizers library loads and encodes identically.
//
// It knows nothing about cohorts: callers feed it the censored sequences (data.Cohort.Sequences)
// they are allowed to see.
package tokenize
