package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeFlags(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	for _, args := range [][]string{
		{},
		{"--models", t.TempDir(), "--tls-cert", "a.pem"},
		{"--models", t.TempDir(), "--client-ca", "ca.pem"},
		{"--models", t.TempDir(), "--version-policy", "a=1,b"},
		{"--models", t.TempDir(), "--gap", "soon"},
		{"--models", t.TempDir(), "--dynamic-batch-kinds", "bert,gpt"},
		// D12: a zero or negative limit is refused, never silently the default.
		{"--models", t.TempDir(), "--max-codes", "0"},
		{"--models", t.TempDir(), "--max-codes", "-5"},
		{"--models", t.TempDir(), "--max-request-subjects", "0"},
		{"--models", t.TempDir(), "--max-message-bytes", "-1"},
		{"--models", t.TempDir(), "--max-inflight-bytes", "0"},
		{"--models", t.TempDir(), "--max-inflight-bytes", "1000", "--max-message-bytes", "4096"},
		{"--models", t.TempDir(), "--max-concurrency", "-1"},
		{"--models", t.TempDir(), "--dynamic-batch-size", "-2"},
		{"--models", t.TempDir(), "--dynamic-batch-delay", "-1ms"},
		{"--models", t.TempDir(), "--poll", "-1s"},
		{"--models", t.TempDir(), "--drain-timeout", "0s"},
		// D12: --audit-key-file means nothing without --audit.
		{"--models", t.TempDir(), "--audit-key-file", "key"},
	} {
		var ue usageError
		if err := runServe(context.Background(), e, args); !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	// The deprecated aliases are gone.
	for _, old := range []string{"--max-batch=8", "--batch-max=8", "--batch-delay=1ms", "--batch-kinds=bert"} {
		var ue usageError
		if err := runServe(context.Background(), e, []string{"--models", t.TempDir(), old}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "not defined") {
			t.Errorf("%s: got %v, want an undefined-flag usage error", old, err)
		}
	}
	// --device: an unknown one, and a GPU where there is none, are refused before serving.
	devArgs := [][]string{{"--models", t.TempDir(), "--device", "tpu"}}
	if gpus, _ := bert.DiscoverGPUs(); len(gpus) == 0 {
		devArgs = append(devArgs, []string{"--models", t.TempDir(), "--device", "gpu"})
	}
	for _, args := range devArgs {
		err := runServe(context.Background(), e, args)
		if err == nil || !strings.Contains(err.Error(), "device") {
			t.Errorf("%v: %v, want an error naming the device", args, err)
		}
		if err := runPredict(context.Background(), e, append([]string{"--model", "m", "--meds", "d", "--cohort", "l", "--out", "o.csv"}, args[2:]...)); err == nil || !strings.Contains(err.Error(), "device") {
			t.Errorf("predict %v: %v, want an error naming the device", args[2:], err)
		}
	}
	for _, tc := range []struct {
		flag string
		want []string
	}{{"bert", []string{"bert"}}, {"bert, xgboost", []string{"bert", "xgboost"}}, {"all", nil}} {
		if got, err := parseBatchKinds(tc.flag); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("--dynamic-batch-kinds %q: %v, %v; want %v", tc.flag, got, err, tc.want)
		}
	}
	var ue usageError
	if err := runPredictClient(context.Background(), e, []string{"--addr", "127.0.0.1:1"}); !errors.As(err, &ue) {
		t.Errorf("predict client without --name: %v", err)
	}
	// D9: the client refuses an inline value that is not a finite number, naming the item.
	err := runPredictClient(context.Background(), e, []string{"--addr", "127.0.0.1:1", "--name", "m", "--codes", "A@2020-01-01=1 B@2020-01-01=abc"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "item 2") {
		t.Errorf("--codes with a bad value: %v", err)
	}
	// A shared token is refused (D12), naming the lines and not the token.
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("a s3cret-token-0123456789\nb s3cret-token-0123456789\n"), 0o600)
	if err := runServe(context.Background(), e, []string{"--models", t.TempDir(), "--tokens", tokens}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("shared token: %v", err)
	}
}

// TestServeSingleModelFlags: --model-dir and --model-name serve one version folder (KServe's
// /mnt/models), --grpc-port listens on every interface; mixed or partial forms are usage
// errors naming the flags.
func TestServeSingleModelFlags(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		args                    []string
		models, name, ver, addr string
	}{
		{[]string{"--models", "repo"}, "repo", "", "", "127.0.0.1:8500"},
		{[]string{"--models", "repo", "--grpc-port", "9000"}, "repo", "", "", ":9000"},
		{[]string{"--model-dir", "/mnt/models", "--model-name", "t2d", "--grpc-port", "8081"}, "/mnt/models", "t2d", "1", ":8081"},
		{[]string{"--model-dir", "/mnt/models", "--model-name", "t2d", "--model-version", "4", "--addr", "127.0.0.1:0"},
			"/mnt/models", "t2d", "4", "127.0.0.1:0"},
	} {
		o, _, err := serveFlags(e, tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if o.Models != tc.models || o.ModelName != tc.name || o.ModelVersion != tc.ver || o.Addr != tc.addr {
			t.Errorf("%v: models %q name %q version %q addr %q", tc.args, o.Models, o.ModelName, o.ModelVersion, o.Addr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--models", "repo", "--model-dir", "/mnt/models", "--model-name", "t2d"}, "one or the other"},
		{[]string{"--model-dir", "/mnt/models"}, "--model-dir and --model-name go together"},
		{[]string{"--model-name", "t2d"}, "--model-dir and --model-name go together"},
		{[]string{"--models", "repo", "--model-version", "2"}, "one or the other"},
		{[]string{"--model-dir", "/mnt/models", "--model-name", "t2d", "--model-version", "latest"}, "--model-version"},
		{[]string{"--models", "repo", "--grpc-port", "8081", "--addr", ":8081"}, "--addr and --grpc-port"},
		{[]string{"--models", "repo", "--grpc-port", "0"}, "--grpc-port"},
		{[]string{"--models", "repo", "--grpc-port", "70000"}, "--grpc-port"},
		{[]string{"--grpc-port", "8081"}, "--models"},
	} {
		var ue usageError
		_, _, err := serveFlags(e, tc.args)
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %q", tc.args, err, tc.want)
		}
	}
}

// TestServeAndPredictClient trains the demo baseline, serves it on loopback and scores one
// subject with `medseq predict --addr`.
func TestServeAndPredictClient(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	out := t.TempDir()
	if code, _, stderr := runCmd(t, "demo", "--out", out, "--subjects", "1000", "--bert=false"); code != 0 {
		t.Fatalf("demo: %s", stderr)
	}
	var stdout syncBuf
	e := &env{stdout: &stdout, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	go func() {
		done <- runServe(ctx, e, []string{"--models", filepath.Join(out, demoModels), "--addr", "127.0.0.1:0", "--metrics-addr", "", "--poll", "0",
			"--audit", auditPath})
	}()
	re := regexp.MustCompile(`serving .* on (127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("server did not start: %q", stdout.String())
	}
	var cout syncBuf
	ce := &env{stdout: &cout, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	err := runPredictClient(context.Background(), ce, []string{"--addr", addr, "--name", "t2d-xgboost",
		"--codes", "MEDS_BIRTH@1960-01-01 ICD10/I10@2018-02-03 SNOMED/38341003@2019-04-05T10:00:00Z", "--prediction-time", "2021-01-01",
		"--birth-date", "1960-01-01", "--sex", "F"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cout.String(), "probability") || !strings.Contains(cout.String(), "version 1") {
		t.Fatalf("client output %q", cout.String())
	}
	err = runPredictClient(context.Background(), ce, []string{"--addr", addr, "--name", "nope", "--codes", "A@2020-01-01", "--prediction-time", "2021-01-01"})
	if err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("unknown model: %v", err)
	}
	// D6: a real SIGHUP (SIGHUP's default would kill this test process) with a stream open:
	// the audit log moves to the new file, the stream and the server go on.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, err := medseqv1.NewPredictorClient(cc).PredictStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req := &medseqv1.PredictRequest{ModelName: "t2d-xgboost", PredictionTime: "2021-01-01", BirthDate: "1960-01-01", Sex: "F",
		Events: serve.ParseCodes("ICD10/I10@2018-02-03")}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	checkSingleModelServe(t, filepath.Join(out, demoModels, "t2d-xgboost", "1"), req, first)
	if err := os.Rename(auditPath, auditPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reopen is asynchronous: send on the open stream until a record lands in the new file.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := st.Send(req); err != nil {
			t.Fatalf("stream after SIGHUP: %v", err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream after SIGHUP: %v", err)
		}
		if b, _ := os.ReadFile(auditPath); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audit log was not reopened after SIGHUP")
		}
	}
	st.CloseSend()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not drain")
	}
}

// checkSingleModelServe serves one version folder as KServe runs the runtime (--model-dir,
// --model-name, --grpc-port) and checks that it is SERVING on grpc.health.v1 and answers req,
// sent to its own name, as the repository server answered it (want).
func checkSingleModelServe(t *testing.T, dir string, req *medseqv1.PredictRequest, want *medseqv1.PredictResponse) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	var stdout syncBuf
	e := &env{stdout: &stdout, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, e, []string{"--model-dir", dir, "--model-name", "kserve-t2d", "--grpc-port", strconv.Itoa(port),
			"--metrics-addr", "", "--poll", "0"})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("single-model server: %v", err)
		}
	}()
	cc, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && st.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("single-model server on --grpc-port %d: health %v, %v; output %q", port, st, err, stdout.String())
		}
	}
	one := proto.Clone(req).(*medseqv1.PredictRequest)
	one.ModelName = "kserve-t2d"
	got, err := medseqv1.NewPredictorClient(cc).Predict(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if got.ModelName != "kserve-t2d" || got.ModelVersion != "1" || got.Probability != want.Probability ||
		got.Decision != want.Decision {
		t.Errorf("single-model answer %s %s %v %v; the repository server's %s %s %v %v", got.ModelName, got.ModelVersion,
			got.Probability, got.Decision, want.ModelName, want.ModelVersion, want.Probability, want.Decision)
	}
}

// checkServedBERT serves the model repository models (one BERT, "bert") with medseq serve's
// defaults, sends concurrent Predict calls for held-out subjects and checks that each raw
// score is what training predicted for that subject (want, by subject and prediction time)
// and that the calls were scored in batches (the default batches BERT calls).
func checkServedBERT(t *testing.T, models, meds, cohort string, want map[[2]int64]float64) {
	t.Helper()
	var stdout, logs syncBuf
	e := &env{stdout: &stdout, stderr: io.Discard, log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, e, []string{"--models", models, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--poll", "0"})
	}()
	addrRe := regexp.MustCompile(`serving .* on (127\.0\.0\.1:\d+)`)
	metricsRe := regexp.MustCompile(`msg=metrics addr=(127\.0\.0\.1:\d+)`)
	var addr, maddr string
	for deadline := time.Now().Add(30 * time.Second); (addr == "" || maddr == "") && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := addrRe.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
		if m := metricsRe.FindStringSubmatch(logs.String()); m != nil {
			maddr = m[1]
		}
	}
	if addr == "" || maddr == "" {
		t.Fatalf("server did not start: %q %q", stdout.String(), logs.String())
	}
	reqs, err := serve.CohortRequests(ctx, meds, cohort, []string{data.SplitHeldOut}, 40, "bert")
	if err != nil || len(reqs) == 0 {
		t.Fatalf("requests: %d, %v", len(reqs), err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// Ready once the model has loaded (its own health service).
	hc := healthpb.NewHealthClient(cc)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "medseq.v1.Predictor/bert"})
		if err == nil && st.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the BERT did not load: %v %v\n%s", st, err, logs.String())
		}
	}
	pc := medseqv1.NewPredictorClient(cc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst float64
	for range 3 {
		for _, r := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := pc.Predict(ctx, r.Request)
				if err != nil {
					t.Error(err)
					return
				}
				w, ok := want[[2]int64{r.Label.SubjectID, r.Label.PredictionTime}]
				if !ok {
					t.Errorf("subject %d has no training prediction", r.Label.SubjectID)
					return
				}
				mu.Lock()
				worst = math.Max(worst, math.Abs(resp.RawScore-w))
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if worst > 1e-5 {
		t.Errorf("served BERT scores differ from training's by up to %.3g", worst)
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metric := func(name string) float64 {
		m := regexp.MustCompile(name + `\{method="Predict",model="bert"\} (\S+)`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("metrics lack %s for the BERT", name)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	calls, batches := metric("medseq_batch_size_sum"), metric("medseq_batch_size_count")
	if calls != float64(3*len(reqs)) || batches >= calls {
		t.Errorf("BERT calls were not batched: %v calls in %v scoring calls", calls, batches)
	}
	t.Logf("served BERT: %v concurrent calls in %v batches, max |raw score - training| %.3g", calls, batches, worst)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
