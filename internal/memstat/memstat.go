package memstat

import (
	"os"
	"strconv"
	"strings"
)

// PeakRSS is the process's peak resident set size (Linux VmHWM) in bytes; 0 where unknown.
func PeakRSS() int64 {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(buf), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// ResetPeakRSS restarts the VmHWM high-water mark (Linux clear_refs 5), so PeakRSS then
// measures only what follows. It does nothing where unsupported.
func ResetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
