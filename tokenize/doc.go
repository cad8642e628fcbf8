// Package tokenize owns medseq's vocabulary and encoder: a WordPiece vocabulary over whole
// medical codes (a code such as ICD10/E11.9, SNOMED/44054006 or
// "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM" is one word: no lowercasing, no splitting on
// punctuation or spaces; the vocabulary holds each code's text form, data.CodeText, which
// %-escapes whitespace and special-token names so that any code is one whitespace-free word and
// never a special token), WordPiece pieces learned from the codes' own structure as a fallback
// for codes outside the vocabulary (a known parent code or stem plus suffix pieces cut at the
// code's separators, else [UNK]; codes are counted as whole, pieced or [UNK], CodeRates), the
// encoder ([CLS] codes [SEP], optional visit
// separators, truncation that keeps the most recent codes, padding, attention masks and
// per-token ages), value tokens for numeric values (per-code quantile bins, values.go), and the
// files people already use: vocab.txt and a HuggingFace tokenizer.json that the HuggingFace
// tokenizers library loads and encodes identically.
//
// It reads cohorts only through data.Cohort.Sequences, the censored sequences a model may see:
// BuildFromCohort (`medseq tokenize build`) counts a cohort's training split, measures [UNK]
// on its tuning split, runs the leakage guard and writes the tokenizer folder. With a records
// corpus (`--corpus records`, corpus.go) it counts instead the whole records of the training
// subjects through data.Records (what `train pretrain --corpus records` learns from) and
// measures [UNK] on the tuning subjects' records; the leakage guard still reads the cohort's
// censored training split, and a held-out subject is never read.
package tokenize
