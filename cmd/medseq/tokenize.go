package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

// tokenizeBuildFlags reads the flags of `medseq tokenize build`.
func tokenizeBuildFlags(e *env, args []string) (*tokenize.FromCohortConfig, error) {
	fs := newFlags(e, "tokenize build", "--meds DIR --cohort DIR --out DIR [flags]")
	o := &tokenize.FromCohortConfig{Build: tokenize.DefaultBuildConfig(), Log: e.log}
	fs.StringVar(&o.MEDS, "meds", "", "MEDS dataset folder the cohort was built from")
	fs.StringVar(&o.Cohort, "cohort", "", "cohort folder (medseq data cohort): codes are counted on its censored "+
		"training split")
	fs.StringVar(&o.Out, "out", "", "output tokenizer folder (vocab.txt, tokenizer.json, medseq_tokenizer.json, "+
		"manifest.json)")
	fs.BoolVar(&o.Force, "force", false, "replace an existing output folder")
	fs.BoolVar(&o.AllowMismatch, "allow-mismatch", false, "use a dataset the cohort was not built from")
	fs.IntVar(&o.Build.VocabSize, "vocab-size", o.Build.VocabSize, "keep the N most frequent whole codes")
	fs.IntVar(&o.Build.MinCount, "min-count", o.Build.MinCount, "a code must occur at least this often in the training "+
		"split")
	fs.BoolVar(&o.Build.Subwords, "subwords", o.Build.Subwords, "add WordPiece pieces from the codes' structure as a "+
		"fallback for unseen codes")
	fs.IntVar(&o.Build.MaxPieces, "max-pieces", o.Build.MaxPieces, "at most this many WordPiece pieces (parent stems and "+
		"suffixes, from the codes' separators)")
	fs.IntVar(&o.Build.MaxLen, "max-len", o.Build.MaxLen, "sequence length (with [CLS] and [SEP]); longer histories lose "+
		"their oldest codes")
	fs.BoolVar(&o.VisitSeparators, "visit-separators", false, "put [SEP] between visits (days)")
	fs.IntVar(&o.Build.ValueBins, "value-bins", 0, "encode numeric values as VALUE/Q1..QN after their code: N quantile "+
		"bins per code on the training split (codes with at least 10·N values); 0: off")
	fs.Float64Var(&o.Leak.Threshold, "leak-threshold", 0.95, "flag tokens whose presence alone reaches this AUROC on the "+
		"training split")
	fs.BoolVar(&o.Strict, "strict", false, "fail (and write nothing) when the leakage guard flags a token")
	fs.StringVar(&o.Corpus, "corpus", tokenize.CorpusCohort, "what the codes are counted on: cohort (its censored "+
		"training split) or records (the whole records of every training subject of the dataset, as train pretrain --corpus "+
		"records reads them; the leakage guard still reads the cohort's censored training split)")
	fs.StringVar(&o.Until, "until", "", "records: count only events before this date (YYYY-MM-DD or RFC 3339)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", o.MEDS, "cohort", o.Cohort, "out", o.Out); err != nil {
		return nil, err
	}
	switch {
	case o.Build.VocabSize < 1:
		return nil, usagef("flag --vocab-size: must be at least 1")
	case o.Build.MinCount < 1:
		return nil, usagef("flag --min-count: must be at least 1")
	case o.Build.MaxLen != 0 && o.Build.MaxLen < 3:
		return nil, usagef("flag --max-len: at least 3 ([CLS], one code, [SEP]), or 0 for none")
	case o.Build.ValueBins == 1 || o.Build.ValueBins < 0 || o.Build.ValueBins > 100:
		return nil, usagef("flag --value-bins: 0 (off) or 2 to 100, got %d", o.Build.ValueBins)
	case o.Leak.Threshold <= 0.5 || o.Leak.Threshold > 1:
		return nil, usagef("flag --leak-threshold: must be in (0.5, 1]")
	case o.Corpus != tokenize.CorpusCohort && o.Corpus != tokenize.CorpusRecords:
		return nil, usagef("flag --corpus: %q is not cohort or records", o.Corpus)
	case o.Until != "" && o.Corpus != tokenize.CorpusRecords:
		return nil, usagef("flag --until cuts records: it needs --corpus records")
	}
	if _, err := data.ParseUntil(o.Until); err != nil {
		return nil, usagef("flag --until: %v", err)
	}
	return o, nil
}

func runTokenizeBuild(ctx context.Context, e *env, args []string) error {
	cfg, err := tokenizeBuildFlags(e, args)
	if err != nil {
		return err
	}
	res, err := tokenize.BuildFromCohort(ctx, *cfg)
	if res != nil {
		printTokenizerSummary(e.stdout, res)
	}
	return err
}

// printTokenizerSummary prints what tokenize build built.
func printTokenizerSummary(w io.Writer, r *tokenize.BuildResult) {
	b, u, l := r.Config.Build, r.Config.TuningUnk, r.Config.Leaks
	fmt.Fprintf(w, "tokenizer %s (run %s)\n", r.Out, r.RunID)
	fmt.Fprintf(w, "  vocabulary         %d tokens: 5 special, %d whole codes, %d pieces (from %d distinct codes in %d "+
		"training sequences)\n",
		r.Tokenizer.Vocab.Len(), b.WholeCodes, b.Pieces, b.DistinctCodes, b.Sequences)
	if c := r.Config.Corpus; c != nil {
		until := ""
		if c.Until != "" {
			until = ", events before " + c.Until
		}
		fmt.Fprintf(w, "  corpus             records: %d training subjects counted (the \"sequences\" above)%s; %d tuning "+
			"subjects' records for [UNK]; left out: %d held-out subjects, %d without a split\n",
			c.TrainSubjects, until, c.TuningSubjects, c.HeldOutSubjects, c.Unassigned)
	}
	fmt.Fprintf(w, "  coverage           %.2f%% of training code occurrences are whole codes in the vocabulary\n",
		100*b.Coverage)
	if b.ValueBins > 0 {
		fmt.Fprintf(w, "  numeric values     %d quantile bins (%s1..%d) for %d codes with at least %d values\n",
			b.ValueBins, tokenize.ValuePrefix, b.ValueBins, b.ValueCodes, b.ValueBins*tokenize.MinValuesPerBin)
	}
	if tr := r.Config.TrainRates; tr != nil {
		fmt.Fprintf(w, "  codes on training  %s\n", tr.Rates())
	}
	fmt.Fprintf(w, "  codes on tuning    %s\n", u.Rates())
	fmt.Fprintf(w, "  [UNK] on tuning    %.3f%% of %d codes (%.3f%% without "+
		"subword pieces)\n", 100*u.UnkRate, u.Occurrences, 100*u.UnkRateNoPieces)
	switch {
	case !l.Checked:
		fmt.Fprintf(w, "  leakage guard      not run: %s\n", l.Reason)
	case len(l.Leaks) == 0:
		fmt.Fprintf(w, "  leakage guard      no token separates the classes (threshold AUROC %.2f)\n", l.Threshold)
	default:
		fmt.Fprintf(w,
			"  WARNING: leakage guard: %d tokens separate the classes almost perfectly on the training split:\n", len(l.Leaks))
		for i, k := range l.Leaks {
			if i == 20 {
				fmt.Fprintf(w, "    ... and %d more (see %s)\n", len(l.Leaks)-20, tokenize.ConfigFile)
				break
			}
			kind := "code"
			if k.Namespace {
				kind = "namespace"
			}
			fmt.Fprintf(w, "    %-9s %-28s in %d/%d positive and %d/%d negative sequences (AUROC %.3f)\n",
				kind, data.CodeText(k.Token), k.Positives, l.Positives, k.Negatives, l.Negatives, k.AUROC)
		}
	}
}

// runTokenizeEncode reads one subject's codes per line on stdin and writes their ids.
func runTokenizeEncode(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "tokenize encode", "--tokenizer DIR [--max-len N] [--tokens] < codes.txt")
	dir := fs.String("tokenizer", "", "tokenizer folder (medseq's, or any with a tokenizer.json or vocab.txt), or a "+
		"third-party tokenizer.json file")
	maxLen := fs.Int("max-len", -1, "truncate to N tokens keeping the newest (default: the tokenizer's; 0: none)")
	tokens := fs.Bool("tokens", false, "write the tokens instead of their ids")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("tokenizer", *dir); err != nil {
		return err
	}
	tok, err := loadAnyTokenizer(*dir)
	if err != nil {
		return err
	}
	opts := tokenize.Options{MaxLen: tok.MaxLen}
	if *maxLen >= 0 {
		opts.MaxLen = *maxLen
	}
	in := bufio.NewScanner(e.stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	// Lines are encoded in chunks on all cores, written in input order.
	const chunk = 4096
	lines := make([]string, 0, chunk)
	write := func() {
		for _, enc := range tok.EncodeTexts(lines, opts) {
			for i, id := range enc.IDs {
				if i > 0 {
					out.WriteByte(' ')
				}
				if *tokens {
					out.WriteString(tok.Vocab.Token(id))
				} else {
					out.WriteString(strconv.Itoa(int(id)))
				}
			}
			out.WriteByte('\n')
		}
		lines = lines[:0]
	}
	line := 0
	for in.Scan() {
		line++
		lines = append(lines, in.Text())
		if len(lines) == chunk {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			write()
		}
	}
	write()
	if err := in.Err(); err != nil {
		return fmt.Errorf("stdin line %d: %w", line+1, err)
	}
	return nil
}

// loadAnyTokenizer loads a medseq tokenizer folder, or a third-party tokenizer.json file
// (WordPiece or WordLevel) through github.com/sugarme/tokenizer.
func loadAnyTokenizer(path string) (*tokenize.Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return tokenize.LoadThirdParty(path)
	}
	tok, _, err := tokenize.Load(path)
	return tok, err
}
