package serve

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// rawCall sends req's bytes as they are to method and returns the status.
func rawCall(ctx context.Context, cc *grpc.ClientConn, method string, req []byte) error {
	var resp []byte
	return cc.Invoke(ctx, method, &req, &resp, grpc.ForceCodecV2(rawCodec{}))
}

func requestsTotal(s *Server, method, code string) float64 {
	return metricValue(s.metrics.Requests.WithLabelValues(method, "", code))
}

func writeTokens(t *testing.T, lines string) Tokens {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := LoadTokens(p)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// D5: with tokens, a caller without a valid one makes the server read nothing: the token is
// checked from the headers (the tap) before the request is received. Before, the request
// was read and decoded first (96 such calls with a 15 MB subject_id took 1.7 GB). The failures
// are counted and logged, without the token.
func TestAuthenticatesBeforeReading(t *testing.T) {
	var logBuf logBuffer
	toks := writeTokens(t, "alice s3cret-token-alice-0123\n")
	r := start(t, Config{Models: newRepo(t), Tokens: toks, Log: newTestLogger(&logBuf)})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	big := proto.Clone(heldOut(t, 1)[0].Request).(*medseqv1.PredictRequest)
	big.SubjectId = strings.Repeat("x", 15<<20)
	raw, err := proto.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			switch i % 3 {
			case 1:
				c = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong-token-wrong-token-0")
			case 2:
				c = metadata.AppendToOutgoingContext(ctx, "authorization", "Basic s3cret-token-alice-0123")
			}
			errs[i] = rawCall(c, cc, "/medseq.v1.Predictor/Predict", raw)
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&ms1)
	for i, err := range errs {
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call %d: %v, want Unauthenticated", i, err)
		}
	}
	// Read, each request would have cost at least its 15 MB copy (n x 15 MB = 360 MB).
	if got := ms1.TotalAlloc - ms0.TotalAlloc; got > 120<<20 {
		t.Errorf("%d refused calls allocated %d MB: the requests were read before the token was checked", n, got>>20)
	}
	if got := requestsTotal(r.srv, "Predict", "Unauthenticated"); got != n {
		t.Errorf("medseq_requests_total{code=Unauthenticated} %v, want %d", got, n)
	}
	for reason, want := range map[string]float64{"missing": n / 3, "unknown": n / 3, "malformed": n / 3} {
		if got := metricValue(r.srv.metrics.AuthFailures.WithLabelValues(reason)); got != want {
			t.Errorf("medseq_auth_failures_total{reason=%q} %v, want %v", reason, got, want)
		}
	}
	logs := logBuf.String()
	if !strings.Contains(logs, "authentication failed") || !strings.Contains(logs, "method=/medseq.v1.Predictor/Predict") {
		t.Errorf("no authentication failure logged:\n%s", logs)
	}
	for _, secret := range []string{"s3cret", "wrong-token", "xxxxxxxx"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	// The right token still works, and the open methods stay open.
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret-token-alice-0123")
	if _, err := medseqv1.NewPredictorClient(cc).Predict(good, heldOut(t, 1)[0].Request); err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

// D12: two callers sharing a token would make the audit log's caller ambiguous.
func TestTokensRefuseSharedToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(p, []byte("alice s3cret-token-0123456\nbob s3cret-token-0123456\n"), 0o600)
	if _, err := LoadTokens(p); err == nil || !strings.Contains(err.Error(), "line 2") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a shared token: %v", err)
	}
}

// D5, D10: every string field is capped, refused naming the field without echoing it; a
// request id is refused, never silently replaced; NotFound echoes at most a prefix.
func TestStringLimits(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	pc := medseqv1.NewPredictorClient(cc)
	ic := inferencepb.NewGRPCInferenceServiceClient(cc)
	long := func(n int) string { return strings.Repeat("q", n) }
	good := func() *medseqv1.PredictRequest {
		return proto.Clone(heldOut(t, 1)[0].Request).(*medseqv1.PredictRequest)
	}
	check := func(t *testing.T, err error, code codes.Code, field string) {
		t.Helper()
		wantCode(t, err, code, field)
		if msg := status.Convert(err).Message(); len(msg) > 200 || strings.Contains(msg, long(70)) {
			t.Errorf("the message echoes the value (%d bytes)", len(msg))
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *medseqv1.PredictRequest)
		field string
	}{
		{"subject_id", func(r *medseqv1.PredictRequest) { r.SubjectId = long(MaxIDBytes + 1) }, "subject_id"},
		{"request_id", func(r *medseqv1.PredictRequest) { r.RequestId = long(MaxIDBytes + 1) }, "request_id"},
		{"model_name", func(r *medseqv1.PredictRequest) { r.ModelName = long(10 << 20) }, "model_name"},
		{"model_version", func(r *medseqv1.PredictRequest) { r.ModelVersion = long(MaxNameBytes + 1) }, "model_version"},
		{"prediction_time", func(r *medseqv1.PredictRequest) { r.PredictionTime = "2021-01-01" + long(MaxTimeBytes) },
			"prediction_time"},
		{"birth_date", func(r *medseqv1.PredictRequest) { r.BirthDate = long(MaxTimeBytes + 1) }, "birth_date"},
		{"sex", func(r *medseqv1.PredictRequest) { r.Sex = long(MaxSexBytes + 1) }, "sex"},
		{"event time", func(r *medseqv1.PredictRequest) { r.Events[1].Time = "2020-01-01" + long(MaxTimeBytes) },
			"events[1].time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := good()
			tc.edit(req)
			_, err := pc.Predict(ctx, req)
			check(t, err, codes.InvalidArgument, tc.field)
		})
	}
	// At the limits, a request is served, and its id echoed.
	req := good()
	req.SubjectId, req.RequestId = long(MaxIDBytes), long(MaxIDBytes)
	if resp, err := pc.Predict(ctx, req); err != nil || resp.RequestId != req.RequestId {
		t.Fatalf("at the limits: %v", err)
	}
	// The x-request-id header as the field.
	_, err := pc.Predict(metadata.AppendToOutgoingContext(ctx, "x-request-id", long(MaxIDBytes+1)), good())
	check(t, err, codes.InvalidArgument, "x-request-id")
	// A batch names the request.
	b := &medseqv1.PredictBatchRequest{ModelName: fixtureModel, Requests: []*medseqv1.PredictRequest{good(), good()}}
	b.Requests[1].SubjectId = long(1000)
	_, err = pc.PredictBatch(ctx, b)
	check(t, err, codes.InvalidArgument, "requests[1].subject_id")
	// NotFound echoes a prefix of the name only.
	_, err = pc.Predict(ctx, &medseqv1.PredictRequest{ModelName: long(MaxNameBytes), PredictionTime: "2021-01-01",
		Events: ParseCodes("A")})
	check(t, err, codes.NotFound, "model_name")
	_, err = pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: long(1 << 20)})
	check(t, err, codes.InvalidArgument, "name")
	_, err = ic.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: long(1 << 20)})
	check(t, err, codes.InvalidArgument, "name")
	// ModelInfer: the id, and each subject's strings.
	ir := InferRequest(fixtureModel, "", []*medseqv1.PredictRequest{good()})
	ir.Id = long(MaxIDBytes + 1)
	_, err = ic.ModelInfer(ctx, ir)
	check(t, err, codes.InvalidArgument, "id")
	ir = InferRequest(fixtureModel, "", []*medseqv1.PredictRequest{good()})
	for _, in := range ir.Inputs {
		if in.Name == InputSubjectID {
			in.Contents.BytesContents[0] = []byte(long(MaxIDBytes + 1))
		}
	}
	_, err = ic.ModelInfer(ctx, ir)
	check(t, err, codes.InvalidArgument, "inputs[subject_id][0]")
}

// D7: what cannot be decoded is INVALID_ARGUMENT (grpc-go's codec answers INTERNAL) and is
// counted in medseq_requests_total; the server goes on.
func TestMalformedWire(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	wrongType := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7) // model_name as a varint
	badUTF8 := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "\xff\xfe")
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}
	badName := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff") // name not UTF-8
	for _, tc := range []struct {
		method string
		req    []byte
		field  string
	}{
		{"/medseq.v1.Predictor/Predict", garbage, "request"},
		{"/medseq.v1.Predictor/Predict", wrongType, "request"},
		{"/medseq.v1.Predictor/Predict", badUTF8, "subject_id"},
		{"/medseq.v1.Predictor/PredictBatch", garbage, "request"},
		{"/medseq.v1.Predictor/GetModel", garbage, "request"},
		{"/inference.GRPCInferenceService/ModelInfer", garbage, "request"},
		{"/inference.GRPCInferenceService/ModelInfer", badName, "request"},
		{"/grpc.health.v1.Health/Check", garbage, "request"},
	} {
		before := requestsTotal(r.srv, methodName(tc.method), "InvalidArgument")
		wantCode(t, rawCall(ctx, cc, tc.method, tc.req), codes.InvalidArgument, tc.field)
		if got := requestsTotal(r.srv, methodName(tc.method), "InvalidArgument"); got != before+1 {
			t.Errorf("%s: medseq_requests_total{code=InvalidArgument} went from %v to %v", tc.method, before, got)
		}
	}
	// A stream: the bad message ends it with INVALID_ARGUMENT.
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/medseq.v1.Predictor/PredictStream", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&garbage); err != nil {
		t.Fatal(err)
	}
	var resp []byte
	wantCode(t, st.RecvMsg(&resp), codes.InvalidArgument, "request")
	if err := rawCall(ctx, cc, "/medseq.v1.Predictor/Predict",
		rawRequest(fixtureModel, "ICD10/I10", "2020-01-01")); err != nil {
		t.Fatalf("after malformed requests: %v", err)
	}
	if got := metricValue(r.srv.metrics.InflightMem); got != 0 {
		t.Errorf("%v bytes still held in flight after every call ended", got)
	}
}

// D5: a request whose decoded size would not fit --max-inflight-bytes is RESOURCE_EXHAUSTED
// before it is decoded (2-byte empty events each cost a message struct), counted; the
// budget is given back after every call, unary and streamed.
func TestInflightBudget(t *testing.T) {
	r := start(t, Config{Models: newRepo(t), MaxMessageBytes: 1 << 20, MaxInflightBytes: 4 << 20})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	var empties []byte
	for range 100_000 { // 200 kB on the wire, some 6 MB decoded
		empties = protowire.AppendBytes(protowire.AppendTag(empties, 4, protowire.BytesType), nil)
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	wantCode(t, rawCall(ctx, cc, "/medseq.v1.Predictor/Predict", empties), codes.ResourceExhausted, "max-inflight-bytes")
	runtime.ReadMemStats(&ms1)
	if got := ms1.Mallocs - ms0.Mallocs; got > 50_000 {
		t.Errorf("the refused request made %d allocations: it was decoded", got)
	}
	if got := requestsTotal(r.srv, "Predict", "ResourceExhausted"); got != 1 {
		t.Errorf("medseq_requests_total{code=ResourceExhausted} %v", got)
	}
	// Ordinary calls, unary and streamed, hold and give back.
	pc := medseqv1.NewPredictorClient(cc)
	req := heldOut(t, 1)[0].Request
	for range 3 {
		if _, err := pc.Predict(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	st, err := pc.PredictStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream did not end")
	}
	waitFor(t, "the budget to be given back", func() bool { return metricValue(r.srv.metrics.InflightMem) == 0 })
}

func TestBudget(t *testing.T) {
	b := newBudget(100, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"}))
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if b.resize(60, 120) {
		t.Fatal("grew past the limit")
	}
	if !b.resize(60, 30) || b.used != 30 {
		t.Fatalf("shrink: used %d", b.used)
	}
	if status.Code(b.acquire(ctx, 101)) != codes.ResourceExhausted {
		t.Fatal("more than the limit was not refused at once")
	}
	// A waiter gets its bytes when they are given back.
	if err := b.acquire(ctx, 70); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- b.acquire(ctx, 50) }()
	time.Sleep(20 * time.Millisecond)
	b.release(70)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One that waits too long is refused.
	start := time.Now()
	if err := b.acquire(ctx, 60); status.Code(err) != codes.ResourceExhausted || time.Since(start) < maxBudgetWait/2 {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	b.release(30)
	b.release(50)
	if b.used != 0 || b.waiters != 0 {
		t.Fatalf("used %d, waiters %d", b.used, b.waiters)
	}
}

func TestDecodedCost(t *testing.T) {
	md := (&medseqv1.PredictRequest{}).ProtoReflect().Descriptor()
	r := &medseqv1.PredictRequest{ModelName: "m", Events: ParseCodes("A@2020-01-01 B C")}
	b, _ := proto.Marshal(r)
	c, err := decodedCost(b, md, 0)
	// model_name, 3 events, and their 4 fields.
	if err != nil || c != 8*perValue {
		t.Fatalf("cost %d, %v; want %d", c, err, 8*perValue)
	}
	ir := &inferencepb.ModelInferRequest{Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input_ids",
		Contents: &inferencepb.InferTensorContents{Int64Contents: []int64{1, 2, 3, 4}}}}}
	b, _ = proto.Marshal(ir)
	if c, err := decodedCost(b, ir.ProtoReflect().Descriptor(), 0); err != nil || c < 4*8 {
		t.Fatalf("packed ids cost %d, %v", c, err)
	}
	if _, err := decodedCost([]byte{0x0a, 0x05, 'a'}, md, 0); err == nil {
		t.Fatal("a truncated field was accepted")
	}
	deep := []byte{}
	for range 100 {
		deep = protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), deep)
	}
	if _, err := decodedCost(deep, md, 0); err != nil {
		t.Fatalf("events hold no messages: %v", err)
	}
}

// Per-model health names the models to callers without a token: an option (on by default, as
// docs/SERVING.md promises).
func TestModelHealthOption(t *testing.T) {
	r := start(t, Config{Models: newRepo(t), NoModelHealth: true})
	hc := healthpb.NewHealthClient(dial(t, r.addr))
	waitFor(t, "SERVING", func() bool {
		return healthStatus(t, hc, PredictorService) == healthpb.HealthCheckResponse_SERVING
	})
	_, err := hc.Check(tctx(t), &healthpb.HealthCheckRequest{Service: PredictorService + "/" + fixtureModel})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("per-model health with NoModelHealth: %v", err)
	}
	list, err := hc.List(tctx(t), &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for svc := range list.Statuses {
		if strings.Contains(svc, fixtureModel) {
			t.Fatalf("health List names the model: %q", svc)
		}
	}
}

// D12 in the library: a negative limit is an error, not the default.
func TestNegativeLimits(t *testing.T) {
	for _, cfg := range []Config{
		{Models: "x", MaxMessageBytes: -1}, {Models: "x", MaxConcurrency: -4}, {Models: "x", MaxInflightBytes: -1},
		{Models: "x", Limits: Limits{MaxCodes: -1}}, {Models: "x", DrainTimeout: -time.Second},
		{Models: "x", MaxMessageBytes: 8 << 20, MaxInflightBytes: 1 << 20},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// FuzzReceive feeds arbitrary bytes, as every request type, through what reads a request
// (the probe's malformed wire input, D7): never a panic, never INTERNAL; what is refused is
// INVALID_ARGUMENT or RESOURCE_EXHAUSTED; the in-flight budget always returns to zero.
func FuzzReceive(f *testing.F) {
	s, err := New(Config{Models: f.TempDir(), MaxMessageBytes: 1 << 16, MaxInflightBytes: 1 << 18})
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range seedPredict() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	b, _ := proto.Marshal(InferRequest(fixtureModel, "", seedPredict()[:2]))
	f.Add(b)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7))
	f.Add(protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "\xff"))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []proto.Message{&medseqv1.PredictRequest{}, &medseqv1.PredictBatchRequest{},
			&inferencepb.ModelInferRequest{},
			&medseqv1.GetModelRequest{}, &healthpb.HealthCheckRequest{}} {
			var w wireMsg
			held, err := s.receive(ctx, &w, func(m any) error { m.(*wireMsg).b = bytes.Clone(b); return nil }, v)
			if c := status.Code(err); err != nil && c != codes.InvalidArgument && c != codes.ResourceExhausted {
				t.Fatalf("%T: %v", v, err)
			}
			if err == nil && held <= 0 && len(b) > 0 {
				t.Fatalf("%T: accepted %d bytes holding %d", v, len(b), held)
			}
			s.mem.release(held)
			if s.mem.used != 0 {
				t.Fatalf("%T: %d bytes left held", v, s.mem.used)
			}
			if r, ok := v.(*medseqv1.PredictRequest); ok {
				s.wire.release(r)
			}
		}
	})
}
