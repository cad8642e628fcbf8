package tokenize

import (
	"math"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
)

// LeakConfig tunes the leakage guard.
type LeakConfig struct {
	// Threshold: flag a token whose presence alone reaches this AUROC (or 1-AUROC) on the
	// training split. Presence is a yes/no feature, so its AUROC is 0.5 + (p1-p0)/2 where p1
	// and p0 are the shares of positive and negative sequences holding it. Default 0.95.
	Threshold float64
	// MinClass: the guard needs at least this many sequences of each class (default 10).
	MinClass int
}

// Leak is a token (or a code namespace) whose presence separates the classes almost perfectly:
// the usual sign of a post-diagnosis code that slipped past censoring, or of a coding artefact
// that differs between the classes.
type Leak struct {
	Token     string  `json:"token"`               // the code (or namespace) as the data spells it
	Namespace bool    `json:"namespace,omitempty"` // a code prefix (before the first '/'), not one code
	Positives int     `json:"positive_sequences"`  // positive sequences holding it
	Negatives int     `json:"negative_sequences"`
	PosShare  float64 `json:"positive_share"`
	NegShare  float64 `json:"negative_share"`
	AUROC     float64 `json:"auroc"`
}

// LeakReport is the guard's result.
type LeakReport struct {
	Checked   bool    `json:"checked"`
	Reason    string  `json:"reason,omitempty"` // why not checked
	Positives int     `json:"positive_sequences"`
	Negatives int     `json:"negative_sequences"`
	Threshold float64 `json:"threshold"`
	Leaks     []Leak  `json:"leaks"`
}

// GuardLeaks lists the codes of the vocabulary, and the code namespaces, whose presence alone
// separates the counted classes with AUROC >= Threshold.
func GuardLeaks(c *Counter, t *Tokenizer, cfg LeakConfig) LeakReport {
	if cfg.Threshold <= 0.5 || cfg.Threshold > 1 {
		cfg.Threshold = 0.95
	}
	if cfg.MinClass <= 0 {
		cfg.MinClass = 10
	}
	c.grow()
	rep := LeakReport{Positives: c.nseq[1], Negatives: c.nseq[0], Threshold: cfg.Threshold, Leaks: []Leak{}}
	if rep.Positives < cfg.MinClass || rep.Negatives < cfg.MinClass {
		rep.Reason = "too few labelled sequences of a class for the leakage guard"
		return rep
	}
	rep.Checked = true
	mk := func(tok string, ns bool, pos, neg int) (Leak, bool) {
		p1 := float64(pos) / float64(rep.Positives)
		p0 := float64(neg) / float64(rep.Negatives)
		auc := 0.5 + (p1-p0)/2
		l := Leak{Token: tok, Namespace: ns, Positives: pos, Negatives: neg, PosShare: p1, NegShare: p0, AUROC: auc}
		return l, math.Max(auc, 1-auc) >= cfg.Threshold
	}
	// Namespaces: presence of any code of the namespace in a sequence. A sequence may hold
	// several codes of one namespace, so count per sequence through the codes' shares is not
	// exact; the per-code counts give a lower bound, the sum an upper bound — use the largest
	// code's presence (lower bound) to avoid false alarms.
	nsPos, nsNeg := map[string]int{}, map[string]int{}
	for id := range c.count {
		if c.count[id] == 0 {
			continue
		}
		name := c.codes.Name(int32(id))
		pos, neg := int(c.present[1][id]), int(c.present[0][id])
		if _, inVocab := t.Vocab.ids[data.CodeText(name)]; inVocab {
			if l, ok := mk(name, false, pos, neg); ok {
				rep.Leaks = append(rep.Leaks, l)
			}
		}
		if i := strings.IndexByte(name, '/'); i > 0 {
			ns := name[:i+1]
			nsPos[ns] = max(nsPos[ns], pos)
			nsNeg[ns] = max(nsNeg[ns], neg)
		}
	}
	for ns := range nsPos {
		if l, ok := mk(ns, true, nsPos[ns], nsNeg[ns]); ok {
			rep.Leaks = append(rep.Leaks, l)
		}
	}
	sort.Slice(rep.Leaks, func(i, j int) bool {
		di, dj := math.Abs(rep.Leaks[i].AUROC-0.5), math.Abs(rep.Leaks[j].AUROC-0.5)
		if di != dj {
			return di > dj
		}
		return rep.Leaks[i].Token < rep.Leaks[j].Token
	})
	return rep
}

// UnkStats counts code occurrences by how the tokenizer reads them — whole-code hits, pieced
// (a known parent code and suffix pieces), [UNK] — and how many would be [UNK] without the
// pieces (whole codes only).
type UnkStats struct {
	Occurrences     int64   `json:"occurrences"`
	Whole           int64   `json:"whole"`
	Pieced          int64   `json:"pieced"`
	Unknown         int64   `json:"unknown"`           // [UNK] with this tokenizer
	WholeCodeMisses int64   `json:"whole_code_misses"` // not a whole code in the vocabulary
	WholeRate       float64 `json:"whole_rate"`
	PiecedRate      float64 `json:"pieced_rate"`
	UnkRate         float64 `json:"unk_rate"`
	UnkRateNoPieces float64 `json:"unk_rate_without_subwords"`
}

// Add counts the codes of one sequence through m.
func (s *UnkStats) Add(m *CodeMap, codes []int32) {
	for _, code := range codes {
		s.Occurrences++
		switch m.Kind(code) {
		case CodeWhole:
			s.Whole++
		case CodePieced:
			s.Pieced++
			s.WholeCodeMisses++
		default:
			s.Unknown++
			s.WholeCodeMisses++
		}
	}
	if s.Occurrences > 0 {
		n := float64(s.Occurrences)
		s.WholeRate, s.PiecedRate, s.UnkRate = float64(s.Whole)/n, float64(s.Pieced)/n, float64(s.Unknown)/n
		s.UnkRateNoPieces = float64(s.WholeCodeMisses) / n
	}
}

// AddCounter counts every occurrence c counted (the training split, for tokenize build)
// through m, which must map c's code table.
func (s *UnkStats) AddCounter(m *CodeMap, c *Counter) {
	c.grow()
	m.Refresh()
	for id, n := range c.count {
		if n == 0 {
			continue
		}
		s.Occurrences += n
		switch m.Kind(int32(id)) {
		case CodeWhole:
			s.Whole += n
		case CodePieced:
			s.Pieced += n
			s.WholeCodeMisses += n
		default:
			s.Unknown += n
			s.WholeCodeMisses += n
		}
	}
	s.Add(m, nil) // the rates
}

// Rates returns the counts as CodeRates.
func (s *UnkStats) Rates() CodeRates {
	return CodeRates{Codes: s.Occurrences, Whole: s.Whole, Pieced: s.Pieced, Unknown: s.Unknown}
}
