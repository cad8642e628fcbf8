package serve

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// Limits bound what one request may carry.
type Limits struct {
	MaxCodes   int // events per subject
	MaxBatch   int // subjects per PredictBatch / ModelInfer
	MaxCodeLen int // bytes per code
}

// DefaultLimits are the limits when a Config leaves them zero.
func DefaultLimits() Limits { return Limits{MaxCodes: 10_000, MaxBatch: 1024, MaxCodeLen: 256} }

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCodes <= 0 {
		l.MaxCodes = d.MaxCodes
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = d.MaxBatch
	}
	if l.MaxCodeLen <= 0 {
		l.MaxCodeLen = d.MaxCodeLen
	}
	return l
}

// fieldError is a bad request: the field it names and what is wrong. It becomes
// INVALID_ARGUMENT. The message never repeats the value (it may be a code or an identifier).
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// ParseTime reads an RFC 3339 time (any offset, optional fractional seconds) or a calendar
// date YYYY-MM-DD (midnight UTC) and returns MEDS microseconds.
func ParseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	var t time.Time
	var err error
	if len(s) == len("2006-01-02") {
		t, err = time.Parse(time.DateOnly, s)
	} else {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return 0, fmt.Errorf("not RFC 3339 or YYYY-MM-DD")
	}
	if y := t.Year(); y < 1800 || y > 2200 {
		return 0, fmt.Errorf("year %d outside 1800-2200", y)
	}
	return data.Micros(t), nil
}

// subject is one decoded, not yet censored, history.
type subject struct {
	events         []data.Event // sorted, static first
	birth          int64
	sex            string
	predictionTime int64
	subjectID      string
}

// eventItem is one code with its time text, as the requests carry them.
type eventItem struct {
	code, time string
	value      *float32
}

// decodeSubject validates and interns one history into codes. prefix names the request in
// error messages ("" or "requests[3].").
func decodeSubject(codes *data.Codes, items []eventItem, predictionTime, birthDate, sex, subjectID string, lim Limits, prefix, eventsField string) (*subject, error) {
	if len(items) == 0 {
		return nil, badField(prefix+eventsField, "empty: at least one event is required")
	}
	if len(items) > lim.MaxCodes {
		return nil, badField(prefix+eventsField, "%d events, more than the server's limit of %d", len(items), lim.MaxCodes)
	}
	if predictionTime == "" {
		return nil, badField(prefix+"prediction_time", "required")
	}
	pt, err := ParseTime(predictionTime)
	if err != nil {
		return nil, badField(prefix+"prediction_time", "%v", err)
	}
	s := &subject{birth: data.StaticTime, predictionTime: pt, subjectID: subjectID}
	if birthDate != "" {
		b, err := ParseTime(birthDate)
		if err != nil {
			return nil, badField(prefix+"birth_date", "%v", err)
		}
		if b > pt {
			return nil, badField(prefix+"birth_date", "after prediction_time")
		}
		s.birth = b
	}
	switch sex {
	case "", data.SexFemale, data.SexMale:
		s.sex = sex
	case "f", "female", "FEMALE", "Female":
		s.sex = data.SexFemale
	case "m", "male", "MALE", "Male":
		s.sex = data.SexMale
	default:
		return nil, badField(prefix+"sex", "must be F, M or empty")
	}
	s.events = make([]data.Event, len(items))
	for i, it := range items {
		f := lazyField{prefix, eventsField, i}
		if it.code == "" {
			return nil, badField(f.name()+".code", "empty")
		}
		if len(it.code) > lim.MaxCodeLen {
			return nil, badField(f.name()+".code", "longer than %d bytes", lim.MaxCodeLen)
		}
		if !utf8.ValidString(it.code) || strings.ContainsAny(it.code, " \t\r\n") {
			return nil, badField(f.name()+".code", "must be valid UTF-8 without whitespace")
		}
		ev := data.Event{Time: data.StaticTime, Code: codes.ID(it.code), Value: data.NoValue}
		if it.time != "" {
			t, err := ParseTime(it.time)
			if err != nil {
				return nil, badField(f.name()+".time", "%v", err)
			}
			ev.Time = t
		}
		if it.value != nil {
			ev.Value = *it.value
		}
		s.events[i] = ev
	}
	data.SortEvents(s.events)
	return s, nil
}

// decodePredict decodes a medseq.v1 PredictRequest.
func decodePredict(codes *data.Codes, r *medseqv1.PredictRequest, lim Limits, prefix string) (*subject, error) {
	items := make([]eventItem, len(r.GetEvents()))
	for i, e := range r.GetEvents() {
		items[i] = eventItem{code: e.GetCode(), time: e.GetTime()}
		if e.NumericValue != nil {
			v := e.GetNumericValue()
			items[i].value = &v
		}
	}
	return decodeSubject(codes, items, r.GetPredictionTime(), r.GetBirthDate(), r.GetSex(), r.GetSubjectId(), lim, prefix, "events")
}

// ParseCodeItems splits "CODE@TIME CODE@TIME CODE" (whitespace separated; a bare CODE is a
// static row) into items. The time is what follows the last '@'.
func parseCodeItems(line string) []eventItem {
	fields := strings.Fields(line)
	out := make([]eventItem, 0, len(fields))
	for _, f := range fields {
		out = append(out, splitCodeItem(f))
	}
	return out
}

func splitCodeItem(f string) eventItem {
	if i := strings.LastIndexByte(f, '@'); i >= 0 {
		return eventItem{code: f[:i], time: f[i+1:]}
	}
	return eventItem{code: f}
}

// ParseCodes parses "CODE@TIME CODE@TIME ..." into medseq.v1 events (the client's --codes).
func ParseCodes(line string) []*medseqv1.Event {
	items := parseCodeItems(line)
	out := make([]*medseqv1.Event, len(items))
	for i, it := range items {
		out[i] = &medseqv1.Event{Code: it.code, Time: it.time}
	}
	return out
}

// toInput censors a decoded subject for a model version.
func (s *subject) toInput(gap int64) (scorer.Input, int) {
	ev := data.Censor(s.events, s.predictionTime, gap)
	return scorer.Input{Events: ev, Birth: s.birth, Sex: s.sex, PredictionTime: s.predictionTime}, len(s.events) - len(ev)
}

// lazyField names events[i] only when an error needs it.
type lazyField struct {
	prefix, events string
	i              int
}

func (f lazyField) name() string { return fmt.Sprintf("%s%s[%d]", f.prefix, f.events, f.i) }
