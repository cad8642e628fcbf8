package eval

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// chromiumInstallHint is what CI needs to run TestReportScreenshot.
const chromiumInstallHint = "apt-get install -y chromium (Debian's headless browser; listed in scripts/install-deps.sh)"

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestReportScreenshot renders report.html in headless Chromium with name resolution
// disabled and checks that the plots drew: the page is tall, and the models' colours cover
// far more pixels than their legend swatches could. It is skipped without Chromium, except
// under CI, where it fails with the install hint. MEDSEQ_REPORT_SCREENSHOT=FILE keeps the PNG.
func TestReportScreenshot(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found: %s", chromiumInstallHint)
		}
		t.Skipf("chromium not found; to run this test: %s", chromiumInstallHint)
	}
	root := t.TempDir()
	xdir := fakeModel(t, root, "t2d-xgboost", "xgboost", 2, 2.0, 300)
	bdir := fakeModel(t, root, "t2d-bert", "bert", 3, 1.6, 300)
	oracle := 0.9
	r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 200, OracleAUROC: &oracle})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "report")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	page, err := r.Write(out)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(root, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND", // no network: nothing may be fetched
		"--user-data-dir="+filepath.Join(root, "chromium-profile"), "--hide-scrollbars",
		"--screenshot="+shot, "--window-size=1280,4000", "file://"+page)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("MEDSEQ_REPORT_SCREENSHOT"); keep != "" {
		if b, err := os.ReadFile(shot); err == nil {
			os.WriteFile(keep, b, 0o644)
		}
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 3000 {
		t.Fatalf("screenshot %v", b)
	}
	// Pixels close to each model's colour: curves, markers and histogram outlines.
	near := func(c image.Image, want [3]uint32) int {
		n := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bb, _ := c.At(x, y).RGBA()
				d := absDiff(r>>8, want[0]) + absDiff(g>>8, want[1]) + absDiff(bb>>8, want[2])
				if d < 60 {
					n++
				}
			}
		}
		return n
	}
	for i := range 2 {
		c := modelColor(i)
		n := near(img, [3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)})
		t.Logf("model %d colour covers %d pixels", i, n)
		if n < 3000 {
			t.Errorf("model %d's colour covers %d pixels: the plots did not render", i, n)
		}
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
