package data

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseDuration reads a duration in clinical units: a number followed by y (365.25 days),
// w, d, h, min or s, e.g. "365d", "18y", "2w", "0". It returns microseconds.
func ParseDuration(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		us     float64
	}{
		{"min", 60e6}, {"y", float64(MicrosPerYear)}, {"w", 7 * float64(MicrosPerDay)},
		{"d", float64(MicrosPerDay)}, {"h", 3600e6}, {"s", 1e6},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				break
			}
			return int64(math.Round(f * u.us)), nil
		}
	}
	return 0, fmt.Errorf("cannot parse duration %q: want a non-negative number with a unit y, w, d, h, "+
		"min or s (e.g. 365d)", s)
}

// FormatDuration writes microseconds in the largest unit that divides them exactly (y, d, h,
// min, s), so that a duration reads as it was written: 18y (not 157788h), 365d, 12h, 90min.
// Weeks print as days (2w is 14d); ParseDuration reads every form back.
func FormatDuration(us int64) string {
	switch {
	case us == 0:
		return "0"
	case us%MicrosPerYear == 0:
		return strconv.FormatInt(us/MicrosPerYear, 10) + "y"
	case us%MicrosPerDay == 0:
		return strconv.FormatInt(us/MicrosPerDay, 10) + "d"
	case us%3_600_000_000 == 0:
		return strconv.FormatInt(us/3_600_000_000, 10) + "h"
	case us%60_000_000 == 0:
		return strconv.FormatInt(us/60_000_000, 10) + "min"
	default:
		return strconv.FormatFloat(float64(us)/1e6, 'f', -1, 64) + "s"
	}
}
