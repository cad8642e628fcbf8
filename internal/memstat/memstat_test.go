package memstat

import (
	"runtime"
	"testing"
)

func TestPeakRSSGrowsWithAllocation(t *testing.T) {
	if PeakRSS() == 0 {
		t.Skip("no /proc/self/status VmHWM here")
	}
	ResetPeakRSS()
	before := PeakRSS()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after := PeakRSS()
	runtime.KeepAlive(buf)
	if after < before+32<<20 {
		t.Errorf("peak RSS %d -> %d after touching 64 MiB", before, after)
	}
}
