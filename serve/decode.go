package serve

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// Limits bound what one request may carry.
type Limits struct {
	MaxCodes   int // events per subject
	MaxBatch   int // subjects per PredictBatch / ModelInfer
	MaxCodeLen int // bytes per code
}

// DefaultLimits are the limits when a Config leaves them zero.
// MaxCodeLen is data.MaxCodeBytes, the limit every stage applies to codes: a lower one may be
// set, a higher one changes nothing (data.CheckCode refuses longer codes).
func DefaultLimits() Limits {
	return Limits{MaxCodes: 10_000, MaxBatch: 1024, MaxCodeLen: data.MaxCodeBytes}
}

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
	if len(s) > MaxTimeBytes {
		return 0, fmt.Errorf("longer than %d bytes", MaxTimeBytes)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	if us, ok := parseUTCSeconds(s); ok {
		return us, nil
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

// parseUTCSeconds is ParseTime's fast path for the commonest form, "2006-01-02T15:04:05Z"
// with a year in 1800-2200; ok=false sends anything else (or anything invalid) to time.Parse.
func parseUTCSeconds(s string) (int64, bool) {
	if len(s) != len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return 0, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || y < 1800 || y > 2200 || mo < 1 || mo > 12 || d < 1 ||
		d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return 0, false
	}
	secs := daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+sec)
	return secs * 1_000_000, true
}

// daysIn is the number of days in month m (1-12) of year y (proleptic Gregorian).
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d (proleptic Gregorian;
// Howard Hinnant's algorithm), as time.Date(y, m, d, 0, 0, 0, 0, time.UTC) counts them.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y >= 1799 here, so no floor adjustment is needed
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
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
	value      float32
	hasValue   bool
	// badValue: the item carried a value that is not a finite number (an inline "=abc",
	// "=Inf" or "=1e39"), refused naming the value (numeric_value, or the inline value).
	badValue bool
}

// decodeSubject validates and interns one history into codes, and settles its birth and sex
// with the model's demographics (settleDemographics). prefix names the request in error
// messages ("" or "requests[3].").
func decodeSubject(codes *data.Codes, items []eventItem, predictionTime, birthDate, sex, subjectID string, lim Limits,
	prefix, eventsField string, demo *modelrepo.Demographics) (*subject, error) {
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
		if err := data.CheckCode(it.code); err != nil {
			return nil, badField(f.name()+".code", "%s", codeReason(err))
		}
		// IDOwned: request strings are immutable.
		ev := data.Event{Time: data.StaticTime, Code: codes.IDOwned(it.code), Value: data.NoValue}
		if it.time != "" {
			t, err := ParseTime(it.time)
			if err != nil {
				return nil, badField(f.name()+".time", "%v", err)
			}
			ev.Time = t
		}
		if it.badValue || (it.hasValue && math.IsInf(float64(it.value), 0)) {
			vf := ".value" // inline CODE@TIME=VALUE
			if eventsField == "events" {
				vf = ".numeric_value"
			}
			return nil, badField(f.name()+vf, "not a finite number")
		}
		if it.hasValue && !math.IsNaN(float64(it.value)) { // NaN: no value, as in a values tensor
			ev.Value = it.value
		}
		s.events[i] = ev
	}
	data.SortEvents(s.events)
	if err := s.settleDemographics(codes, demo, prefix, eventsField); err != nil {
		return nil, err
	}
	return s, nil
}

// settleDemographics makes one history of the ways birth and sex may come, as data cohort
// reads them offline: from the events (the model's birth codes and sex prefixes), from the
// birth_date and sex fields, or both.
//   - Events only: birth and sex are derived from them (data.Demographics.Derive).
//   - Fields only: the events the training data carried them as (the manifest's birth code,
//     timed at birth, and sex code, static) are added, so the model sees what it saw offline.
//   - Both: they must agree; a contradiction names the field and the event.
//
// A history with no birth either way is refused: every training label had one. A history with
// no sex either way is scored as sex unknown, as data cohort labels a subject without a sex
// code.
func (s *subject) settleDemographics(codes *data.Codes, demo *modelrepo.Demographics, prefix,
	eventsField string) error {
	if demo == nil {
		return nil
	}
	birthAt, sexAt := -1, -1
	evSex := data.SexUnknown
	// Most codes are neither: their first byte rules them out before any comparison.
	var first [256]bool
	for _, c := range demo.BirthCodes {
		if c != "" {
			first[c[0]] = true
		}
	}
	for b := utf8.RuneSelf; b < 256; b++ {
		first[b] = true // prefixes match case-insensitively: ſ folds to s, K (Kelvin) to k
	}
	for _, p := range demo.SexPrefixes {
		if p == "" {
			continue
		}
		first[p[0]] = true
		if b := p[0] | 0x20; b >= 'a' && b <= 'z' {
			first[b], first[b-0x20] = true, true
		}
	}
	for i, e := range s.events {
		name := codes.Name(e.Code)
		if name == "" || !first[name[0]] {
			continue
		}
		if demo.IsBirth(name) {
			if e.Time != data.StaticTime && birthAt < 0 {
				birthAt = i
			}
			continue
		}
		if v, ok := demo.Sex(name); ok && v != data.SexUnknown {
			evSex, sexAt = v, i
		}
	}
	var addBirth, addSex bool
	switch {
	case birthAt >= 0 && s.birth != data.StaticTime && s.events[birthAt].Time != s.birth:
		return badField(prefix+"birth_date", "differs from the birth event %s[%d]", eventsField, birthAt)
	case birthAt >= 0:
		s.birth = s.events[birthAt].Time
	case s.birth == data.StaticTime:
		return badField(prefix+"birth_date", "no birth: send birth_date or a birth event (%s) among %s",
			strings.Join(demo.BirthCodes, ", "), eventsField)
	default:
		addBirth = demo.BirthCode != ""
	}
	switch {
	case sexAt >= 0 && s.sex != "" && s.sex != evSex:
		return badField(prefix+"sex", "differs from the sex event %s[%d]", eventsField, sexAt)
	case sexAt >= 0:
		s.sex = evSex
	case s.sex == "":
		s.sex = data.SexUnknown
	default:
		addSex = demo.SexCodes[s.sex] != ""
	}
	if addBirth || addSex {
		s.events = s.withDemographicEvents(codes, demo, addBirth, addSex)
	}
	return nil
}

// withDemographicEvents returns the events with the sex row and the birth row added where a
// MEDS record lists them: the sex row first of the static rows, the birth row before the
// record's own rows of its time (as a stable sort of the prepended rows would place them).
func (s *subject) withDemographicEvents(codes *data.Codes, demo *modelrepo.Demographics, birth, sex bool) []data.Event {
	out := make([]data.Event, 0, len(s.events)+2)
	if sex {
		out = append(out, data.Event{Time: data.StaticTime, Code: codes.ID(demo.SexCodes[s.sex]), Value: data.NoValue})
	}
	if !birth {
		return append(out, s.events...)
	}
	j := sort.Search(len(s.events), func(k int) bool { return s.events[k].Time >= s.birth }) // static rows sort first
	out = append(out, s.events[:j]...)
	out = append(out, data.Event{Time: s.birth, Code: codes.ID(demo.BirthCode), Value: data.NoValue})
	return append(out, s.events[j:]...)
}

// decodePredict decodes a medseq.v1 PredictRequest for a model with demographics demo.
func decodePredict(codes *data.Codes, r *medseqv1.PredictRequest, lim Limits, prefix string,
	demo *modelrepo.Demographics) (*subject, error) {
	ip := itemPool.Get().(*[]eventItem)
	items := slices.Grow((*ip)[:0], len(r.GetEvents()))[:len(r.GetEvents())]
	for i, e := range r.GetEvents() {
		items[i] = eventItem{code: e.GetCode(), time: e.GetTime()}
		if e.NumericValue != nil {
			items[i].value, items[i].hasValue = e.GetNumericValue(), true
		}
		if j := strings.IndexByte(items[i].time, '='); j >= 0 {
			// An inline value in the time (a client's CODE@TIME=VALUE whose VALUE was not a
			// finite number: ParseCodes keeps it there) is the value's error, not the time's.
			items[i].time, items[i].badValue = items[i].time[:j], true
		}
	}
	sub, err := decodeSubject(codes, items, r.GetPredictionTime(), r.GetBirthDate(), r.GetSex(), r.GetSubjectId(), lim,
		prefix, "events", demo)
	if cap(items) <= maxPooledItems {
		clear(items) // drop the request's strings
		*ip = items[:0]
		itemPool.Put(ip)
	}
	return sub, err
}

// itemPool holds decodePredict's scratch item slices.
var itemPool = sync.Pool{New: func() any { return new([]eventItem) }}

const maxPooledItems = 4096

// codeReason is why data.CheckCode refused a code, without the code (an answer never repeats
// a request's values).
func codeReason(err error) string {
	var ce *data.CodeError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return "invalid"
}

// ParseCodeItems splits "CODE@TIME CODE@TIME=VALUE CODE" (whitespace separated; a bare CODE
// is a static row) into items. The time is what follows the last '@'; a numeric value follows
// the time's last '=' (splitCodeItem). CODE is the code's text form (data.CodeText, with '@'
// written %40: ItemCode), decoded here: "LAB//51498//%20@2020-01-01" is the code
// "LAB//51498// " at that time.
func parseCodeItems(line string) []eventItem {
	fields := strings.Fields(line)
	out := make([]eventItem, 0, len(fields))
	for _, f := range fields {
		out = append(out, splitCodeItem(f))
	}
	return out
}

// splitCodeItem splits "CODE@TIME" or "CODE@TIME=VALUE" (a timed event with its numeric
// value, e.g. LOINC/4548-4@2020-03-01=48.5) or a bare CODE. A value that is not a finite
// number ("=abc", "=Inf", "=1e39", "=NaN") marks the item badValue, which decodeSubject
// refuses naming the value.
func splitCodeItem(f string) eventItem {
	i := strings.LastIndexByte(f, '@')
	if i < 0 {
		return eventItem{code: data.ParseCodeText(f)}
	}
	it := eventItem{code: data.ParseCodeText(f[:i]), time: f[i+1:]}
	if j := strings.LastIndexByte(it.time, '='); j >= 0 {
		v, err := strconv.ParseFloat(it.time[j+1:], 32)
		it.time = it.time[:j]
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			it.badValue = true
		} else {
			it.value, it.hasValue = float32(v), true
		}
	}
	return it
}

// ParseCodes parses "CODE@TIME CODE@TIME=VALUE ..." into medseq.v1 events (the client's
// --codes).
func ParseCodes(line string) []*medseqv1.Event {
	items := parseCodeItems(line)
	out := make([]*medseqv1.Event, len(items))
	for i, it := range items {
		out[i] = &medseqv1.Event{Code: it.code, Time: it.time}
		if it.badValue {
			// Kept in the time for the server to refuse (and the client to check:
			// CheckCodes): never dropped.
			out[i].Time = it.time + "=" + badValueMark
		}
		if it.hasValue {
			v := it.value
			out[i].NumericValue = &v
		}
	}
	return out
}

// badValueMark stands for an inline value that is not a finite number in ParseCodes' output.
const badValueMark = "invalid"

// CheckCodes reports the first item of a "CODE@TIME=VALUE ..." line whose value is not a
// finite number, counting from 1 (the client checks --codes with it before sending).
func CheckCodes(line string) error {
	for i, it := range parseCodeItems(line) {
		if it.badValue {
			return fmt.Errorf("item %d: the value after '=' is not a finite number", i+1)
		}
	}
	return nil
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
