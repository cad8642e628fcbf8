package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

func TestCorpusFlags(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader(""),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	base := []string{"--meds", "m", "--cohort", "c", "--tokenizer", "t", "--out", "o"}
	p, err := trainPretrainFlags(e, base)
	if err != nil || p.Corpus.Kind != train.CorpusRecords || p.Corpus.ShuffleBuffer != 4096 || p.Corpus.Until != "" {
		t.Errorf("pretrain's default corpus %+v: %v", p.Corpus, err)
	}
	p, err = trainPretrainFlags(e, append(base, "--until", "2019-07-01", "--stride", "16", "--shuffle-buffer", "64",
		"--val-windows", "50"))
	want := train.CorpusConfig{Kind: train.CorpusRecords, Until: "2019-07-01", Stride: 16, ShuffleBuffer: 64, ValWindows: 50}
	if err != nil || p.Corpus != want {
		t.Errorf("corpus flags %+v: %v", p.Corpus, err)
	}
	if p, err = trainPretrainFlags(e, append(base, "--corpus", "cohort")); err != nil || p.Corpus.Kind != train.CorpusCohort {
		t.Errorf("--corpus cohort: %+v %v", p.Corpus, err)
	}
	for _, bad := range [][]string{{"--corpus", "notes"}, {"--until", "last year"},
		{"--corpus", "cohort", "--until", "2019-01-01"},
		{"--corpus", "cohort", "--stride", "8"}, {"--stride", "-1"}, {"--shuffle-buffer", "0"}, {"--val-windows", "0"}} {
		if _, err := trainPretrainFlags(e, append(append([]string(nil), base...), bad...)); err == nil {
			t.Errorf("train pretrain %v accepted", bad)
		}
	}

	tb := []string{"--meds", "m", "--cohort", "c", "--out", "o"}
	o, err := tokenizeBuildFlags(e, tb)
	if err != nil || o.Corpus != tokenize.CorpusCohort {
		t.Errorf("tokenize build's default corpus %q: %v", o.Corpus, err)
	}
	if o, err = tokenizeBuildFlags(e, append(tb, "--corpus", "records", "--until", "2019-07-01T12:00:00Z")); err != nil ||
		o.Corpus != tokenize.CorpusRecords || o.Until != "2019-07-01T12:00:00Z" {
		t.Errorf("tokenize build --corpus records --until: %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--corpus", "notes"}, {"--until", "2019-07-01"},
		{"--corpus", "records", "--until", "07/01/2019"}} {
		if _, err := tokenizeBuildFlags(e, append(append([]string(nil), tb...), bad...)); err == nil {
			t.Errorf("tokenize build %v accepted", bad)
		}
	}
}
