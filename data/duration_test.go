package data

import "testing"

// TestFormatDuration: durations print in the unit they are written in (18y, not 157788h),
// and every printed form reads back to the same microseconds.
func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"18y", "18y"}, {"1y", "1y"}, {"365d", "365d"}, {"30d", "30d"}, {"0", "0"},
		{"12h", "12h"}, {"36h", "36h"}, {"48h", "2d"}, {"90min", "90min"}, {"60min", "1h"},
		{"2w", "14d"}, {"730.5d", "2y"}, {"1.5s", "1.5s"}, {"45s", "45s"},
	} {
		us, err := ParseDuration(tc.in)
		if err != nil {
			t.Fatalf("ParseDuration(%q): %v", tc.in, err)
		}
		got := FormatDuration(us)
		if got != tc.want {
			t.Errorf("FormatDuration(ParseDuration(%q)) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := ParseDuration(got)
		if err != nil || back != us {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d", got, back, err, us)
		}
	}
}
