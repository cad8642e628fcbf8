package eval

import (
	"context"
	"encoding/json"
	"html"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumInstallHint is what CI needs to run the browser tests.
const chromiumInstallHint = "apt-get install -y chromium (Debian's headless browser; listed in scripts/install-deps.sh)"

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns the browser, or skips the test without one, except under CI, where it
// fails with the install hint.
func needChromium(t *testing.T) string {
	t.Helper()
	bin := findChromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found: %s", chromiumInstallHint)
		}
		t.Skipf("chromium not found; to run this test: %s", chromiumInstallHint)
	}
	return bin
}

// runChromium runs headless Chromium on a page with name resolution disabled (nothing may be
// fetched) and returns its standard output.
func runChromium(t *testing.T, bin, root string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND", "--user-data-dir=" + filepath.Join(root, "chromium-profile"), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return out
}

// browserReport writes the report of two fake models, their cohort (with time to event) and
// the demo's censoring sensitivity into root/report and returns the page's path and the
// report.
func browserReport(t *testing.T, root string) (string, *Report) {
	t.Helper()
	xdir := fakeModel(t, root, "t2d-xgboost", "xgboost", 2, 2.0, 300)
	bdir := fakeModel(t, root, "t2d-bert", "bert", 3, 1.6, 300)
	cohort := fakeCohort(t, root, xdir)
	oracle := 0.9
	r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 200, OracleAUROC: &oracle, CohortDir: cohort,
		Censoring: filepath.Join("testdata", "censoring.json")})
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
	return page, r
}

// TestReportScreenshot renders report.html in headless Chromium and checks that the plots
// drew: the page is tall, and the models' colours cover far more pixels than their legend
// swatches could. MEDSEQ_REPORT_SCREENSHOT=FILE keeps the PNG.
func TestReportScreenshot(t *testing.T) {
	bin := needChromium(t)
	root := t.TempDir()
	page, _ := browserReport(t, root)
	shot := filepath.Join(root, "report.png")
	runChromium(t, bin, root, "--screenshot="+shot, "--window-size=1280,16000", "file://"+page)
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
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, img, b.Min, draw.Src)
	near := func(want [3]uint32) int {
		n := 0
		for i := 0; i+3 < len(rgba.Pix); i += 4 {
			px := rgba.Pix[i : i+3 : i+3]
			d := absDiff(uint32(px[0]), want[0]) + absDiff(uint32(px[1]), want[1]) + absDiff(uint32(px[2]), want[2])
			if d < 60 {
				n++
			}
		}
		return n
	}
	for i := range 2 {
		c := modelColor(i)
		n := near([3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)})
		t.Logf("model %d colour covers %d pixels", i, n)
		if n < 3000 {
			t.Errorf("model %d's colour covers %d pixels: the plots did not render", i, n)
		}
	}
}

// probeScript measures, in the browser, the boxes of the report's sections, tables and
// figures after layout, and writes them as JSON into <pre id="probe">: a section that does
// not render (hidden, empty, broken markup) has no box.
const probeScript = `<script>
(function () {
  const box = (el) => { const r = el.getBoundingClientRect(); return {w: r.width, h: r.height}; };
  const all = (sel) => Array.from(document.querySelectorAll(sel));
  const out = {elements: {}, text: {}, svgPaths: {}};
  for (const sel of SELECTORS) {
    out.elements[sel] = all(sel).map(box);
    out.text[sel] = all(sel).map((el) => el.innerText).join("\n");
  }
  for (const sel of SVGS) {
    out.svgPaths[sel] = all(sel + " path").filter((p) => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length;
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

// probe is what probeScript reports.
type probe struct {
	Elements map[string][]struct{ W, H float64 }
	Text     map[string]string
	SVGPaths map[string]int `json:"svgPaths"`
}

var probeRE = regexp.MustCompile(`(?s)<pre id="probe">(.*?)</pre>`)

// TestReportSectionsRender lays the report out in headless Chromium (a copy with a probe
// script; the report itself has none) and checks that each clinical section renders with its
// content: the task and its exclusion flow, the deployed operating point tables, the decision
// curve's SVG with its lines, the reliability bins with their counts (near-empty bins marked),
// the calibration per segment, the survival panel (curves, concordance, horizons, calibration
// at each horizon) and the censoring-sensitivity table and plots.
func TestReportSectionsRender(t *testing.T) {
	bin := needChromium(t)
	root := t.TempDir()
	page, r := browserReport(t, root)
	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	selectors := []string{"#task", "table.rules", "table.flow", "table.flow tr.flow-exclude", "table.splits tr.evaluated",
		"table.operating", "table.at-sensitivity", "table.at-prevalence", "figure.decision svg", "table.decision",
		"table.bins", "tr.small-bin", "table.segment-calibration", "#survival", "figure.survival svg", "table.concordance",
		"table.horizons", "table.horizon-calibration", "table.censoring", "figure.censoring svg"}
	svgs := []string{"figure.decision svg", "figure.survival svg"}
	js, _ := json.Marshal(selectors)
	jsv, _ := json.Marshal(svgs)
	script := strings.NewReplacer("SELECTORS", string(js), "SVGS", string(jsv)).Replace(probeScript)
	probePage := filepath.Join(filepath.Dir(page), "probe.html")
	if err := os.WriteFile(probePage, []byte(strings.Replace(string(src), "</body>", script+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := runChromium(t, bin, root, "--dump-dom", "--virtual-time-budget=5000", "--window-size=1280,2000", "file://"+probePage)
	m := probeRE.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("no probe in the rendered page (%d bytes)", len(dom))
	}
	var p probe
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &p); err != nil {
		t.Fatal(err)
	}
	smallBins := 0
	for _, m := range r.Models {
		for _, cs := range []CalibrationSummary{m.Metrics.Calibration, m.Calibrated.Calibration} {
			for _, b := range cs.Uniform {
				if b.Count < MinBinRows {
					smallBins++
				}
			}
		}
	}
	for sel, want := range map[string]int{"#task": 1, "table.rules": 1, "table.flow": 1, "table.flow tr.flow-exclude": 3,
		"table.splits tr.evaluated": 1, "table.operating": 2, "table.at-sensitivity": 2, "table.at-prevalence": 2,
		"figure.decision svg": 1, "table.decision": 1, "table.bins": 4, "tr.small-bin": smallBins, "table.segment-calibration": 2,
		"#survival": 1, "figure.survival svg": 2, "table.concordance": 2, "table.horizons": 2, "table.horizon-calibration": 6,
		"table.censoring": 1, "figure.censoring svg": 2} {
		boxes := p.Elements[sel]
		if len(boxes) != want {
			t.Errorf("%s: %d rendered, want %d", sel, len(boxes), want)
		}
		for i, b := range boxes {
			if b.W < 50 || b.H < 10 {
				t.Errorf("%s %d: box %vx%v: not rendered", sel, i, b.W, b.H)
			}
		}
	}
	if b := p.Elements["figure.decision svg"]; len(b) == 1 && (b[0].W < 400 || b[0].H < 250) {
		t.Errorf("decision curve drawn at %vx%v", b[0].W, b[0].H)
	}
	// Grid, axes, two models' curves, treat all, treat none, the deployed thresholds.
	if n := p.SVGPaths["figure.decision svg"]; n < 8 {
		t.Errorf("the decision curve has %d visible paths", n)
	}
	// Per model: each risk group's curve and band, the horizons.
	if n, groups := p.SVGPaths["figure.survival svg"], len(r.Models[0].Survival.Groups); n < 2*(2*groups+3) {
		t.Errorf("the survival figures have %d visible paths for %d risk groups each", n, groups)
	}
	for sel, want := range map[string][]string{
		"table.flow":      {"subjects in the dataset", "labels in the cohort", strconv.Itoa(r.Task.Flow[len(r.Task.Flow)-1].Remaining)},
		"table.operating": {"number needed to evaluate", fmtEst(r.Models[0].Operating.NNE, 1)},
		"tr.small-bin":    {"(< 10)"},
		"#task":           {"ICD10/E11", "365d"},
		"table.horizons":  {"1y", "2y", "5y", fmtNum(r.Models[0].Survival.AtHorizon[0].AUC, 3)},
		"table.censoring": {"365d *", "drop-lost", "0.655 (0.573–0.730)"},
	} {
		for _, w := range want {
			if !strings.Contains(p.Text[sel], w) {
				t.Errorf("%s shows no %q", sel, w)
			}
		}
	}
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
