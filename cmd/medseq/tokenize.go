package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

// tokenizeOptions are the flags of `medseq tokenize build`.
type tokenizeOptions struct {
	meds, cohort, out string
	force, allow      bool
	strict            bool
	visitSeparators   bool
	build             tokenize.BuildConfig
	leak              tokenize.LeakConfig
}

func tokenizeBuildFlags(e *env, args []string) (*tokenizeOptions, error) {
	fs := newFlags(e, "tokenize build", "--meds DIR --cohort DIR --out DIR [flags]")
	o := &tokenizeOptions{build: tokenize.DefaultBuildConfig()}
	fs.StringVar(&o.meds, "meds", "", "MEDS dataset folder the cohort was built from")
	fs.StringVar(&o.cohort, "cohort", "", "cohort folder (medseq data cohort): codes are counted on its censored training split")
	fs.StringVar(&o.out, "out", "", "output tokenizer folder (vocab.txt, tokenizer.json, medseq_tokenizer.json, manifest.json)")
	fs.BoolVar(&o.force, "force", false, "replace an existing output folder")
	fs.BoolVar(&o.allow, "allow-mismatch", false, "use a dataset the cohort was not built from")
	fs.IntVar(&o.build.VocabSize, "vocab-size", o.build.VocabSize, "keep the N most frequent whole codes")
	fs.IntVar(&o.build.MinCount, "min-count", o.build.MinCount, "a code must occur at least this often in the training split")
	fs.BoolVar(&o.build.Subwords, "subwords", o.build.Subwords, "add WordPiece pieces from the codes' structure as a fallback for unseen codes")
	fs.IntVar(&o.build.MaxPieces, "max-pieces", o.build.MaxPieces, "at most this many WordPiece pieces (parent stems and suffixes, from the codes' separators)")
	fs.IntVar(&o.build.MaxLen, "max-len", o.build.MaxLen, "sequence length (with [CLS] and [SEP]); longer histories lose their oldest codes")
	fs.BoolVar(&o.visitSeparators, "visit-separators", false, "put [SEP] between visits (days)")
	fs.IntVar(&o.build.ValueBins, "value-bins", 0, "encode numeric values as VALUE/Q1..QN after their code: N quantile bins per code on the training split (codes with at least 10·N values); 0: off")
	fs.Float64Var(&o.leak.Threshold, "leak-threshold", 0.95, "flag tokens whose presence alone reaches this AUROC on the training split")
	fs.BoolVar(&o.strict, "strict", false, "fail (and write nothing) when the leakage guard flags a token")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", o.meds, "cohort", o.cohort, "out", o.out); err != nil {
		return nil, err
	}
	switch {
	case o.build.VocabSize < 1:
		return nil, usagef("flag --vocab-size: must be at least 1")
	case o.build.MinCount < 1:
		return nil, usagef("flag --min-count: must be at least 1")
	case o.build.MaxLen != 0 && o.build.MaxLen < 3:
		return nil, usagef("flag --max-len: at least 3 ([CLS], one code, [SEP]), or 0 for none")
	case o.build.ValueBins == 1 || o.build.ValueBins < 0 || o.build.ValueBins > 100:
		return nil, usagef("flag --value-bins: 0 (off) or 2 to 100, got %d", o.build.ValueBins)
	case o.leak.Threshold <= 0.5 || o.leak.Threshold > 1:
		return nil, usagef("flag --leak-threshold: must be in (0.5, 1]")
	}
	return o, nil
}

// errLeak is returned by tokenize build --strict when the leakage guard flags tokens.
var errLeak = errors.New("leakage guard")

func runTokenizeBuild(ctx context.Context, e *env, args []string) error {
	o, err := tokenizeBuildFlags(e, args)
	if err != nil {
		return err
	}
	res, err := buildTokenizer(ctx, e, o)
	if res != nil {
		printTokenizerSummary(e.stdout, res)
	}
	return err
}

// tokenizerResult is what building a tokenizer produced, for the summary.
type tokenizerResult struct {
	out   string
	tok   *tokenize.Tokenizer
	cfg   tokenize.Config
	runID string
}

// buildTokenizer counts codes on the cohort's censored training split, builds the vocabulary,
// measures [UNK] on the tuning split, runs the leakage guard and writes the tokenizer.
func buildTokenizer(ctx context.Context, e *env, o *tokenizeOptions) (*tokenizerResult, error) {
	start := time.Now()
	c, err := data.LoadCohort(o.cohort)
	if err != nil {
		return nil, err
	}
	medsFP, err := data.Fingerprint(o.meds) // read once: checked here, recorded below
	if err != nil {
		return nil, err
	}
	if err := c.Manifest.CheckInputFingerprint(data.InputMEDS, o.meds, medsFP); err != nil {
		if !o.allow {
			return nil, fmt.Errorf("%w (or pass --allow-mismatch)", err)
		}
		e.log.Warn("building on a dataset the cohort was not built from", "cohort_run", c.Manifest.RunID)
	}
	ds, err := data.Open(o.meds)
	if err != nil {
		return nil, err
	}
	counter := tokenize.NewCounter(ds.Codes)
	if o.build.ValueBins > 0 {
		counter.KeepValues()
	}
	var tuning []int32
	err = c.Sequences(ctx, ds, []string{data.SplitTrain, data.SplitTuning}, func(s data.Sequence) error {
		if s.Label.Split == data.SplitTrain {
			counter.Add(s.Events, map[bool]int{true: 1, false: 0}[s.Label.Value])
			return nil
		}
		for _, ev := range s.Events {
			tuning = append(tuning, ev.Code)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("counted codes", "train_sequences", counter.Sequences(), "occurrences", counter.Occurrences())
	tok, rep, err := tokenize.Build(counter, o.build)
	if err != nil {
		return nil, fmt.Errorf("build vocabulary from %s: %w", o.cohort, err)
	}
	tok.VisitSeparators = o.visitSeparators
	var unk, train tokenize.UnkStats
	cm := tok.NewCodeMap(ds.Codes)
	unk.Add(cm, tuning)
	train.AddCounter(cm, counter)
	leaks := tokenize.GuardLeaks(counter, tok, o.leak)
	cfg := tokenize.Config{Build: rep, TrainRates: &train, TuningUnk: &unk, Leaks: &leaks}
	res := &tokenizerResult{out: o.out, tok: tok, cfg: cfg}
	if o.strict && len(leaks.Leaks) > 0 {
		return res, fmt.Errorf("%w: %d tokens separate the classes almost perfectly on the training split (--strict); nothing written", errLeak, len(leaks.Leaks))
	}
	m := data.NewManifest(tokenize.StageTokenize, map[string]any{
		"vocab_size": o.build.VocabSize, "min_count": o.build.MinCount, "subwords": o.build.Subwords,
		"max_pieces": o.build.MaxPieces, "max_len": o.build.MaxLen, "visit_separators": o.visitSeparators,
		"leak_threshold": leaks.Threshold, "strict": o.strict, "value_bins": o.build.ValueBins,
	})
	m.AddInputFingerprint(data.InputMEDS, o.meds, medsFP)
	if _, err := m.AddInput("cohort", o.cohort); err != nil {
		return nil, err
	}
	if err := tokenize.Save(o.out, o.force, tok, cfg, m); err != nil {
		return nil, err
	}
	res.runID = m.RunID
	e.log.Info("tokenizer written", "vocab_size", tok.Vocab.Len(), "seconds", time.Since(start).Seconds(), "run_id", m.RunID)
	return res, nil
}

func printTokenizerSummary(w io.Writer, r *tokenizerResult) {
	b, u, l := r.cfg.Build, r.cfg.TuningUnk, r.cfg.Leaks
	fmt.Fprintf(w, "tokenizer %s (run %s)\n", r.out, r.runID)
	fmt.Fprintf(w, "  vocabulary         %d tokens: 5 special, %d whole codes, %d pieces (from %d distinct codes in %d training sequences)\n",
		r.tok.Vocab.Len(), b.WholeCodes, b.Pieces, b.DistinctCodes, b.Sequences)
	fmt.Fprintf(w, "  coverage           %.2f%% of training code occurrences are whole codes in the vocabulary\n", 100*b.Coverage)
	if b.ValueBins > 0 {
		fmt.Fprintf(w, "  numeric values     %d quantile bins (%s1..%d) for %d codes with at least %d values\n",
			b.ValueBins, tokenize.ValuePrefix, b.ValueBins, b.ValueCodes, b.ValueBins*tokenize.MinValuesPerBin)
	}
	if tr := r.cfg.TrainRates; tr != nil {
		fmt.Fprintf(w, "  codes on training  %s\n", tr.Rates())
	}
	fmt.Fprintf(w, "  codes on tuning    %s\n", u.Rates())
	fmt.Fprintf(w, "  [UNK] on tuning    %.3f%% of %d codes (%.3f%% without subword pieces)\n", 100*u.UnkRate, u.Occurrences, 100*u.UnkRateNoPieces)
	switch {
	case !l.Checked:
		fmt.Fprintf(w, "  leakage guard      not run: %s\n", l.Reason)
	case len(l.Leaks) == 0:
		fmt.Fprintf(w, "  leakage guard      no token separates the classes (threshold AUROC %.2f)\n", l.Threshold)
	default:
		fmt.Fprintf(w, "  WARNING: leakage guard: %d tokens separate the classes almost perfectly on the training split:\n", len(l.Leaks))
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
	dir := fs.String("tokenizer", "", "tokenizer folder (medseq's, or any with a tokenizer.json or vocab.txt), or a third-party tokenizer.json file")
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
