package data

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// MEDS v0.4 column and file names.
const (
	ColSubjectID    = "subject_id"
	ColTime         = "time"
	ColCode         = "code"
	ColNumericValue = "numeric_value"

	DataDir            = "data"
	MetadataDir        = "metadata"
	SubjectSplitsFile  = "metadata/subject_splits.parquet"
	CodesFile          = "metadata/codes.parquet"
	DatasetJSONFile    = "metadata/dataset.json"
	MEDSVersion        = "0.4"
	BirthCode          = "MEDS_BIRTH"
	DeathCode          = "MEDS_DEATH"
	SplitTrain         = "train"
	SplitTuning        = "tuning"
	SplitHeldOut       = "held_out"
	microsPerSecond    = int64(1_000_000)
	MicrosPerDay       = 86_400 * microsPerSecond
	MicrosPerYear      = int64(365.25 * float64(MicrosPerDay))
	defaultShardEvents = 1 << 20
)

// StaticTime is the time of a static row (a null MEDS time). It sorts before every real time.
const StaticTime int64 = math.MinInt64

// Event is one MEDS row of a subject: a time, an interned code and an optional numeric value
// (NaN when absent).
type Event struct {
	Time  int64   // microseconds since the Unix epoch, or StaticTime
	Code  int32   // index into the dataset's Codes
	Value float32 // NaN when the row has no numeric_value
}

// IsStatic reports whether the event is a static row.
func (e Event) IsStatic() bool { return e.Time == StaticTime }

// HasValue reports whether the event carries a numeric value.
func (e Event) HasValue() bool { return !math.IsNaN(float64(e.Value)) }

// NoValue is the Value of an event without a numeric value.
var NoValue = float32(math.NaN())

// Subject is one subject's events, ordered by time with static rows first.
type Subject struct {
	ID     int64
	Events []Event
}

// SortEvents orders events by time (static first), keeping the original order of ties.
func SortEvents(ev []Event) {
	byTime := func(a, b Event) int { return cmp.Compare(a.Time, b.Time) }
	if slices.IsSortedFunc(ev, byTime) {
		return
	}
	slices.SortStableFunc(ev, byTime)
}

// FloorDiv divides rounding towards minus infinity (times before 1970 are negative).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// SexCodePrefix starts the static sex rows medseq writes (SEX//F, SEX//M, SEX//U).
const SexCodePrefix = "SEX//"

// Micros converts a time to MEDS microseconds.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// TimeOf converts MEDS microseconds to a UTC time.
func TimeOf(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Codes interns code strings. The zero value is not usable; call NewCodes.
// A Codes is not safe for concurrent mutation.
type Codes struct {
	ids   map[string]int32
	names []string
}

// NewCodes returns an empty code table.
func NewCodes() *Codes { return &Codes{ids: make(map[string]int32)} }

// NewCodesSize returns an empty code table with room for n codes.
func NewCodesSize(n int) *Codes {
	return &Codes{ids: make(map[string]int32, n), names: make([]string, 0, n)}
}

// Reset empties the table and keeps its memory, so one table can serve many short-lived uses
// (for example a pool of per-request tables in a server).
func (c *Codes) Reset() {
	clear(c.ids)
	clear(c.names)
	c.names = c.names[:0]
}

// IDOwned is ID for a code string that is never modified afterwards (an ordinary Go string, not
// a view of a reused buffer): it is stored without a copy.
func (c *Codes) IDOwned(code string) int32 {
	if id, ok := c.ids[code]; ok {
		return id
	}
	id := int32(len(c.names))
	c.ids[code] = id
	c.names = append(c.names, code)
	return id
}

// ID returns the id of code, adding it when new. A new code is copied, so code may alias a
// buffer that is reused later.
func (c *Codes) ID(code string) int32 {
	if id, ok := c.ids[code]; ok {
		return id
	}
	code = strings.Clone(code)
	id := int32(len(c.names))
	c.ids[code] = id
	c.names = append(c.names, code)
	return id
}

// idBytes is ID for a byte slice; it allocates only when the code is new.
func (c *Codes) idBytes(b []byte) int32 {
	if id, ok := c.ids[string(b)]; ok {
		return id
	}
	return c.ID(unsafe.String(unsafe.SliceData(b), len(b)))
}

// Lookup returns the id of code without adding it.
func (c *Codes) Lookup(code string) (int32, bool) {
	id, ok := c.ids[code]
	return id, ok
}

// Name returns the code string of id.
func (c *Codes) Name(id int32) string { return c.names[id] }

// Len is the number of distinct codes.
func (c *Codes) Len() int { return len(c.names) }

// Names returns the code strings indexed by id. The caller must not modify it.
func (c *Codes) Names() []string { return c.names }

// CodeMeta is one row of metadata/codes.parquet.
type CodeMeta struct {
	Code        string
	Description string
	ParentCodes []string
}

// DatasetMetadata is metadata/dataset.json. Unknown fields written by other tools are kept in
// Extra and written back unchanged.
type DatasetMetadata struct {
	DatasetName    string         `json:"dataset_name,omitempty"`
	DatasetVersion string         `json:"dataset_version,omitempty"`
	ETLName        string         `json:"etl_name,omitempty"`
	ETLVersion     string         `json:"etl_version,omitempty"`
	MEDSVersion    string         `json:"meds_version,omitempty"`
	CreatedAt      string         `json:"created_at,omitempty"`
	Extra          map[string]any `json:"-"`
}
