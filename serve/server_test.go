package serve

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// copyDir copies a model version folder.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newRepo makes a fresh repository holding the fixture model as version 1.
func newRepo(t testing.TB) string {
	f := getFixture(t)
	dir := t.TempDir()
	copyDir(t, f.modelDir, filepath.Join(dir, fixtureModel, "1"))
	return dir
}

type running struct {
	srv  *Server
	addr string
}

// start serves cfg on 127.0.0.1:0 until the test ends.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	// Serve loads before serving; wait for the listener to answer.
	r := &running{srv: srv, addr: lis.Addr().String()}
	return r
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// offline scores the cohort's labels the way medseq predict does (cohort censoring, the
// dataset's code table, calibration.json): the reference the server must match.
func offline(t testing.TB, modelDir string, labels []LabelledRequest) []float64 {
	f := getFixture(t)
	sc, err := scorer.Load(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := modelrepo.ReadCalibration(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ id, pt int64 }
	want := map[key]int{}
	for i, l := range labels {
		want[key{l.Label.SubjectID, l.Label.PredictionTime}] = i
	}
	out := make([]float64, len(labels))
	for i := range out {
		out[i] = math.NaN()
	}
	err = c.Sequences(context.Background(), ds, nil, func(s data.Sequence) error {
		i, ok := want[key{s.Label.SubjectID, s.Label.PredictionTime}]
		if !ok {
			return nil
		}
		res, err := sc.Score(ds.Codes, []scorer.Input{{Events: s.Events, Birth: s.Label.Birth, Sex: s.Label.Sex,
			PredictionTime: s.Label.PredictionTime}})
		if err != nil {
			return err
		}
		out[i] = cal.Apply(res[0].Probability)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func heldOut(t testing.TB, n int) []LabelledRequest {
	f := getFixture(t)
	reqs, err := CohortRequests(context.Background(), f.meds, f.cohort, []string{data.SplitHeldOut}, n, fixtureModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) == 0 {
		t.Fatal("no held-out labels")
	}
	return reqs
}

func TestPredictMatchesOffline(t *testing.T) {
	repo := newRepo(t)
	r := start(t, Config{Models: repo})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	pc := medseqv1.NewPredictorClient(cc)
	reqs := heldOut(t, 40)
	want := offline(t, filepath.Join(repo, fixtureModel, "1"), reqs)

	batch := &medseqv1.PredictBatchRequest{ModelName: fixtureModel}
	for i, lr := range reqs {
		resp, err := pc.Predict(ctx, lr.Request)
		if err != nil {
			t.Fatalf("Predict %d: %v", i, err)
		}
		if math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("subject %d: server %.12f, offline %.12f", i, resp.Probability, want[i])
		}
		if resp.ModelVersion != "1" || resp.ModelName != fixtureModel || resp.RequestId == "" {
			t.Fatalf("response %+v", resp)
		}
		if resp.Decision != (resp.Probability >= resp.Threshold) {
			t.Fatalf("decision %v at threshold %v for %v", resp.Decision, resp.Threshold, resp.Probability)
		}
		if resp.EventsUsed+resp.EventsCensored != int32(len(lr.Request.Events)) {
			t.Fatalf("used %d + censored %d != %d events", resp.EventsUsed, resp.EventsCensored, len(lr.Request.Events))
		}
		batch.Requests = append(batch.Requests, lr.Request)
	}
	br, err := pc.PredictBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, resp := range br.Responses {
		if math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("batch subject %d: %.12f vs %.12f", i, resp.Probability, want[i])
		}
	}
	st, err := pc.PredictStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, lr := range reqs[:10] {
		if err := st.Send(lr.Request); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("stream subject %d: %.12f vs %.12f", i, resp.Probability, want[i])
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}

	// The Open Inference Protocol: one BYTES element per subject, FP32 out.
	ic := inferencepb.NewGRPCInferenceServiceClient(cc)
	ireq := InferRequest(fixtureModel, "", requestsOf(reqs))
	ir, err := ic.ModelInfer(ctx, ireq)
	if err != nil {
		t.Fatal(err)
	}
	if ir.Outputs[0].Name != OutputProbability || ir.Outputs[0].Datatype != "FP32" ||
		ir.Outputs[0].Shape[0] != int64(len(reqs)) {
		t.Fatalf("outputs %v", ir.Outputs[0])
	}
	for i, p := range ir.Outputs[0].Contents.Fp32Contents {
		if math.Abs(float64(p)-want[i]) > 1e-6 {
			t.Fatalf("ModelInfer subject %d: %v vs %v", i, p, want[i])
		}
	}
	// Raw contents, as Triton clients send them.
	raw := RawInferRequest(ireq)
	rr, err := ic.ModelInfer(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	probs, err := RawFP32(rr, OutputProbability)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range probs {
		if math.Abs(float64(p)-want[i]) > 1e-6 {
			t.Fatalf("raw ModelInfer subject %d: %v vs %v", i, p, want[i])
		}
	}
}

func TestMetadataRPCs(t *testing.T) {
	repo := newRepo(t)
	r := start(t, Config{Models: repo})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	pc := medseqv1.NewPredictorClient(cc)
	lm, err := pc.ListModels(ctx, &medseqv1.ListModelsRequest{})
	if err != nil || len(lm.Models) != 1 || lm.Models[0].ServingVersion != "1" || lm.Models[0].Kind != "xgboost" {
		t.Fatalf("ListModels %v %v", lm, err)
	}
	gm, err := pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: fixtureModel})
	if err != nil {
		t.Fatal(err)
	}
	if gm.Kind != "xgboost" || gm.Calibration != "isotonic" || gm.VocabSize <= 5 || gm.RunId == "" || gm.Created == "" ||
		len(gm.Metrics) == 0 {
		t.Fatalf("GetModel %+v", gm)
	}
	ic := inferencepb.NewGRPCInferenceServiceClient(cc)
	if l, err := ic.ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil || !l.Live {
		t.Fatalf("ServerLive %v %v", l, err)
	}
	if l, err := ic.ServerReady(ctx, &inferencepb.ServerReadyRequest{}); err != nil || !l.Ready {
		t.Fatalf("ServerReady %v %v", l, err)
	}
	if l, err := ic.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: fixtureModel, Version: "1"}); err != nil ||
		!l.Ready {
		t.Fatalf("ModelReady %v %v", l, err)
	}
	if l, err := ic.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: fixtureModel, Version: "9"}); err != nil ||
		l.Ready {
		t.Fatalf("ModelReady v9 %v %v", l, err)
	}
	if m, err := ic.ServerMetadata(ctx, &inferencepb.ServerMetadataRequest{}); err != nil || m.Name != "medseq" {
		t.Fatalf("ServerMetadata %v %v", m, err)
	}
	mm, err := ic.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: fixtureModel})
	if err != nil || mm.Platform != "medseq_xgboost" || len(mm.Versions) != 1 || mm.Outputs[0].Datatype != "FP32" {
		t.Fatalf("ModelMetadata %v %v", mm, err)
	}
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", PredictorService, InferenceService, PredictorService + "/" + fixtureModel,
		InferenceService + "/" + fixtureModel} {
		h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, h, err)
		}
	}
}

// An unknown model has no health entry.
func TestHealthUnknownModel(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	cc := dial(t, r.addr)
	_, err := healthpb.NewHealthClient(cc).Check(tctx(t),
		&healthpb.HealthCheckRequest{Service: PredictorService + "/no-such-model"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model health: %v", err)
	}
}

func wantCode(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), field) {
		t.Fatalf("got %v %q, want %v naming %q", st.Code(), st.Message(), code, field)
	}
}

func TestBadInput(t *testing.T) {
	repo := newRepo(t)
	r := start(t, Config{Models: repo, Limits: Limits{MaxCodes: 5000, MaxBatch: 4}})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	pc := medseqv1.NewPredictorClient(cc)
	good := func() *medseqv1.PredictRequest {
		return &medseqv1.PredictRequest{ModelName: fixtureModel, PredictionTime: "2021-01-01",
			Events: ParseCodes("ICD10/I10@2019-05-01T10:00:00Z SNOMED/38341003@2020-02-03 MEDS_BIRTH@1960-01-01")}
	}
	if _, err := pc.Predict(ctx, good()); err != nil {
		t.Fatalf("good request: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(r *medseqv1.PredictRequest)
		code  codes.Code
		field string
	}{
		{"no model", func(r *medseqv1.PredictRequest) { r.ModelName = "" }, codes.InvalidArgument, "model_name"},
		{"unknown model", func(r *medseqv1.PredictRequest) { r.ModelName = "nope" }, codes.NotFound, "model_name"},
		{"unknown version", func(r *medseqv1.PredictRequest) { r.ModelVersion = "7" }, codes.NotFound, "model_version"},
		{"empty events", func(r *medseqv1.PredictRequest) { r.Events = nil }, codes.InvalidArgument, "events"},
		{"too many", func(r *medseqv1.PredictRequest) {
			for range 5100 {
				r.Events = append(r.Events, &medseqv1.Event{Code: "X", Time: "2020-01-01"})
			}
		}, codes.InvalidArgument, "events"},
		{"bad event time", func(r *medseqv1.PredictRequest) { r.Events[1].Time = "2020-13-45" }, codes.InvalidArgument,
			"events[1].time"},
		// D9: a bad value is the value's error, not the time's, however it is sent.
		{"inline value not a number", func(r *medseqv1.PredictRequest) {
			r.Events = ParseCodes("ICD10/I10@2019-05-01 LOINC/4548-4@2020-03-01=abc")
		}, codes.InvalidArgument, "events[1].numeric_value"},
		{"inline value infinite", func(r *medseqv1.PredictRequest) {
			r.Events = ParseCodes("ICD10/I10@2019-05-01 LOINC/4548-4@2020-03-01=Inf")
		}, codes.InvalidArgument, "events[1].numeric_value"},
		{"inline value overflowing", func(r *medseqv1.PredictRequest) {
			r.Events = ParseCodes("ICD10/I10@2019-05-01 LOINC/4548-4@2020-03-01=1e39")
		}, codes.InvalidArgument, "events[1].numeric_value"},
		{"numeric_value +Inf", func(r *medseqv1.PredictRequest) {
			v := float32(math.Inf(1))
			r.Events[1].NumericValue = &v
		}, codes.InvalidArgument, "events[1].numeric_value"},
		{"numeric_value -Inf", func(r *medseqv1.PredictRequest) {
			v := float32(math.Inf(-1))
			r.Events[0].NumericValue = &v
		}, codes.InvalidArgument, "events[0].numeric_value"},
		{"empty code", func(r *medseqv1.PredictRequest) { r.Events[2].Code = "" }, codes.InvalidArgument, "events[2].code"},
		{"no prediction time", func(r *medseqv1.PredictRequest) { r.PredictionTime = "" }, codes.InvalidArgument,
			"prediction_time"},
		{"bad prediction time", func(r *medseqv1.PredictRequest) { r.PredictionTime = "yesterday" }, codes.InvalidArgument,
			"prediction_time"},
		{"bad birth", func(r *medseqv1.PredictRequest) { r.BirthDate = "1960-02-30" }, codes.InvalidArgument, "birth_date"},
		{"bad sex", func(r *medseqv1.PredictRequest) { r.Sex = "Q" }, codes.InvalidArgument, "sex"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := good()
			tc.edit(req)
			_, err := pc.Predict(ctx, req)
			wantCode(t, err, tc.code, tc.field)
		})
	}
	_, err := pc.PredictBatch(ctx, &medseqv1.PredictBatchRequest{ModelName: fixtureModel})
	wantCode(t, err, codes.InvalidArgument, "requests")
	b := &medseqv1.PredictBatchRequest{ModelName: fixtureModel}
	for range 5 {
		b.Requests = append(b.Requests, good())
	}
	_, err = pc.PredictBatch(ctx, b)
	wantCode(t, err, codes.InvalidArgument, "requests")
	b.Requests = b.Requests[:2]
	b.Requests[1].Events[0].Time = "bad"
	_, err = pc.PredictBatch(ctx, b)
	wantCode(t, err, codes.InvalidArgument, "requests[1].events[0].time")
	_, err = pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "name")
	_, err = pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: fixtureModel, Version: "5"})
	wantCode(t, err, codes.NotFound, "version: version \"5\"")

	// A deadline already past is answered DEADLINE_EXCEEDED, not scored.
	dctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_, err = pc.Predict(dctx, good())
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("past deadline: %v", err)
	}

	ic := inferencepb.NewGRPCInferenceServiceClient(cc)
	reqs := heldOut(t, 2)
	// Without numeric values InferRequest writes the one-line-per-subject form; with them,
	// [batch, length] codes and values.
	withoutValues := func() []*medseqv1.PredictRequest {
		var out []*medseqv1.PredictRequest
		for _, r := range requestsOf(reqs) {
			r = proto.Clone(r).(*medseqv1.PredictRequest)
			for _, e := range r.Events {
				e.NumericValue = nil
			}
			out = append(out, r)
		}
		return out
	}
	infer := func() *inferencepb.ModelInferRequest { return InferRequest(fixtureModel, "", withoutValues()) }
	inferValues := func() *inferencepb.ModelInferRequest { return InferRequest(fixtureModel, "", requestsOf(reqs)) }
	for _, r := range []*inferencepb.ModelInferRequest{infer(), inferValues()} {
		if _, err := ic.ModelInfer(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if v := inferValues().Inputs[len(inferValues().Inputs)-1]; v.Name != InputValues || len(v.Shape) != 2 {
		t.Fatalf("held-out histories carry lab values, but InferRequest wrote no values input: %v", v)
	}
	// withValues edits the request with a values input instead.
	withValues := func(edit func(r *inferencepb.ModelInferRequest)) func(r *inferencepb.ModelInferRequest) {
		return func(r *inferencepb.ModelInferRequest) {
			proto.Reset(r)
			proto.Merge(r, inferValues())
			edit(r)
		}
	}
	icases := []struct {
		name  string
		edit  func(r *inferencepb.ModelInferRequest)
		code  codes.Code
		field string
	}{
		{"values with one-line codes", withValues(func(r *inferencepb.ModelInferRequest) { r.Inputs[0] = infer().Inputs[0] }),
			codes.InvalidArgument, "inputs[5].shape"},
		{"values of another shape", withValues(func(r *inferencepb.ModelInferRequest) {
			r.Inputs[5].Shape = []int64{1, int64(len(r.Inputs[5].Contents.Fp32Contents))}
		}), codes.InvalidArgument, "inputs[5].shape"},
		{"values not FP32", withValues(func(r *inferencepb.ModelInferRequest) { r.Inputs[5].Datatype = "FP64" }),
			codes.InvalidArgument, "inputs[5].datatype"},
		{"infinite value", withValues(func(r *inferencepb.ModelInferRequest) {
			r.Inputs[5].Contents.Fp32Contents[0] = float32(math.Inf(1))
		}), codes.InvalidArgument, "inputs[5].contents[0]"},
		{"unknown model", func(r *inferencepb.ModelInferRequest) { r.ModelName = "x" }, codes.NotFound, "model_name"},
		{"unknown version", func(r *inferencepb.ModelInferRequest) { r.ModelVersion = "3" }, codes.NotFound, "model_version"},
		{"wrong datatype", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Datatype = "FP32" }, codes.InvalidArgument,
			"inputs[0].datatype"},
		{"wrong shape", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Shape = []int64{3} }, codes.InvalidArgument,
			"inputs[0].shape"},
		{"3-d shape", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 1, 2} }, codes.InvalidArgument,
			"inputs[0].shape"},
		{"mismatched batch", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[1].Shape = []int64{1}
			r.Inputs[1].Contents.BytesContents = r.Inputs[1].Contents.BytesContents[:1]
		}, codes.InvalidArgument, "inputs[1].shape"},
		{"unknown input", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Name = "pixels" }, codes.InvalidArgument,
			"inputs[0].name"},
		{"no prediction time", func(r *inferencepb.ModelInferRequest) { r.Inputs = r.Inputs[:1] }, codes.InvalidArgument,
			"prediction_time"},
		{"bad prediction time", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[1].Contents.BytesContents[1] = []byte("soon")
		}, codes.InvalidArgument, "prediction_time][1]"},
		{"empty sequence", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Contents.BytesContents[0] = []byte(" ") },
			codes.InvalidArgument, "inputs[0][0]"},
		{"bad event time", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Contents.BytesContents[1] = []byte("A@2020-01-01 B@x")
		}, codes.InvalidArgument, "inputs[0][1][1].time"},
		{"unknown output", func(r *inferencepb.ModelInferRequest) {
			r.Outputs = []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}
		}, codes.InvalidArgument, "outputs[0].name"},
		{"ids out of vocab", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0] = &inferencepb.ModelInferRequest_InferInputTensor{Name: InputInputIDs, Datatype: "INT64",
				Shape: []int64{2, 2}, Contents: &inferencepb.InferTensorContents{Int64Contents: []int64{7, 8, 9, 1 << 40}}}
		}, codes.InvalidArgument, "inputs[0].contents[3]"},
		{"ids wrong type", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0] = &inferencepb.ModelInferRequest_InferInputTensor{Name: InputInputIDs, Datatype: "INT32",
				Shape: []int64{2, 1}, Contents: &inferencepb.InferTensorContents{IntContents: []int32{7, 8}}}
		}, codes.InvalidArgument, "inputs[0].datatype"},
		{"batch too large", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Shape = []int64{5}
			r.Inputs[0].Contents.BytesContents = append(r.Inputs[0].Contents.BytesContents, []byte("a"), []byte("b"),
				[]byte("c"))
		}, codes.InvalidArgument, "inputs[0].shape"},
	}
	for _, tc := range icases {
		t.Run("infer "+tc.name, func(t *testing.T) {
			req := infer()
			tc.edit(req)
			_, err := ic.ModelInfer(ctx, req)
			wantCode(t, err, tc.code, tc.field)
		})
	}
	// Token ids are accepted as timeless codes.
	req := infer()
	req.Inputs[0] = &inferencepb.ModelInferRequest_InferInputTensor{Name: InputInputIDs, Datatype: "INT64",
		Shape: []int64{2, 3}, Contents: &inferencepb.InferTensorContents{Int64Contents: []int64{0, 7, 8, 9, 10, 0}}}
	if _, err := ic.ModelInfer(ctx, req); err != nil {
		t.Fatalf("input_ids: %v", err)
	}
}

func healthStatus(t *testing.T, hc healthpb.HealthClient, svc string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	h, err := hc.Check(tctx(t), &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	return h.Status
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthAndReload(t *testing.T) {
	f := getFixture(t)
	repo := t.TempDir()
	r := start(t, Config{Models: repo, Poll: 50 * time.Millisecond})
	cc := dial(t, r.addr)
	hc := healthpb.NewHealthClient(cc)
	pc := medseqv1.NewPredictorClient(cc)
	ctx := tctx(t)
	for _, svc := range []string{"", PredictorService, InferenceService} {
		if s := healthStatus(t, hc, svc); s != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("empty repository: %q is %v", svc, s)
		}
	}
	// A version being written (no manifest yet) is not loaded; a broken one is skipped.
	os.MkdirAll(filepath.Join(repo, "broken", "1"), 0o755)
	os.WriteFile(filepath.Join(repo, "broken", "1", modelrepo.ManifestFile), []byte("{"), 0o644)
	copyDir(t, f.modelDir, filepath.Join(repo, fixtureModel, "1"))
	waitFor(t, "SERVING", func() bool { return healthStatus(t, hc, "") == healthpb.HealthCheckResponse_SERVING })
	req := heldOut(t, 1)[0].Request
	resp, err := pc.Predict(ctx, req)
	if err != nil || resp.ModelVersion != "1" {
		t.Fatalf("v1: %v %v", resp, err)
	}
	// A request in flight keeps its version: hold v1 while v2 is swapped in.
	v1, err := r.srv.Repository().Resolve(fixtureModel, "")
	if err != nil {
		t.Fatal(err)
	}
	// Version 2: the same model with the identity calibration, so its answers differ.
	v2dir := filepath.Join(repo, fixtureModel, ".2.tmp")
	copyDir(t, f.modelDir, v2dir)
	if err := (&modelrepo.Calibration{Method: modelrepo.CalibrationIdentity}).Write(v2dir); err != nil {
		t.Fatal(err)
	}
	rewriteManifest(t, v2dir, func(m *modelrepo.Manifest) { m.Calibration = modelrepo.CalibrationIdentity })
	if err := os.Rename(v2dir, filepath.Join(repo, fixtureModel, "2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version 2", func() bool {
		resp, err := pc.Predict(ctx, req)
		return err == nil && resp.ModelVersion == "2"
	})
	resp2, _ := pc.Predict(ctx, req)
	if resp2.Probability != resp2.RawScore {
		t.Fatalf("v2's calibration is the identity: %v vs %v", resp2.Probability, resp2.RawScore)
	}
	if resp2.RawScore != resp.RawScore {
		t.Fatalf("same booster, different raw scores %v %v", resp2.RawScore, resp.RawScore)
	}
	// v1 remains addressable and the old pointer still scores.
	old, err := pc.Predict(ctx, withVersion(req, "1"))
	if err != nil || old.Probability != resp.Probability {
		t.Fatalf("pinned v1: %v %v", old, err)
	}
	table := data.NewCodes()
	sub, err := decodePredict(table, req, DefaultLimits(), "", testDemographics())
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sub.toInput(v1.Gap)
	if res, err := v1.Scorer.Score(table, []scorer.Input{in}); err != nil ||
		v1.Calibrate(res[0].Probability) != resp.Probability {
		t.Fatalf("held v1: %v %v", res, err)
	}
	// Removing version 2 falls back to version 1.
	os.RemoveAll(filepath.Join(repo, fixtureModel, "2"))
	waitFor(t, "back to version 1", func() bool {
		resp, err := pc.Predict(ctx, req)
		return err == nil && resp.ModelVersion == "1"
	})
	// Draining turns health NOT_SERVING.
	r.srv.mu.Lock()
	r.srv.draining = true
	r.srv.mu.Unlock()
	r.srv.setHealth()
	if s := healthStatus(t, hc, PredictorService); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("draining: %v", s)
	}
}

func withVersion(r *medseqv1.PredictRequest, v string) *medseqv1.PredictRequest {
	c := proto.Clone(r).(*medseqv1.PredictRequest)
	c.ModelVersion = v
	return c
}

func TestPinnedPolicy(t *testing.T) {
	f := getFixture(t)
	repo := newRepo(t)
	copyDir(t, f.modelDir, filepath.Join(repo, fixtureModel, "2"))
	pol, err := ParsePolicy(fixtureModel + "=1")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Models: repo, Policy: pol})
	pc := medseqv1.NewPredictorClient(dial(t, r.addr))
	resp, err := pc.Predict(tctx(t), heldOut(t, 1)[0].Request)
	if err != nil || resp.ModelVersion != "1" {
		t.Fatalf("pinned: %v %v", resp, err)
	}
	if _, err := ParsePolicy("a=1,b"); err == nil {
		t.Fatal("bad policy accepted")
	}
}

func requestsOf(lrs []LabelledRequest) []*medseqv1.PredictRequest {
	out := make([]*medseqv1.PredictRequest, len(lrs))
	for i, l := range lrs {
		out[i] = l.Request
	}
	return out
}

// TestLastValuesModel serves a model trained with last numeric values: Predict and ModelInfer
// (with its values input) answer what the model gives offline on the MEDS histories, and
// the values matter (without them the answers change).
func TestLastValuesModel(t *testing.T) {
	f := getFixture(t)
	repo := t.TempDir()
	copyDir(t, f.valuesDir, filepath.Join(repo, valuesModel, "1"))
	r := start(t, Config{Models: repo})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	reqs := heldOut(t, 40)
	for _, lr := range reqs {
		lr.Request.ModelName = valuesModel
	}
	want := offline(t, filepath.Join(repo, valuesModel, "1"), reqs)
	pc := medseqv1.NewPredictorClient(cc)
	changed := 0
	for i, lr := range reqs {
		resp, err := pc.Predict(ctx, lr.Request)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("subject %d: server %.12f, offline %.12f", i, resp.Probability, want[i])
		}
		bare := proto.Clone(lr.Request).(*medseqv1.PredictRequest)
		for _, e := range bare.Events {
			e.NumericValue = nil
		}
		without, err := pc.Predict(ctx, bare)
		if err != nil {
			t.Fatal(err)
		}
		if without.RawScore != resp.RawScore {
			changed++
		}
	}
	if changed == 0 {
		t.Fatal("no answer changed without the numeric values: the model does not read them")
	}
	// Values inline ("CODE@TIME=VALUE", as medseq predict --codes and the one-line "codes"
	// input take them) answer the same.
	var lines []*medseqv1.PredictRequest
	for i, lr := range reqs {
		line := CodesLine(lr.Request.Events)
		if !strings.Contains(line, "=") {
			continue
		}
		inline := proto.Clone(lr.Request).(*medseqv1.PredictRequest)
		inline.Events = ParseCodes(line)
		for j, e := range inline.Events { // static rows carry no inline value
			if lr.Request.Events[j].Time == "" {
				e.NumericValue = lr.Request.Events[j].NumericValue
			}
		}
		resp, err := pc.Predict(ctx, inline)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("subject %d with inline values: server %.12f, offline %.12f", i, resp.Probability, want[i])
		}
		lines = append(lines, inline)
	}
	if len(lines) == 0 {
		t.Fatal("no request had a timed value to write inline")
	}
	// The one-line "codes" input of ModelInfer with inline values, for the same subjects.
	var bare []*medseqv1.PredictRequest
	var wantInline []float64
	for i, lr := range reqs {
		if !strings.Contains(CodesLine(lr.Request.Events), "=") {
			continue
		}
		b := proto.Clone(lr.Request).(*medseqv1.PredictRequest)
		for _, e := range b.Events {
			if e.Time != "" {
				e.NumericValue = nil
			}
		}
		bare, wantInline = append(bare, b), append(wantInline, want[i])
	}
	ir := InferRequest(valuesModel, "", bare)
	if len(ir.Inputs[0].Shape) != 1 { // static rows with values keep the [B, L] form
		t.Fatalf("static rows carry values: the one-line form does not apply (shape %v)", ir.Inputs[0].Shape)
	}
	for k, b := range lines {
		ir.Inputs[0].Contents.BytesContents[k] = []byte(CodesLine(b.Events))
	}
	// ModelInfer answers what the model gives offline, with values inline and as an input.
	checkInfer := func(what string, req *inferencepb.ModelInferRequest, want []float64) {
		resp, err := inferencepb.NewGRPCInferenceServiceClient(cc).ModelInfer(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RawFP32(resp, OutputProbability)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-6 {
				t.Fatalf("ModelInfer, %s, subject %d: %v, offline %v", what, i, got[i], want[i])
			}
		}
	}
	checkInfer("one-line codes with inline values", ir, wantInline)
	checkInfer("a values input", InferRequest(valuesModel, "", requestsOf(reqs)), want)
	t.Logf("%d of %d answers change without the values; %d answered with inline values", changed, len(reqs), len(lines))
}

func TestSplitCodeItem(t *testing.T) {
	for _, c := range []struct {
		in, code, time string
		value          float32
		hasValue       bool
	}{
		{"ICD10/E11", "ICD10/E11", "", 0, false},
		{"ICD10/E11@2020-01-01", "ICD10/E11", "2020-01-01", 0, false},
		{"LOINC/4548-4@2020-03-01=48.5", "LOINC/4548-4", "2020-03-01", 48.5, true},
		{"LOINC/4548-4@2020-03-01T10:00:00Z=-1e-3", "LOINC/4548-4", "2020-03-01T10:00:00Z", -1e-3, true},
		{"A@B@2020-01-01=7", "A@B", "2020-01-01", 7, true},
		{"X=Y@2020-01-01", "X=Y", "2020-01-01", 0, false},  // '=' in the code is the code's
		{"L@2020-01-01=abc", "L", "2020-01-01", 0, false},  // not a number: badValue (refused naming the value)
		{"L@2020-01-01=Inf", "L", "2020-01-01", 0, false},  // not finite: badValue
		{"L@2020-01-01=1e39", "L", "2020-01-01", 0, false}, // overflows float32: badValue
		{"L@2020-01-01=NaN", "L", "2020-01-01", 0, false},  // no number: badValue
		{"BMI=31", "BMI=31", "", 0, false},                 // a static row carries no inline value
	} {
		it := splitCodeItem(c.in)
		wantBad := strings.Contains(c.in, "@") && strings.Contains(c.in[strings.LastIndexByte(c.in, '@'):], "=") &&
			!c.hasValue
		if it.code != c.code || it.time != c.time || it.hasValue != c.hasValue || it.value != c.value ||
			it.badValue != wantBad {
			t.Errorf("%q: %+v, want code %q time %q value %v (%v)", c.in, it, c.code, c.time, c.value, c.hasValue)
		}
	}
	evs := ParseCodes("A@2020-01-01=1.25 B@2020-01-02 C")
	if evs[0].NumericValue == nil || *evs[0].NumericValue != 1.25 || evs[1].NumericValue != nil ||
		evs[2].NumericValue != nil {
		t.Errorf("ParseCodes: %v", evs)
	}
	if got := CodesLine(evs); got != "A@2020-01-01=1.25 B@2020-01-02 C" {
		t.Errorf("CodesLine round trip: %q", got)
	}
}
