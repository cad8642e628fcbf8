// Command soak runs a bounded mixed load against a real `medseq serve` process on loopback
// and checks what a careful operator expects of it (issue 14): every answer is the offline
// prediction (to 1e-6), every bad request gets its documented status, nothing is lost
// (the audit log holds exactly the subjects answered), memory stays bounded (the server's RSS,
// sampled from /proc), and the server survives model reloads (new versions copied in, one
// removed) and SIGHUP (the audit log rotated: no record lost), then drains on SIGTERM and
// exits 0. Used by scripts/soak.sh (`make soak`); everything stays on 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/eval"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
)

const (
	token      = "soak-token-0123456789abcdef"
	otherToken = "soak-token-other-0123456789"
	tol        = 1e-6
)

type config struct {
	bin, models, model, meds, cohort, offline, out string
	n, workers, maxCalls                           int
	duration                                       time.Duration
	maxRSSMB                                       int
	inflight                                       int64
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/medseq", "the medseq binary")
	flag.StringVar(&c.models, "models", "", "model repository with MODEL/1 (versions are copied in and removed "+
		"during the run)")
	flag.StringVar(&c.model, "model", "t2d-xgboost", "model name")
	flag.StringVar(&c.meds, "meds", "", "MEDS dataset")
	flag.StringVar(&c.cohort, "cohort", "", "cohort folder")
	flag.StringVar(&c.offline, "offline", "", "offline predictions of MODEL/1 (medseq predict --out)")
	flag.StringVar(&c.out, "out", "", "folder for the server's logs, tokens and audit log")
	flag.IntVar(&c.n, "n", 200, "labelled subjects whose answers are checked")
	flag.IntVar(&c.workers, "workers", 8, "concurrent callers")
	flag.IntVar(&c.maxCalls, "max-calls", 150_000, "most calls in the load phase")
	flag.DurationVar(&c.duration, "duration", time.Minute, "length of the load phase")
	flag.IntVar(&c.maxRSSMB, "max-rss-mb", 450, "the server's resident memory may not exceed this (MB)")
	flag.Int64Var(&c.inflight, "max-inflight-bytes", 128<<20, "the server's --max-inflight-bytes")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
}

// expected is a subject's offline answer.
type expected struct{ calibrated, raw float64 }

// tally counts outcomes by kind and checks them; the first failures are kept.
type tally struct {
	mu       sync.Mutex
	counts   map[string]int
	failures []string
	nfail    int
	answered atomic.Int64 // subjects answered OK (each is one audit record)
	versions sync.Map     // model versions that answered
}

func (t *tally) add(kind string) {
	t.mu.Lock()
	t.counts[kind]++
	t.mu.Unlock()
}

func (t *tally) fail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nfail++
	if len(t.failures) < 20 {
		t.failures = append(t.failures, fmt.Sprintf(format, args...))
	}
}

func run(c config) error {
	if c.models == "" || c.meds == "" || c.cohort == "" || c.offline == "" || c.out == "" {
		return errors.New("--models, --meds, --cohort, --offline and --out are required")
	}
	ctx := context.Background()
	reqs, exps, err := labelledRequests(ctx, c)
	if err != nil {
		return err
	}
	// The run adds versions 2 and 3 and removes 2: it starts from version 1 alone.
	if vs, _ := filepath.Glob(filepath.Join(c.models, c.model, "*")); len(vs) != 1 || filepath.Base(vs[0]) != "1" {
		return fmt.Errorf("%s must hold version 1 only, has %v", filepath.Join(c.models, c.model), vs)
	}
	if old, _ := filepath.Glob(filepath.Join(c.out, "audit.jsonl*")); len(old) > 0 {
		return fmt.Errorf("%s holds audit logs of an earlier run", c.out)
	}
	srv, err := startServer(c)
	if err != nil {
		return err
	}
	defer srv.kill()
	fmt.Printf("soak: server pid %d on %s, %d subjects, %d callers for %v (at most %d calls), RSS bound %d MB\n",
		srv.cmd.Process.Pid, srv.addr, len(reqs), c.workers, c.duration, c.maxCalls, c.maxRSSMB)

	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := waitServing(ctx, cc, c.model); err != nil {
		return err
	}
	rss := newSampler(srv.cmd.Process.Pid)
	defer rss.stop()
	time.Sleep(300 * time.Millisecond)
	m := memory{base: rss.current()}

	t := &tally{counts: map[string]int{}}
	l := &loader{cc: cc, model: c.model, reqs: reqs, exps: exps, t: t}
	loadPhase(ctx, c, srv, l)
	m.peakLoad = rss.max()
	if err := drainPhase(ctx, c, srv, l); err != nil {
		return err
	}
	m.peak = rss.max()
	return verify(c, t, m)
}

// labelledRequests are the Predict requests of the cohort's labels with their offline
// answers.
func labelledRequests(ctx context.Context, c config) ([]*medseqv1.PredictRequest, []expected, error) {
	want, err := readOffline(c.offline)
	if err != nil {
		return nil, nil, err
	}
	labelled, err := serve.CohortRequests(ctx, c.meds, c.cohort, nil, c.n, c.model)
	if err != nil {
		return nil, nil, err
	}
	var reqs []*medseqv1.PredictRequest
	var exps []expected
	for _, l := range labelled {
		w, ok := want[[2]int64{l.Label.SubjectID, l.Label.PredictionTime}]
		if !ok {
			return nil, nil, fmt.Errorf("subject %d has no offline prediction", l.Label.SubjectID)
		}
		reqs, exps = append(reqs, l.Request), append(exps, w)
	}
	if len(reqs) == 0 {
		return nil, nil, errors.New("no labels")
	}
	return reqs, exps, nil
}

// loadPhase runs the callers until the duration or the call count runs out, while the chaos
// goroutine copies versions in, removes one, and rotates the audit log with SIGHUP.
func loadPhase(ctx context.Context, c config, srv *server, l *loader) {
	loadCtx, stopLoad := context.WithTimeout(ctx, c.duration)
	defer stopLoad()
	var calls atomic.Int64
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 14))
			for loadCtx.Err() == nil && calls.Add(1) <= int64(c.maxCalls) {
				l.call(rng, false)
			}
		}()
	}
	chaosErr := make(chan error, 1)
	go func() { chaosErr <- chaos(loadCtx, c, srv, l) }()
	wg.Wait()
	stopLoad()
	if err := <-chaosErr; err != nil {
		l.t.fail("chaos: %v", err)
	}
}

// drainPhase sends SIGTERM with callers running: calls in flight are answered, later ones
// refused (UNAVAILABLE); nothing else. The server must exit 0 having drained.
func drainPhase(ctx context.Context, c config, srv *server, l *loader) error {
	termCtx, stopTerm := context.WithCancel(ctx)
	defer stopTerm()
	var inDrain atomic.Bool
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 15))
			for termCtx.Err() == nil {
				l.call(rng, inDrain.Load())
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	inDrain.Store(true)
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	exitErr := srv.wait(60 * time.Second)
	stopTerm()
	wg.Wait()
	if exitErr != nil {
		l.t.fail("server exit after SIGTERM: %v", exitErr)
	}
	logs, _ := os.ReadFile(srv.errPath)
	if !strings.Contains(string(logs), "msg=stopped") || strings.Contains(string(logs), "drain timed out") {
		l.t.fail("server did not drain and stop cleanly (see %s)", srv.errPath)
	}
	return nil
}

// memory is the server's resident memory: before the load, its peak during the load and
// its peak overall.
type memory struct {
	base, peakLoad, peak int64
}

// verify checks what the run left: every subject answered is in the audit log (across the
// rotated files) and nothing else is, version 3 answered, memory stayed bounded; it prints
// the summary and returns the failures.
func verify(c config, t *tally, m memory) error {
	audited, err := countAudit(c.out)
	if err != nil {
		return err
	}
	if got := t.answered.Load(); audited != got {
		t.fail("%d subjects answered OK, %d audit records: answers lost or unaudited", got, audited)
	}
	var versions []string
	t.versions.Range(func(k, _ any) bool { versions = append(versions, k.(string)); return true })
	sort.Strings(versions)
	if _, ok := t.versions.Load("3"); !ok {
		t.fail("version 3, copied in during the run, never answered (versions %v)", versions)
	}
	fmt.Printf("soak: RSS baseline %d MB, peak %d MB during load, %d MB overall (bound %d MB); "+
		"versions answering %v; %d subjects answered = %d audit records\n",
		m.base>>20, m.peakLoad>>20, m.peak>>20, c.maxRSSMB, versions, t.answered.Load(), audited)
	if m.peak > int64(c.maxRSSMB)<<20 {
		t.fail("server RSS peaked at %d MB, above %d MB", m.peak>>20, c.maxRSSMB)
	}
	kinds := make([]string, 0, len(t.counts))
	total := 0
	for k, n := range t.counts {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(kinds)
	fmt.Printf("soak: %d calls: %s\n", total, strings.Join(kinds, ", "))
	if t.nfail > 0 {
		return fmt.Errorf("%d failures, the first:\n  %s", t.nfail, strings.Join(t.failures, "\n  "))
	}
	return nil
}

// chaos changes the world under the load: version 2 copied in, the audit log rotated
// (SIGHUP), version 3 copied in, version 2 removed, the audit log rotated again, and a burst
// of oversized calls (the probe's 96 unauthenticated 15 MB subject ids, then authenticated ones).
func chaos(ctx context.Context, c config, srv *server, l *loader) error {
	step := c.duration / 7
	src := filepath.Join(c.models, c.model, "1")
	steps := []func() error{
		func() error { return copyVersion(src, filepath.Join(c.models, c.model), "2") },
		func() error { return rotate(srv, c.out, 1) },
		func() error { return l.burst(ctx) },
		func() error { return copyVersion(src, filepath.Join(c.models, c.model), "3") },
		func() error { return os.RemoveAll(filepath.Join(c.models, c.model, "2")) },
		func() error { return rotate(srv, c.out, 2) },
	}
	for _, f := range steps {
		select {
		case <-ctx.Done():
			return errors.New("the load phase ended before every change was made (raise --duration)")
		case <-time.After(step):
		}
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// copyVersion copies a version folder in as a new one: written under a hidden name, then
// renamed (the repository ignores hidden folders), as a deployment should.
func copyVersion(src, modelDir, version string) error {
	tmp := filepath.Join(modelDir, ".soak-"+version)
	if err := exec.Command("cp", "-r", src, tmp).Run(); err != nil {
		return fmt.Errorf("copy version %s: %w", version, err)
	}
	fmt.Printf("soak: version %s copied in\n", version)
	return os.Rename(tmp, filepath.Join(modelDir, version))
}

// rotate moves the audit log aside, as logrotate does, and sends SIGHUP.
func rotate(srv *server, out string, i int) error {
	p := filepath.Join(out, "audit.jsonl")
	if err := os.Rename(p, fmt.Sprintf("%s.%d", p, i)); err != nil {
		return err
	}
	fmt.Printf("soak: audit log rotated, SIGHUP\n")
	return srv.cmd.Process.Signal(syscall.SIGHUP)
}

func countAudit(out string) (int64, error) {
	files, _ := filepath.Glob(filepath.Join(out, "audit.jsonl*"))
	var n int64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			n++
		}
		fh.Close()
	}
	return n, nil
}

// loader makes the calls, good and bad, and checks each answer.
type loader struct {
	cc    *grpc.ClientConn
	model string
	reqs  []*medseqv1.PredictRequest
	exps  []expected
	t     *tally
}

func authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// check compares an answer with the offline prediction.
func (l *loader) check(what string, i int, version string, prob, raw float64) {
	e := l.exps[i]
	l.t.versions.Store(version, true)
	if math.Abs(prob-e.calibrated) > tol || math.Abs(raw-e.raw) > tol {
		l.t.fail("%s, subject %d, version %s: probability %.9f raw %.9f; offline %.9f raw %.9f", what, i, version, prob, raw,
			e.calibrated, e.raw)
	}
}

// retry makes a call as a well-behaved client does: RESOURCE_EXHAUSTED (the server's
// in-flight memory is taken, as during the burst of 15 MB requests) is retried after a pause,
// up to 50 times; each retry is counted.
func (l *loader) retry(f func() error) error {
	var err error
	for range 50 {
		if err = f(); status.Code(err) != codes.ResourceExhausted {
			return err
		}
		l.t.add("retried after RESOURCE_EXHAUSTED")
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// call makes one call of a kind drawn at random. draining: the server may be going away, so
// UNAVAILABLE (refused or gone) is an answer too, for good calls; other errors still fail.
func (l *loader) call(rng *rand.Rand, draining bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &caller{l: l, ctx: ctx, pc: medseqv1.NewPredictorClient(l.cc), draining: draining}
	i := rng.IntN(len(l.reqs))
	switch k := rng.IntN(100); {
	case k < 50:
		c.predict(i)
	case k < 58:
		c.predictBatch([]int{i, rng.IntN(len(l.reqs)), rng.IntN(len(l.reqs))})
	case k < 64:
		c.modelInfer([]int{i, rng.IntN(len(l.reqs))})
	case k < 96:
		c.bad(badCall((k-64)/4), l.reqs[i])
	default:
		c.health()
	}
}

// caller makes one call and checks its answer.
type caller struct {
	l        *loader
	ctx      context.Context
	pc       medseqv1.PredictorClient
	draining bool
}

// good counts a call that should succeed and reports whether it did; while draining,
// UNAVAILABLE is no failure.
func (c *caller) good(kind string, err error) bool {
	c.l.t.add(kind)
	if err == nil {
		return true
	}
	if !(c.draining && status.Code(err) == codes.Unavailable) {
		c.l.t.fail("%s: %v", kind, err)
	}
	return false
}

// expectCode counts a bad call and checks its status; while draining, UNAVAILABLE is no
// failure.
func (c *caller) expectCode(kind string, err error, want codes.Code) {
	c.l.t.add(kind)
	got := status.Code(err)
	if got != want && !(c.draining && got == codes.Unavailable) {
		c.l.t.fail("%s: %v, want %v", kind, err, want)
	}
}

func (c *caller) predict(i int) {
	var resp *medseqv1.PredictResponse
	err := c.l.retry(func() (err error) { resp, err = c.pc.Predict(authed(c.ctx), c.l.reqs[i]); return err })
	if c.good("Predict", err) {
		c.l.t.answered.Add(1)
		c.l.check("Predict", i, resp.ModelVersion, resp.Probability, resp.RawScore)
	}
}

func (c *caller) predictBatch(idx []int) {
	b := &medseqv1.PredictBatchRequest{ModelName: c.l.model}
	for _, j := range idx {
		b.Requests = append(b.Requests, c.l.reqs[j])
	}
	var resp *medseqv1.PredictBatchResponse
	err := c.l.retry(func() (err error) { resp, err = c.pc.PredictBatch(authed(c.ctx), b); return err })
	if c.good("PredictBatch", err) {
		c.l.t.answered.Add(int64(len(idx)))
		for n, r := range resp.Responses {
			c.l.check("PredictBatch", idx[n], r.ModelVersion, r.Probability, r.RawScore)
		}
	}
}

func (c *caller) modelInfer(idx []int) {
	var batch []*medseqv1.PredictRequest
	for _, j := range idx {
		batch = append(batch, c.l.reqs[j])
	}
	ir := serve.InferRequest(c.l.model, "", batch)
	var resp *inferencepb.ModelInferResponse
	err := c.l.retry(func() (err error) {
		resp, err = inferencepb.NewGRPCInferenceServiceClient(c.l.cc).ModelInfer(authed(c.ctx), ir)
		return err
	})
	if c.good("ModelInfer", err) {
		c.l.t.answered.Add(int64(len(idx)))
		out := map[string][]float32{}
		for _, o := range resp.Outputs {
			out[o.Name] = o.GetContents().GetFp32Contents()
		}
		for n := range idx {
			c.l.check("ModelInfer", idx[n], resp.ModelVersion, float64(out[serve.OutputProbability][n]),
				float64(out[serve.OutputRawScore][n]))
		}
	}
}

// badCall is a kind of bad call, each with its documented status.
type badCall int

const (
	badNoToken badCall = iota
	badUnknownToken
	badGarbage
	badSubjectIDNotUTF8
	badInfiniteValue
	badLongSubjectID
	badUnknownModel
	badInlineValue
)

// bad makes a bad call of kind k from req.
func (c *caller) bad(k badCall, req *medseqv1.PredictRequest) {
	ctx := c.ctx
	predict := func(ctx context.Context, r *medseqv1.PredictRequest) error {
		return c.l.retry(func() error { _, err := c.pc.Predict(ctx, r); return err })
	}
	edited := func(edit func(r *medseqv1.PredictRequest)) *medseqv1.PredictRequest {
		r := proto.Clone(req).(*medseqv1.PredictRequest)
		edit(r)
		return r
	}
	switch k {
	case badNoToken:
		c.expectCode("bad: no token", predict(ctx, req), codes.Unauthenticated)
	case badUnknownToken:
		bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+otherToken+"x")
		c.expectCode("bad: unknown token", predict(bad, req), codes.Unauthenticated)
	case badGarbage:
		err := c.l.retry(func() error { return c.l.raw(authed(ctx), []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}) })
		c.expectCode("bad: garbage bytes", err, codes.InvalidArgument)
	case badSubjectIDNotUTF8:
		b, _ := proto.Marshal(req)
		b = protowire.AppendString(protowire.AppendTag(b, 3, protowire.BytesType), "\xff\xfe") // subject_id not UTF-8
		err := c.l.retry(func() error { return c.l.raw(authed(ctx), b) })
		c.expectCode("bad: subject_id not UTF-8", err, codes.InvalidArgument)
	case badInfiniteValue:
		r := edited(func(r *medseqv1.PredictRequest) {
			v := float32(math.Inf(1))
			r.Events[len(r.Events)-1].NumericValue = &v
		})
		c.expectCode("bad: infinite value", predict(authed(ctx), r), codes.InvalidArgument)
	case badLongSubjectID:
		r := edited(func(r *medseqv1.PredictRequest) { r.SubjectId = strings.Repeat("s", 1000) })
		c.expectCode("bad: long subject_id", predict(authed(ctx), r), codes.InvalidArgument)
	case badUnknownModel:
		r := edited(func(r *medseqv1.PredictRequest) { r.ModelName = strings.Repeat("m", 100) })
		err := predict(authed(ctx), r)
		c.expectCode("bad: unknown model", err, codes.NotFound)
		if err != nil && len(status.Convert(err).Message()) > 200 {
			c.l.t.fail("NotFound echoes %d bytes", len(status.Convert(err).Message()))
		}
	case badInlineValue:
		r := edited(func(r *medseqv1.PredictRequest) {
			r.Events = serve.ParseCodes("ICD10/I10@2019-05-01 LOINC/4548-4@2020-03-01=abc")
		})
		c.expectCode("bad: inline value", predict(authed(ctx), r), codes.InvalidArgument)
	}
}

// health checks the Predictor's health: SERVING, unless draining.
func (c *caller) health() {
	var h *healthpb.HealthCheckResponse
	err := c.l.retry(func() (err error) {
		h, err = healthpb.NewHealthClient(c.l.cc).Check(c.ctx, &healthpb.HealthCheckRequest{Service: serve.PredictorService})
		return err
	})
	c.l.t.add("health")
	if err != nil && !(c.draining && status.Code(err) == codes.Unavailable) {
		c.l.t.fail("health: %v", err)
	} else if err == nil && h.Status != healthpb.HealthCheckResponse_SERVING && !c.draining {
		c.l.t.fail("health: %v", h.Status)
	}
}

// burst sends, at once, 96 unauthenticated Predict calls with a 15 MB subject_id (the
// probe's, which took the server to 1.7 GB) and 16 authenticated ones: the first are refused
// before they are read, the others within the in-flight budget.
func (l *loader) burst(ctx context.Context) error {
	big := proto.Clone(l.reqs[0]).(*medseqv1.PredictRequest)
	big.SubjectId = strings.Repeat("x", 15<<20)
	b, err := proto.Marshal(big)
	if err != nil {
		return err
	}
	fmt.Printf("soak: burst of 96 unauthenticated and 16 authenticated 15 MB requests\n")
	var wg sync.WaitGroup
	for i := range 112 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if i < 96 {
				l.t.add("bad: 15 MB unauthenticated")
				if err := l.raw(cctx, b); status.Code(err) != codes.Unauthenticated {
					l.t.fail("15 MB unauthenticated: %v", err)
				}
				return
			}
			l.t.add("bad: 15 MB authenticated")
			// Refused for its subject_id, or for the budget while the others hold it.
			if err := l.raw(authed(cctx), b); status.Code(err) != codes.InvalidArgument &&
				status.Code(err) != codes.ResourceExhausted {
				l.t.fail("15 MB authenticated: %v", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (l *loader) raw(ctx context.Context, req []byte) error {
	var resp []byte
	return l.cc.Invoke(ctx, "/medseq.v1.Predictor/Predict", &req, &resp, grpc.ForceCodecV2(rawCodec{}))
}

func readOffline(path string) (map[[2]int64]expected, error) {
	preds, err := eval.ReadPredictions(path)
	if err != nil {
		return nil, err
	}
	out := map[[2]int64]expected{}
	for _, p := range preds {
		raw, err := strconv.ParseFloat(p.Attrs[eval.ColRawProbability], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: subject %d: no %s", path, p.SubjectID, eval.ColRawProbability)
		}
		out[[2]int64{p.SubjectID, p.PredictionTime}] = expected{calibrated: p.Score, raw: raw}
	}
	return out, nil
}

// server is the medseq serve process.
type server struct {
	cmd     *exec.Cmd
	addr    string
	errPath string
	done    chan error
}

func startServer(c config) (*server, error) {
	tokens := filepath.Join(c.out, "tokens")
	if err := os.WriteFile(tokens, []byte("soak "+token+"\nother "+otherToken+"\n"), 0o600); err != nil {
		return nil, err
	}
	s := &server{errPath: filepath.Join(c.out, "serve.err"), done: make(chan error, 1)}
	outPath := filepath.Join(c.out, "serve.out")
	stdout, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(s.errPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(c.bin, "serve", "--models", c.models, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--poll", "500ms", "--tokens", tokens, "--audit", filepath.Join(c.out, "audit.jsonl"),
		"--max-inflight-bytes", strconv.FormatInt(c.inflight, 10), "--drain-timeout", "30s")
	s.cmd.Stdout, s.cmd.Stderr = stdout, stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); stdout.Close(); stderr.Close() }()
	re := regexp.MustCompile(`serving .* on (127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(outPath)
		if m := re.FindSubmatch(b); m != nil {
			s.addr = string(m[1])
			return s, nil
		}
		select {
		case err := <-s.done:
			tail, _ := os.ReadFile(s.errPath)
			return nil, fmt.Errorf("server exited (%v):\n%s", err, tail)
		default:
		}
	}
	s.kill()
	return nil, errors.New("server did not start in 60s")
}

func (s *server) wait(d time.Duration) error {
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(d):
		return fmt.Errorf("did not exit within %v", d)
	}
}

func (s *server) kill() {
	select {
	case err := <-s.done:
		s.done <- err
	default:
		_ = s.cmd.Process.Kill()
	}
}

func waitServing(ctx context.Context, cc *grpc.ClientConn, model string) error {
	hc := healthpb.NewHealthClient(cc)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: serve.PredictorService + "/" + model})
		if err == nil && h.Status == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
	}
	return fmt.Errorf("model %s not SERVING within 60s", model)
}

// sampler reads a process's resident memory from /proc every 50 ms.
type sampler struct {
	pid  int
	peak atomic.Int64
	quit chan struct{}
}

func newSampler(pid int) *sampler {
	s := &sampler{pid: pid, quit: make(chan struct{})}
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v := s.current(); v > s.peak.Load() {
				s.peak.Store(v)
			}
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop()      { close(s.quit) }
func (s *sampler) max() int64 { return s.peak.Load() }

// current is VmRSS in bytes (0 once the process is gone).
func (s *sampler) current() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
