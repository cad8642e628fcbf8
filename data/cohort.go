package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Negative sampling methods for a cohort's negatives' prediction times.
const (
	// NegativesMatchedAge draws each negative's age at prediction from the positives' ages in
	// the same birth-year band, and keeps the same number of negatives per positive in every
	// band, so the classes' age distributions match.
	NegativesMatchedAge = "matched-age"
	// NegativesRandomDate gives each negative a random date from the positives' prediction
	// dates, kept only if after birth (and eligible). It is the naive method, kept to show its
	// bias: it over-represents the young.
	NegativesRandomDate = "random-date"
)

// ErrEmptyCohort is returned when no subject qualifies as a positive or as a negative.
var ErrEmptyCohort = errors.New("empty cohort")

// CohortConfig says how labels are built. Durations are microseconds.
type CohortConfig struct {
	Targets    []string // code prefixes that mark the outcome (first occurrence = diagnosis)
	Lead       int64    // prediction time = diagnosis - Lead
	Gap        int64    // events in (prediction time - Gap, prediction time] are hidden too
	MinHistory int64    // the first event must be at least this long before the visible end
	MinEvents  int      // at least this many timed events must be visible
	MinAge     int64    // age at prediction time
	FollowUp   int64    // negatives must be observed this long after prediction time
	// CensorWindow: a subject whose observation ends this close to the dataset's end is
	// censored administratively (CensorDatasetEnd), not lost to follow-up (see TimeToEvent).
	CensorWindow int64
	Negatives    string // NegativesMatchedAge (default) or NegativesRandomDate
	// NegativesPerPositive caps matched-age negatives per positive in each birth band;
	// 0 chooses it from the data (see the package doc of BuildCohort).
	NegativesPerPositive float64
	BandYears            int // birth-year band width for matching (default 5)
	Seed                 int64
	Fractions            SplitFractions
	SexPrefixes          []string // code prefixes carrying sex, e.g. SEX//F, GENDER//M
	BirthCodes           []string
	DeathCodes           []string
}

// Demographics are the config's birth codes and sex prefixes.
func (c *CohortConfig) Demographics() Demographics {
	return Demographics{BirthCodes: c.BirthCodes, SexPrefixes: c.SexPrefixes}
}

// DefaultCohortConfig returns the defaults the command line uses.
func DefaultCohortConfig() CohortConfig {
	return CohortConfig{
		Lead: 365 * MicrosPerDay, MinHistory: 365 * MicrosPerDay, MinEvents: 1,
		MinAge: 18 * MicrosPerYear, FollowUp: 365 * MicrosPerDay, CensorWindow: DefaultCensorWindow,
		Negatives: NegativesMatchedAge,
		BandYears: 5, Seed: 1, Fractions: DefaultSplitFractions,
		SexPrefixes: DefaultDemographics().SexPrefixes,
		BirthCodes:  DefaultDemographics().BirthCodes, DeathCodes: []string{DeathCode},
	}
}

func (c *CohortConfig) validate() error {
	if len(c.Targets) == 0 {
		return errors.New("no target code prefixes")
	}
	for _, t := range c.Targets {
		if strings.TrimSpace(t) == "" {
			return errors.New("empty target code prefix")
		}
	}
	if c.Lead < 0 || c.Gap < 0 || c.MinHistory < 0 || c.FollowUp < 0 || c.MinAge < 0 || c.MinEvents < 0 ||
		c.CensorWindow < 0 {
		return errors.New("durations and counts must not be negative")
	}
	if c.Negatives == "" {
		c.Negatives = NegativesMatchedAge
	}
	if c.Negatives != NegativesMatchedAge && c.Negatives != NegativesRandomDate {
		return fmt.Errorf("negative sampling %q: want %s or %s", c.Negatives, NegativesMatchedAge, NegativesRandomDate)
	}
	if c.BandYears <= 0 {
		c.BandYears = 5
	}
	if c.NegativesPerPositive < 0 {
		return errors.New("negatives per positive must not be negative")
	}
	if c.Fractions == (SplitFractions{}) {
		c.Fractions = DefaultSplitFractions
	}
	return nil
}

// Sex of a subject as found in the record.
const (
	SexUnknown = "U"
	SexFemale  = "F"
	SexMale    = "M"
)

// Label is one prediction task instance: the MEDS label schema plus what medseq derives.
type Label struct {
	SubjectID      int64   `json:"subject_id"`
	PredictionTime int64   `json:"prediction_time"`
	Value          bool    `json:"boolean_value"`
	Split          string  `json:"split"`
	Age            float64 `json:"age"` // years at prediction time
	Sex            string  `json:"sex"`
	Birth          int64   `json:"birth"`
	// Time to event: the first target code at or after PredictionTime (EventObserved), else the end
	// of observation (censored, CensorReason says which end). EventTime is StaticTime when unknown
	// (external labels given without target codes).
	EventTime     int64  `json:"event_time"`
	EventObserved bool   `json:"event_observed"`
	CensorReason  string `json:"censor_reason"` // "", "death", "end_of_record", "dataset_end"
}

// Censoring reasons of a label whose event was not observed (Label.CensorReason).
const (
	CensorDeath       = "death"         // the subject died before any target code
	CensorEndOfRecord = "end_of_record" // the subject's records stop well before the dataset's end
	CensorDatasetEnd  = "dataset_end"   // administrative: the records run to the dataset's end
)

// subjectInfo is what the first pass keeps of a subject: a few times and the times of its
// timed events (for history checks), never its codes.
type subjectInfo struct {
	id          int64
	birth       int64 // StaticTime when unknown
	death       int64 // StaticTime when none
	sex         string
	target      int64   // first target code, StaticTime when none
	targets     []int64 // distinct times of target codes, ascending (static rows left out)
	first, last int64   // first and last timed event other than birth
	times       []int64
}

// observedEnd is the last time the subject is known to be observed.
func (s *subjectInfo) observedEnd() int64 {
	end := s.last
	if s.death != StaticTime && s.death > end {
		end = s.death
	}
	return end
}

// visibleCount is the number of timed events at or before t.
func (s *subjectInfo) visibleCount(t int64) int {
	return sort.Search(len(s.times), func(i int) bool { return s.times[i] > t })
}

// codeClass caches, per code id, what the cohort builder needs to know of a code.
type codeClass struct {
	codes  *Codes
	cfg    *CohortConfig
	demo   Demographics // cfg's birth codes and sex prefixes
	class  []uint8      // 0 unknown, else 1+kind
	sexVal []string
}

const (
	kindOther = iota + 1
	kindTarget
	kindBirth
	kindDeath
	kindSex
)

func (cc *codeClass) kind(id int32) uint8 {
	for int(id) >= len(cc.class) {
		cc.class = append(cc.class, 0)
		cc.sexVal = append(cc.sexVal, "")
	}
	if k := cc.class[id]; k != 0 {
		return k
	}
	name := cc.codes.Name(id)
	k := uint8(kindOther)
	switch {
	case hasAnyPrefix(name, cc.cfg.Targets):
		k = kindTarget
	case cc.demo.IsBirth(name):
		k = kindBirth
	case contains(cc.cfg.DeathCodes, name):
		k = kindDeath
	default:
		if v, ok := cc.demo.Sex(name); ok {
			k = kindSex
			cc.sexVal[id] = v
		}
	}
	cc.class[id] = k
	return k
}

// ParseSex maps a sex or gender value (F, female, W, M, male, ...) to F, M or U.
func ParseSex(v string) string {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "F", "FEMALE", "W", "WOMAN", "2":
		return SexFemale
	case "M", "MALE", "MAN", "1":
		return SexMale
	}
	return SexUnknown
}

func hasAnyPrefix(s string, ps []string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// firstPass is what the first pass found: one subjectInfo per subject (per subject that keep
// accepts), the split each subject's shard folder names (data/<split>/...), if any, the number
// of subjects read and the dataset's end (DatasetEnd over every subject read, kept or not).
type firstPass struct {
	infos      []subjectInfo
	shardSplit map[int64]string
	subjects   int
	end        int64
}

// summarise is the first pass: one subjectInfo per subject (per subject that keep accepts,
// when keep is not nil), streaming shard by shard.
func summarise(ctx context.Context, ds *Dataset, cfg *CohortConfig, keep func(int64) bool) (*firstPass, error) {
	cc := &codeClass{codes: ds.Codes, cfg: cfg, demo: cfg.Demographics()}
	var out []subjectInfo
	var lasts []int64
	seen := map[int64]bool{}
	shardSplit := map[int64]string{}
	err := ds.ForEachShard(ctx, func(sh *Shard) error {
		split := ds.ShardSplit(sh.Path)
		if split != SplitTrain && split != SplitTuning && split != SplitHeldOut {
			split = ""
		}
		for _, s := range sh.Subjects {
			if t := lastTime(s.Events); t != StaticTime {
				lasts = append(lasts, t)
			}
			if keep != nil && !keep(s.ID) {
				if seen[s.ID] {
					return fmt.Errorf("%s: subject %d appears in more than one shard or out of order; "+
						"MEDS keeps a subject in one shard", sh.Path, s.ID)
				}
				seen[s.ID] = true
				continue
			}
			if err := summariseOne(cc, s, seen, &out); err != nil {
				return fmt.Errorf("%s: %w", sh.Path, err)
			}
			if split != "" {
				shardSplit[s.ID] = split
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &firstPass{infos: out, shardSplit: shardSplit, subjects: len(seen), end: DatasetEnd(lasts)}, nil
}

// lastTime is the latest timed event of a subject (birth and death included), StaticTime when
// it has none.
func lastTime(events []Event) int64 {
	last := StaticTime
	for _, e := range events {
		last = max(last, e.Time)
	}
	return last
}

func summariseOne(cc *codeClass, s Subject, seen map[int64]bool, out *[]subjectInfo) error {
	{
		if seen[s.ID] {
			return fmt.Errorf("subject %d appears in more than one shard or out of order; MEDS keeps a subject in one shard",
				s.ID)
		}
		seen[s.ID] = true
		si := subjectInfo{id: s.ID, birth: StaticTime, death: StaticTime, sex: SexUnknown, target: StaticTime,
			first: StaticTime, last: StaticTime}
		nTimed := 0
		for _, e := range s.Events {
			switch cc.kind(e.Code) {
			case kindBirth:
				if e.Time != StaticTime && si.birth == StaticTime {
					si.birth = e.Time
				}
				continue
			case kindDeath:
				if e.Time != StaticTime && si.death == StaticTime {
					si.death = e.Time
				}
				continue
			case kindSex:
				if v := cc.sexVal[e.Code]; v != SexUnknown {
					si.sex = v
				}
			case kindTarget:
				if e.Time != StaticTime && si.target == StaticTime {
					si.target = e.Time
				}
				if n := len(si.targets); e.Time != StaticTime && (n == 0 || si.targets[n-1] != e.Time) {
					si.targets = append(si.targets, e.Time)
				}
			}
			if e.Time != StaticTime {
				nTimed++
			}
		}
		si.times = make([]int64, 0, nTimed)
		for _, e := range s.Events {
			if e.Time == StaticTime {
				continue
			}
			if k := cc.kind(e.Code); k == kindBirth || k == kindDeath {
				continue
			}
			if n := len(si.times); n == 0 || si.times[n-1] != e.Time {
				si.times = append(si.times, e.Time) // distinct times: one visit counts once
			}
		}
		if len(si.times) > 0 {
			si.first, si.last = si.times[0], si.times[len(si.times)-1]
		}
		*out = append(*out, si)
		return nil
	}
}

// Exclusion reasons in the cohort report.
const (
	ExclNoBirth        = "no birth date (no birth code)"
	ExclNoEvents       = "no timed events"
	ExclTooYoung       = "younger than --min-age at prediction time"
	ExclShortHistory   = "less than --min-history of records before prediction time"
	ExclFewEvents      = "fewer than --min-events visible events"
	ExclBeforeBirth    = "prediction time before birth"
	ExclShortFollowUp  = "observed less than --follow-up after prediction time"
	ExclShortRecord    = "records shorter than --min-history + --gap + --follow-up"
	ExclNoPositiveBand = "no positives born in the same birth-year band"
	ExclNoMatchedTime  = "no eligible prediction time among the band's positive ages"
	ExclOverNegRatio   = "not sampled: every age slot of its birth band is filled"
)

// exclusions counts subjects left out, by class and reason.
type exclusions map[string]map[string]int

func (x exclusions) add(class, reason string) {
	if x[class] == nil {
		x[class] = map[string]int{}
	}
	x[class][reason]++
}

// eligible checks a prediction time for a subject and returns "" or the exclusion reason.
func (cfg *CohortConfig) eligible(s *subjectInfo, pt int64, negative bool) string {
	if pt <= s.birth {
		return ExclBeforeBirth
	}
	if pt-s.birth < cfg.MinAge {
		return ExclTooYoung
	}
	visibleEnd := pt - cfg.Gap
	if s.first == StaticTime || s.first > visibleEnd-cfg.MinHistory {
		return ExclShortHistory
	}
	if s.visibleCount(visibleEnd) < cfg.MinEvents {
		return ExclFewEvents
	}
	if negative && s.observedEnd() < pt+cfg.FollowUp {
		return ExclShortFollowUp
	}
	return ""
}

// feasibleRange is the interval of prediction times at which a negative is eligible, or
// ok=false when there is none. Eligibility is monotone in time for every rule, so the set of
// eligible times is an interval.
func (cfg *CohortConfig) feasibleRange(s *subjectInfo) (lo, hi int64, ok bool) {
	if s.first == StaticTime {
		return 0, 0, false
	}
	lo = s.birth + cfg.MinAge
	if lo <= s.birth {
		lo = s.birth + 1
	}
	if t := s.first + cfg.MinHistory + cfg.Gap; t > lo {
		lo = t
	}
	if cfg.MinEvents > 0 {
		if cfg.MinEvents > len(s.times) {
			return 0, 0, false
		}
		if t := s.times[cfg.MinEvents-1] + cfg.Gap; t > lo {
			lo = t
		}
	}
	hi = s.observedEnd() - cfg.FollowUp
	return lo, hi, lo <= hi
}

func ageYears(s *subjectInfo, t int64) float64 {
	return float64(t-s.birth) / float64(MicrosPerYear)
}

func birthBand(s *subjectInfo, years int) int {
	y := TimeOf(s.birth).Year()
	return int(math.Floor(float64(y) / float64(years)))
}
