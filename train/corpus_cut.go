package train

import (
	"math"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/tokenize"
)

// A records corpus cuts each training subject's whole record into windows of the model's
// length. Every window starts with the subject's demographic events (the static rows, such as
// sex, and the birth event, as a cohort sequence holds them first), followed by consecutive
// events of the record: the first window from the record's first event, each next one from
// where the last ended (or, with a stride, reaching back over the last window's final stride
// tokens). A window is encoded as a cohort sequence is (tokenize.CodeMap.Encode: [CLS], the
// code and value tokens, visit separators if the tokenizer has them, [SEP]), with ages from the
// subject's birth and days counted back from the window's last event, as if predicting right
// after it. Windows without a token that may be masked are skipped.

// windower cuts records into windows of at most maxLen tokens.
type windower struct {
	cm     *tokenize.CodeMap
	codes  *data.Codes
	demo   data.Demographics
	maxLen int
	stride int // tokens a window shares with the one before it (0: none)
	visits bool
	kind   []uint8 // per code: 0 not yet looked at, codeBirth, codeDemographic, codeOther
}

const (
	codeBirth = iota + 1
	codeDemographic
	codeOther
)

// record is one subject's events as the windower cuts them.
type record struct {
	prefix []data.Event // demographic events, repeated at the start of every window
	body   []data.Event // the other events, in time order
	birth  int64        // data.StaticTime when unknown
	pLen   int          // tokens of [CLS], the prefix and [SEP]
}

// refresh maps the codes the dataset's table gained since the last call.
func (w *windower) refresh() { w.cm.Refresh() }

func (w *windower) codeKind(id int32) uint8 {
	for int(id) >= len(w.kind) {
		w.kind = append(w.kind, 0)
	}
	if k := w.kind[id]; k != 0 {
		return k
	}
	name := w.codes.Name(id)
	k := uint8(codeOther)
	if w.demo.IsBirth(name) {
		k = codeBirth
	} else if _, ok := w.demo.Sex(name); ok {
		k = codeDemographic
	}
	w.kind[id] = k
	return k
}

// split separates a time-ordered record into its demographic prefix and body. A prefix too
// long for half a window keeps only its first events.
func (w *windower) split(events []data.Event) record {
	r := record{birth: data.StaticTime}
	for _, e := range events {
		k := w.codeKind(e.Code)
		switch {
		case e.Time == data.StaticTime || k == codeBirth || k == codeDemographic:
			r.prefix = append(r.prefix, e)
			if k == codeBirth && e.Time != data.StaticTime && r.birth == data.StaticTime {
				r.birth = e.Time
			}
		default:
			r.body = append(r.body, e)
		}
	}
	r.pLen = 2
	for i, e := range r.prefix {
		c := w.cm.EventLen(e) + w.sep(r.prefix, i)
		if r.pLen+c > w.maxLen/2 {
			r.prefix = r.prefix[:i]
			break
		}
		r.pLen += c
	}
	return r
}

// day is the visit an event belongs to, as Encode separates visits.
func day(e data.Event) int64 {
	if e.Time == data.StaticTime {
		return math.MinInt64 + 1
	}
	return data.FloorDiv(e.Time, data.MicrosPerDay)
}

// sep is 1 when Encode puts a visit separator before events[i].
func (w *windower) sep(events []data.Event, i int) int {
	if w.visits && i > 0 && day(events[i]) != day(events[i-1]) {
		return 1
	}
	return 0
}

// bodyCost is the tokens body[j] adds to a window of r whose body starts at lo.
func (w *windower) bodyCost(r *record, lo, j int) int {
	c := w.cm.EventLen(r.body[j])
	if !w.visits {
		return c
	}
	switch {
	case j > lo:
		c += w.sep(r.body, j)
	case len(r.prefix) > 0 && day(r.body[j]) != day(r.prefix[len(r.prefix)-1]):
		c++
	}
	return c
}

// maskable says whether an event has a token MLM may mask: a code that is not [UNK], or a
// value token.
func (w *windower) maskable(e data.Event) bool {
	_, unk := w.cm.Tokens(e.Code)
	return !unk || w.cm.EventLen(e) > 1
}

// cut calls fn with each window of r: its body events [lo, hi) and its tokens.
func (w *windower) cut(r *record, fn func(lo, hi, tokens int)) {
	prefixMaskable := false
	for _, e := range r.prefix {
		prefixMaskable = prefixMaskable || w.maskable(e)
	}
	for lo := 0; lo < len(r.body); {
		hi, tokens, ok := lo, r.pLen, prefixMaskable
		for hi < len(r.body) {
			c := w.bodyCost(r, lo, hi)
			if tokens+c > w.maxLen && hi > lo {
				break
			}
			tokens += c
			ok = ok || w.maskable(r.body[hi])
			hi++
		}
		if ok {
			fn(lo, hi, min(tokens, w.maxLen))
		}
		if hi == len(r.body) {
			return
		}
		lo = w.nextStart(r, lo, hi)
	}
}

// nextStart is where the window after [lo, hi) starts: hi, or earlier by at most stride
// tokens, never at lo again.
func (w *windower) nextStart(r *record, lo, hi int) int {
	k, shared := hi, 0
	for k-1 > lo {
		c := w.cm.EventLen(r.body[k-1])
		if shared+c > w.stride {
			break
		}
		shared += c
		k--
	}
	return k
}

// encode encodes the window of r with body events [lo, hi).
func (w *windower) encode(r *record, lo, hi int) bert.Encoded {
	evs := make([]data.Event, 0, len(r.prefix)+hi-lo)
	evs = append(append(evs, r.prefix...), r.body[lo:hi]...)
	enc := w.cm.Encode(tokenize.Input{Events: evs, Birth: r.birth, PredictionTime: r.body[hi-1].Time},
		tokenize.Options{MaxLen: w.maxLen, VisitSeparators: w.visits})
	return bert.FromEncoding(enc)
}
