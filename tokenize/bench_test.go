package tokenize

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/medseq/medseq/data"
)

// benchCorpus is a generated corpus with its tokenizer, written for encode.js.
type benchCorpus struct {
	tok                 *Tokenizer
	lines               []string
	tokPath, corpusPath string
	unseen              float64 // share of code occurrences outside the vocabulary
	verify              sync.Once
	medseq              float64 // sequences/s measured by the medseq sub-benchmark, for the ratio
}

// newBenchCorpus: a vocabulary of ~30k whole codes (plus WordPiece pieces) built from
// Zipf-distributed counts, and seqs lines of codes codes each, drawn Zipf-like from the
// vocabulary's codes, ~3% of them from codes outside it (the WordPiece fallback).
func newBenchCorpus(b *testing.B, dir string, seqs, codes int) *benchCorpus {
	r := rand.New(rand.NewSource(42))
	const vocabCodes = 30000
	universe := hfUniverse(vocabCodes, 0)
	unseen := hfUniverse(3000, 1_000_000)
	cfg := BuildConfig{VocabSize: vocabCodes, MinCount: 1, Subwords: true, MaxPieces: 2000, MaxLen: 512}
	tok := hfBuild(b, r, universe, 2000, 100, cfg)
	z := rand.NewZipf(r, 1.1, 2, uint64(len(universe)-1))
	lines := make([]string, seqs)
	out := 0
	var sb strings.Builder
	for i := range lines {
		sb.Reset()
		for j := 0; j < codes; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			if r.Intn(100) < 3 {
				sb.WriteString(unseen[r.Intn(len(unseen))])
				out++
			} else {
				sb.WriteString(universe[z.Uint64()])
			}
		}
		lines[i] = sb.String()
	}
	c := &benchCorpus{tok: tok, lines: lines, unseen: float64(out) / float64(seqs*codes)}
	c.tokPath, c.corpusPath = hfWrite(b, dir, tok, lines)
	return c
}

// BenchmarkEncode compares EncodeTexts (all cores) with HuggingFace's tokenizers library
// (encode.js --bench: encodeBatch, which runs on all cores in Rust) on the same
// tokenizer.json and corpus, in sequences per second. HuggingFace's figure is its own encoding
// time (node's start-up, file reading and tokenizer loading are not counted). The medseq
// sub-benchmark first checks that its ids equal HuggingFace's; the huggingface sub-benchmark
// reports medseq_x, medseq's sequences/s over HuggingFace's, when both ran.
func BenchmarkEncode(b *testing.B) {
	for _, size := range []struct{ seqs, codes int }{{10_000, 20}, {100_000, 100}} {
		name := fmt.Sprintf("seqs=%s/codes=%d", kilo(size.seqs), size.codes)
		var c *benchCorpus
		dir := b.TempDir() // the parent's: it outlives the sub-benchmarks
		corpus := func(b *testing.B) *benchCorpus {
			if c == nil {
				b.StopTimer()
				c = newBenchCorpus(b, dir, size.seqs, size.codes)
				b.StartTimer()
			}
			return c
		}
		b.Run(name+"/medseq", func(b *testing.B) {
			c := corpus(b)
			c.verify.Do(func() { benchVerify(b, c) })
			o := Options{MaxLen: c.tok.MaxLen}
			runtime.GC() // start from a clean heap: the check above left garbage
			b.ResetTimer()
			for range b.N {
				encs := c.tok.EncodeTexts(c.lines, o)
				if len(encs) != len(c.lines) {
					b.Fatal("lost lines")
				}
			}
			c.medseq = float64(b.N*len(c.lines)) / b.Elapsed().Seconds()
			b.ReportMetric(c.medseq, "seqs/s")
			b.ReportMetric(100*c.unseen, "%unseen")
		})
		b.Run(name+"/huggingface", func(b *testing.B) {
			node := hfBenchNode(b)
			c := corpus(b)
			out := hfRun(b, node, "--bench", strconv.Itoa(b.N), c.tokPath, c.corpusPath)
			var res struct {
				Sequences     int     `json:"sequences"`
				Seconds       float64 `json:"seconds"`
				SequencesPerS float64 `json:"sequences_per_s"`
				Method        string  `json:"method"`
				Chunk         int     `json:"chunk"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				b.Fatalf("encode.js --bench printed %q: %v", out, err)
			}
			if res.Sequences != b.N*len(c.lines) {
				b.Fatalf("encode.js encoded %d sequences, want %d", res.Sequences, b.N*len(c.lines))
			}
			b.Logf("HuggingFace tokenizers: %d sequences in %.2f s (%s, %d lines a call)", res.Sequences, res.Seconds, res.Method, res.Chunk)
			b.ReportMetric(res.SequencesPerS, "seqs/s")
			if c.medseq > 0 {
				b.ReportMetric(c.medseq/res.SequencesPerS, "medseq_x")
			}
		})
	}
}

// hfBenchNode is hfNode for benchmarks: no install, a skip when node or the package is missing.
func hfBenchNode(b *testing.B) string {
	b.Helper()
	if !hfInstalled() {
		b.Skip("node or " + hfDir + "/node_modules is missing: run scripts/hf-deps.sh")
	}
	return hfNode(b)
}

// benchVerify checks, once, that EncodeTexts gives HuggingFace's ids on the whole corpus, so
// the speed ratio is for identical ids (skipped without node).
func benchVerify(b *testing.B, c *benchCorpus) {
	if !hfInstalled() {
		b.Logf("ids not compared with HuggingFace: node or %s/node_modules is missing", hfDir)
		return
	}
	theirs := hfEncode(b, hfNode(b), c.tokPath, c.corpusPath)
	encs := c.tok.EncodeTexts(c.lines, Options{MaxLen: c.tok.MaxLen})
	ours := make([][]int32, len(encs))
	for i := range encs {
		ours[i] = encs[i].IDs
	}
	hfCompare(b, c.tok, c.lines, ours, theirs)
	if !b.Failed() {
		b.Logf("ids identical to HuggingFace's on all %d sequences", len(c.lines))
	}
}

func kilo(n int) string {
	if n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// BenchmarkEncodeEvents times CodeMap.EncodeBatch (all cores), the path training, predict and
// serve take from MEDS events, on 10k subjects with and without value bins (the 20 most
// frequent codes carry numeric values, about 40% of the events), reporting tokens/s.
func BenchmarkEncodeEvents(b *testing.B) {
	universe := hfUniverse(5000, 0)
	for _, events := range []int{100, 1000} {
		for _, bins := range []int{0, 10} {
			b.Run(fmt.Sprintf("events=%d/value_bins=%d", events, bins), func(b *testing.B) {
				r := rand.New(rand.NewSource(7))
				cfg := BuildConfig{VocabSize: 5000, MinCount: 1, Subwords: true, MaxPieces: 500, ValueBins: bins}
				tok := hfBuild(b, r, universe, 2000, 100, cfg)
				codes := data.NewCodes()
				for _, u := range universe {
					codes.ID(u)
				}
				z := rand.NewZipf(r, 1.1, 2, uint64(len(universe)-1))
				ins := make([]Input, 10000)
				for i := range ins {
					evs := make([]data.Event, events)
					for j := range evs {
						k := z.Uint64()
						evs[j] = data.Event{Time: int64(j) * data.MicrosPerDay, Code: int32(k), Value: data.NoValue}
						if k < 20 {
							evs[j].Value = float32(r.NormFloat64())
						}
					}
					ins[i] = Input{Events: evs, Birth: data.StaticTime, PredictionTime: int64(events) * data.MicrosPerDay}
				}
				m := tok.NewCodeMap(codes)
				tokens := 0
				for _, e := range m.EncodeBatch(ins, Options{}) {
					tokens += len(e.IDs)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					m.EncodeBatch(ins, Options{})
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(tokens*b.N)/sec, "tokens/s")
				b.ReportMetric(float64(len(ins)*b.N)/sec, "seqs/s")
			})
		}
	}
}
