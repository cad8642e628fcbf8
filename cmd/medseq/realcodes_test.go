package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/internal/testpy"
	"github.com/medseq/medseq/modelrepo"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
	"github.com/medseq/medseq/tokenize"
)

// rewriteCodes writes the dataset at src again at dst with every code mapped through f (and
// extra events added per subject by add, when not nil), splits and code metadata kept.
func rewriteCodes(t *testing.T, src, dst string, f func(string) string, add func(s data.Subject, codes *data.Codes) []data.Event) {
	t.Helper()
	ds, err := data.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	splits, err := ds.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	w, err := data.NewDatasetWriter(dst, false)
	if err != nil {
		t.Fatal(err)
	}
	if cm, err := ds.CodeMetadata(); err == nil {
		for i := range cm {
			cm[i].Code = f(cm[i].Code)
			for j := range cm[i].ParentCodes {
				cm[i].ParentCodes[j] = f(cm[i].ParentCodes[j])
			}
		}
		w.SetCodeMetadata(cm)
	}
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		ev := make([]data.Event, len(s.Events))
		for i, e := range s.Events {
			ev[i] = e
			ev[i].Code = w.Codes.ID(f(ds.Codes.Name(e.Code)))
		}
		if add != nil {
			ev = append(ev, add(data.Subject{ID: s.ID, Events: s.Events}, w.Codes)...)
			data.SortEvents(ev)
		}
		return w.Add(splits[s.ID], data.Subject{ID: s.ID, Events: ev})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(data.NewManifest("test: codes rewritten", nil)); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("medseq %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

var ratesRe = regexp.MustCompile(`codes read by the tokenizer: whole [0-9.]+% \((\d+)\), pieced [0-9.]+% \((\d+)\), \[UNK\] [0-9.]+% \((\d+)\) of (\d+) codes`)

// predictRates runs medseq predict and returns the whole, pieced, unknown and total codes it
// reports.
func predictRates(t *testing.T, args ...string) [4]int {
	t.Helper()
	out := mustRun(t, append([]string{"predict"}, args...)...)
	m := ratesRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("predict reports no rates:\n%s", out)
	}
	var r [4]int
	for i := range r {
		r[i], _ = strconv.Atoi(m[i+1])
	}
	if r[0]+r[1]+r[2] != r[3] {
		t.Fatalf("rates %v do not add up", r)
	}
	if !strings.Contains(out, "in training (train split): whole") {
		t.Errorf("predict does not show the training rates:\n%s", out)
	}
	return r
}

// TestRealWorldCodesEndToEnd runs the whole pipeline on a MEDS dataset whose codes are spelled
// as real ETL outputs spell them: cohort, tokenizer (HuggingFace parity), XGBoost (featmap in
// Python's xgboost), a tiny BERT, offline predict, then serving (Predict, ModelInfer's one-line
// codes, the CLI client, /metrics); and it plants foreign codes and checks the three rates.
func TestRealWorldCodesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models")
	}
	dir := t.TempDir()
	meds, cohort, tokDir := filepath.Join(dir, "meds"), filepath.Join(dir, "cohort"), filepath.Join(dir, "tok")
	models := filepath.Join(dir, "models")
	xgbDir, bertDir := filepath.Join(models, "etl-xgboost", "1"), filepath.Join(models, "etl-bert", "1")
	// Codes as real ETLs spell them (synth.ETLCode): spaces, a trailing blank, units, special names.
	mustRun(t, "data", "synth", "--out", meds, "--subjects", "1500", "--seed", "11", "--code-style", "etl")
	out := mustRun(t, "data", "cohort", "--meds", meds, "--target", synth.ETLCode("ICD10/E11")+","+synth.ETLCode("SNOMED/44054006"), "--out", cohort)
	if !strings.Contains(out, "the best any model can do") {
		t.Errorf("data cohort on etl codes with the oracle's targets shows no oracle AUROC:\n%s", out)
	}

	// Tokenizer: every code one token, in its text form.
	out = mustRun(t, "tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tokDir)
	for _, want := range []string{"codes on training  whole", "codes on tuning    whole"} {
		if !strings.Contains(out, want) {
			t.Errorf("tokenize build output lacks %q:\n%s", want, out)
		}
	}
	tok, cfg, err := tokenize.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrainRates == nil || cfg.TrainRates.Whole == 0 || cfg.TrainRates.Occurrences != cfg.TrainRates.Whole+cfg.TrainRates.Pieced+cfg.TrainRates.Unknown {
		t.Errorf("medseq_tokenizer.json training rates %+v", cfg.TrainRates)
	}
	vocab, err := os.ReadFile(filepath.Join(tokDir, tokenize.VocabFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(vocab), "\n"), "\n") {
		if line == "" || strings.ContainsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\u00a0' }) {
			t.Fatalf("vocab.txt line %d %q is empty or holds whitespace", i+1, line)
		}
	}
	for _, c := range []string{"[MASK]", "x[SEP]y", "DIAGNOSIS//ICD 10//I10", synth.ETLCode("LOINC/4548-4")} {
		id, ok := tok.WholeCode(c)
		if !ok || tok.Vocab.IsSpecial(id) {
			t.Errorf("code %q is not one ordinary token (%v)", c, tok.CodePieces(c))
			continue
		}
		if back, whole := tok.Code(id); !whole || back != c {
			t.Errorf("token %d reads back as %q, want %q", id, back, c)
		}
	}
	if !strings.Contains(string(vocab), "\nCONDITION//SNOMED%20CT//") || !strings.Contains(string(vocab), "\n%5BMASK]\n") {
		t.Errorf("vocab.txt lacks the text forms of codes with spaces or special names")
	}
	// tokenize encode reads text forms and writes tokens, one line per subject.
	line := data.CodeText("[MASK]") + " " + data.CodeText("DIAGNOSIS//ICD 10//I10") + "\t" + data.CodeText("READ/C10..")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"tokenize", "encode", "--tokenizer", tokDir, "--tokens"},
		&env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(line + "\n")}); code != 0 {
		t.Fatalf("tokenize encode: %s", stderr.String())
	}
	if got, want := strings.TrimSpace(stdout.String()), "[CLS] %5BMASK] DIAGNOSIS//ICD%2010//I10 [UNK] [SEP]"; got != want {
		t.Errorf("tokenize encode --tokens: %q, want %q", got, want)
	}

	// HuggingFace's tokenizers library gives the same ids on the held-out histories.
	t.Run("huggingface", func(t *testing.T) { checkHFOnCohort(t, tok, tokDir, meds, cohort) })

	// XGBoost and a tiny BERT.
	mustRun(t, "train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", tokDir, "--out", xgbDir, "--rounds", "60")
	mustRun(t, "train", "classify", "--meds", meds, "--cohort", cohort, "--tokenizer", tokDir, "--out", bertDir, "--config", "tiny", "--max-steps", "12")
	for _, m := range []string{xgbDir, bertDir} {
		man, err := modelrepo.ReadManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		r := man.TokenRates
		if r == nil || r.Split != data.SplitTrain || r.Codes == 0 || r.Whole+r.Pieced+r.Unknown != r.Codes || r.WholeRate < 0.9 {
			t.Errorf("%s: manifest token rates %+v", m, r)
		}
	}
	checkFeatMap(t, tok, xgbDir)
	t.Run("python xgboost reads featmap.txt", func(t *testing.T) { checkFeatMapPython(t, xgbDir) })

	// Offline predictions, then the same with foreign codes planted in every held-out history (the dataset rewritten):
	// two of an unseen namespace ([UNK]) and one pieced (a known parent, a known suffix).
	pieced := piecedCode(t, tok)
	planted := filepath.Join(dir, "planted")
	rewriteCodes(t, meds, planted, func(c string) string { return c }, func(s data.Subject, codes *data.Codes) []data.Event {
		at := s.Events[len(s.Events)-1].Time
		for _, e := range s.Events {
			if e.Time != data.StaticTime {
				at = e.Time + data.MicrosPerYear // a year after the first timed event: visible at every prediction time
				break
			}
		}
		return []data.Event{{Time: at, Code: codes.ID("READ/C10.."), Value: data.NoValue}, {Time: at, Code: codes.ID("ICD9/250.00"), Value: data.NoValue},
			{Time: at, Code: codes.ID(pieced), Value: data.NoValue}}
	})
	offline := filepath.Join(dir, "xgb_held_out.parquet")
	for _, m := range []string{xgbDir, bertDir} {
		base := []string{"--model", m, "--cohort", cohort, "--split", data.SplitHeldOut, "--force"}
		before := predictRates(t, append(base, "--meds", meds, "--out", filepath.Join(dir, "before.parquet"))...)
		after := predictRates(t, append(base, "--meds", planted, "--allow-mismatch", "--out", filepath.Join(dir, "after.parquet"))...)
		labels := after[3] - before[3]
		if labels <= 0 || labels%3 != 0 || after[0] != before[0] || after[1]-before[1] != labels/3 || after[2]-before[2] != 2*labels/3 {
			t.Errorf("%s: rates before %v, after planting 3 codes per held-out label %v: want the same whole codes, +1 pieced and +2 [UNK] per label", m, before, after)
		}
		if m == xgbDir {
			os.Rename(filepath.Join(dir, "before.parquet"), offline)
		}
	}

	// Serving: the same answers through Predict (codes as they are) and ModelInfer's one-line
	// codes (text forms), the CLI client, and the three kinds counted per model.
	addr, metricsAddr := startServe(t, models)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	preds, err := eval.ReadPredictions(offline)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for _, p := range preds {
		want[fmt.Sprint(p.SubjectID, p.PredictionTime)] = p.Score
	}
	lrs, err := serve.CohortRequests(ctx, meds, cohort, []string{data.SplitHeldOut}, 30, "etl-xgboost")
	if err != nil || len(lrs) == 0 {
		t.Fatalf("requests: %d, %v", len(lrs), err)
	}
	pc := medseqv1.NewPredictorClient(cc)
	var reqs []*medseqv1.PredictRequest
	withSpace := 0
	for _, lr := range lrs {
		for _, e := range lr.Request.Events {
			if strings.ContainsAny(e.Code, " \u00a0") {
				withSpace++
			}
		}
		resp, err := pc.Predict(ctx, lr.Request)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[fmt.Sprint(lr.Label.SubjectID, lr.Label.PredictionTime)]
		if !ok || math.Abs(resp.Probability-w) > 1e-6 {
			t.Fatalf("subject %d: served %v, offline %v (%v)", lr.Label.SubjectID, resp.Probability, w, ok)
		}
		reqs = append(reqs, lr.Request)
	}
	if withSpace == 0 {
		t.Error("no served history holds a code with a space: the test does not test")
	}
	ir := serve.InferRequest("etl-xgboost", "", reqs)
	if len(ir.Inputs[0].Shape) != 1 {
		// Values force the [batch, length] form; send the one-line form too, without them.
		for _, r := range reqs {
			for _, e := range r.Events {
				e.NumericValue = nil
			}
		}
		ir = serve.InferRequest("etl-xgboost", "", reqs)
	}
	iresp, err := inferencepb.NewGRPCInferenceServiceClient(cc).ModelInfer(ctx, ir)
	if err != nil {
		t.Fatalf("ModelInfer with one-line codes of text forms: %v", err)
	}
	probs, err := serve.RawFP32(iresp, serve.OutputProbability)
	if err != nil || len(probs) != len(lrs) {
		t.Fatalf("ModelInfer probabilities %v: %v", probs, err)
	}
	for i, lr := range lrs { // the model reads no values: the same answers without them
		if w := want[fmt.Sprint(lr.Label.SubjectID, lr.Label.PredictionTime)]; math.Abs(float64(probs[i])-w) > 1e-6 {
			t.Fatalf("ModelInfer subject %d: %v, offline %v", lr.Label.SubjectID, probs[i], w)
		}
	}
	var cout syncBuf
	ce := &env{stdout: &cout, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	codes := "MEDS_BIRTH@1960-01-01 " + serve.ItemCode("DIAGNOSIS//ICD 10//I10") + "@2018-02-03 " + serve.ItemCode(synth.ETLCode("LOINC/4548-4")) + "@2019-01-01=6.1 " +
		serve.ItemCode("[MASK]") + "@2019-02-02 READ/C10..@2019-03-03"
	if err := runPredictClient(context.Background(), ce, []string{"--addr", addr, "--name", "etl-bert", "--codes", codes,
		"--prediction-time", "2021-01-01", "--sex", "F"}); err != nil {
		t.Fatalf("predict --codes %q: %v", codes, err)
	}
	if !strings.Contains(cout.String(), "probability") {
		t.Errorf("client output %q", cout.String())
	}
	body := scrape(t, metricsAddr)
	for _, w := range []string{
		`medseq_codes_total{kind="whole",model="etl-xgboost",version="1"}`,
		`medseq_codes_total{kind="unknown",model="etl-bert",version="1"} 1`,
		`medseq_model_training_code_share{kind="whole",model="etl-bert",version="1"}`,
	} {
		if !strings.Contains(body, w) {
			var got []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "medseq_codes_total") || strings.HasPrefix(l, "medseq_model_training_code_share") {
					got = append(got, l)
				}
			}
			t.Errorf("/metrics lacks %s; it has\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// startServe runs medseq serve on loopback until the test ends and returns its gRPC and
// metrics addresses.
func startServe(t *testing.T, models string) (string, string) {
	t.Helper()
	var stdout, logs syncBuf
	e := &env{stdout: &stdout, stderr: io.Discard, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, e, []string{"--models", models, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--poll", "0"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
	})
	re, mre := regexp.MustCompile(`serving .* on (127\.0\.0\.1:\d+)`), regexp.MustCompile(`msg=metrics addr=(\S+)`)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m, mm := re.FindStringSubmatch(stdout.String()), mre.FindStringSubmatch(logs.String())
		if m != nil && mm != nil {
			return m[1], mm[1]
		}
	}
	t.Fatalf("server did not start: %q %q", stdout.String(), logs.String())
	return "", ""
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// piecedCode finds a code the tokenizer reads as a known parent and a known suffix piece.
func piecedCode(t *testing.T, tok *tokenize.Tokenizer) string {
	t.Helper()
	toks := tok.Vocab.Tokens()
	for id := range toks[:tok.WholeEnd] {
		parent, whole := tok.Code(int32(id))
		if !whole {
			continue
		}
		for _, suf := range toks[tok.WholeEnd:] {
			if s, ok := strings.CutPrefix(suf, "##"); ok {
				c := parent + data.ParseCodeText(s)
				if _, kind := tok.AppendCode(nil, c); kind == tokenize.CodePieced {
					return c
				}
			}
		}
	}
	t.Fatal("the tokenizer pieces no code")
	return ""
}

// checkFeatMap: featmap.txt is "id name type" separated by tabs, every name one field (XGBoost
// reads it with >>), and top_features.json names codes as the data spells them.
func checkFeatMap(t *testing.T, tok *tokenize.Tokenizer, model string) {
	t.Helper()
	buf, err := os.ReadFile(modelrepo.XGBoostPath(model, "featmap.txt"))
	if err != nil {
		t.Fatal(err)
	}
	spaced := 0
	for i, l := range strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != strconv.Itoa(i) {
			t.Fatalf("featmap.txt line %d %q splits into %q", i+1, l, f)
		}
		if name, ok := strings.CutPrefix(f[1], "count[all]:"); ok && strings.Contains(data.ParseCodeText(name), " ") {
			spaced++
		}
	}
	if spaced == 0 {
		t.Error("no featmap name stands for a code with a space")
	}
	var top []struct {
		Feature, Code string
		Gain          float64
	}
	tb, err := os.ReadFile(modelrepo.TopFeaturesPath(model))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(tb, &top); err != nil || len(top) == 0 {
		t.Fatalf("top_features.json: %v", err)
	}
	for _, f := range top {
		if strings.Contains(f.Feature, ":##") {
			t.Errorf("top feature %q is a suffix piece: a pieced code counts toward its parent", f.Feature)
		}
		if i := strings.IndexByte(f.Feature, ':'); i > 0 && f.Code != "" && data.CodeText(f.Code) != f.Feature[i+1:] {
			t.Errorf("top feature %q names code %q", f.Feature, f.Code)
		}
	}
}

// checkFeatMapPython loads model.json in Python's xgboost and reads the gains through
// featmap.txt: every feature the model splits on gets its name from the file.
func checkFeatMapPython(t *testing.T, model string) {
	py := testpy.Require(t, "python3-xgboost", "xgboost")
	script := `import json, sys, xgboost as xgb
b = xgb.Booster(model_file=sys.argv[1])
fmap = sys.argv[2]
names = [l.split("\t")[1] for l in open(fmap, encoding="utf-8").read().splitlines()]
gain = b.get_score(fmap=fmap, importance_type="gain")
assert gain, "no gains"
bad = [k for k in gain if k not in names]
assert not bad, bad[:5]
pieces = [k for k in gain if ":##" in k]
assert not pieces, ("a suffix piece is a feature the model uses", pieces[:5])
dump = b.get_dump(fmap=fmap)
assert any("count[" in d for d in dump)
print(json.dumps(sorted(gain, key=gain.get, reverse=True)[:5]))`
	cmd := exec.Command(py, "-c", script, modelrepo.XGBoostPath(model, "model.json"), modelrepo.XGBoostPath(model, "featmap.txt"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python xgboost: %v\n%s", err, out)
	}
	var top []string
	if err := json.Unmarshal(bytes.TrimSpace(out), &top); err != nil || len(top) == 0 {
		t.Fatalf("python output %q: %v", out, err)
	}
	t.Logf("Python's top features by gain: %q", top)
}

// checkHFOnCohort encodes the held-out histories, written as text forms, with HuggingFace's
// tokenizers (Node) and with tokenize.EncodeText and the training path (CodeMap.Encode).
func checkHFOnCohort(t *testing.T, tok *tokenize.Tokenizer, tokDir, meds, cohortDir string) {
	hfDir := filepath.Join("..", "..", "tokenize", "testdata", "hf")
	node, err := exec.LookPath("node")
	if _, errPkg := os.Stat(filepath.Join(hfDir, "node_modules", "tokenizers", "package.json")); err != nil || errPkg != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: node or the tokenizers package is missing (scripts/hf-deps.sh)")
		}
		t.Skip("node or the tokenizers package is missing (scripts/hf-deps.sh)")
	}
	c, err := data.LoadCohort(cohortDir)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var ours [][]int32
	o := tokenize.Options{MaxLen: tok.MaxLen}
	err = c.Sequences(context.Background(), ds, []string{data.SplitHeldOut}, func(s data.Sequence) error {
		words := make([]string, len(s.Events))
		for i, e := range s.Events {
			words[i] = data.CodeText(ds.Codes.Name(e.Code))
		}
		line := strings.Join(words, " ")
		ids := tok.EncodeText(line, o).IDs
		if enc := tok.NewCodeMap(ds.Codes).Encode(tokenize.Input{Events: s.Events, Birth: data.StaticTime}, o); !slices.Equal(enc.IDs, ids) {
			return fmt.Errorf("subject %d: the text path and the training path differ", s.Label.SubjectID)
		}
		lines, ours = append(lines, line), append(ours, ids)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(hfDir, "encode.js"), filepath.Join(tokDir, tokenize.HFFile), corpus)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node encode.js: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("HuggingFace encoded %d lines, we %d", len(got), len(lines))
	}
	for i, g := range got {
		var ids []int32
		for _, f := range strings.Fields(g) {
			n, _ := strconv.Atoi(f)
			ids = append(ids, int32(n))
		}
		if !slices.Equal(ids, ours[i]) {
			t.Fatalf("line %d: HuggingFace %v, medseq %v\n%q", i+1, ids, ours[i], lines[i])
		}
	}
	t.Logf("%d held-out histories encode identically", len(lines))
}
