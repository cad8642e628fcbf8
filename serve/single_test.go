package serve

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/medseq/medseq/modelrepo"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// waitServing polls grpc.health.v1 for service until it is SERVING (what KServe's and
// Kubernetes' gRPC readiness probes ask).
func waitServing(t *testing.T, hc healthpb.HealthClient, service string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := hc.Check(tctx(t), &healthpb.HealthCheckRequest{Service: service})
		if err == nil && st.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %q: %v, %v; want SERVING", service, st, err)
		}
	}
}

// TestSingleModel serves one version folder as KServe lays it out (/mnt/models holding the
// version's files) under a name of the caller's, on a real gRPC server on loopback: health
// turns SERVING, the Open Inference Protocol sees the model by that name, and its answers
// are the offline scores of the same folder.
func TestSingleModel(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "models")
	copyDir(t, getFixture(t).modelDir, mnt)
	p, err := Start(Options{Config: Config{Models: mnt, ModelName: "t2d", Poll: 50 * time.Millisecond},
		Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	cc := dial(t, p.Addr().String())
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", PredictorService, InferenceService, PredictorService + "/t2d"} {
		waitServing(t, hc, svc)
	}
	ic := inferencepb.NewGRPCInferenceServiceClient(cc)
	ready, err := ic.ModelReady(tctx(t), &inferencepb.ModelReadyRequest{Name: "t2d", Version: "1"})
	if err != nil || !ready.Ready {
		t.Fatalf("ModelReady t2d 1: %v, %v", ready, err)
	}
	if _, err := ic.ModelMetadata(tctx(t), &inferencepb.ModelMetadataRequest{Name: fixtureModel}); err == nil {
		t.Errorf("the folder's own model name %s is served too; want only t2d", fixtureModel)
	}
	reqs := heldOut(t, 20)
	want := offline(t, mnt, reqs)
	pc := medseqv1.NewPredictorClient(cc)
	for i, lr := range reqs {
		lr.Request.ModelName = "t2d"
		resp, err := pc.Predict(tctx(t), lr.Request)
		if err != nil {
			t.Fatalf("Predict %d: %v", i, err)
		}
		if resp.ModelName != "t2d" || resp.ModelVersion != "1" || math.Abs(resp.Probability-want[i]) > 1e-12 {
			t.Fatalf("subject %d: %s %s %.12f, want t2d 1 %.12f", i, resp.ModelName, resp.ModelVersion,
				resp.Probability, want[i])
		}
	}
	checkSingleReload(t, hc, p.Server(), mnt)
}

// checkSingleReload breaks the served folder (a file that no longer matches the manifest):
// the version is unloaded and health turns NOT_SERVING; restoring it serves it again.
func checkSingleReload(t *testing.T, hc healthpb.HealthClient, srv *Server, mnt string) {
	t.Helper()
	cal := filepath.Join(mnt, modelrepo.CalibrationFile)
	good, err := os.ReadFile(cal)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cal, append([]byte(" "), good...), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); srv.Repository().Ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a folder that fails verification is still served")
		}
	}
	st, err := hc.Check(tctx(t), &healthpb.HealthCheckRequest{})
	if err != nil || st.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health with the version unloaded: %v, %v; want NOT_SERVING", st, err)
	}
	if err := os.WriteFile(cal, good, 0o644); err != nil {
		t.Fatal(err)
	}
	waitServing(t, hc, "")
}

// TestSingleModelFolders: single-model mode refuses a folder that is not one version's,
// saying what it holds instead, and names and versions a repository could not have.
func TestSingleModelFolders(t *testing.T) {
	f := getFixture(t)
	modelFolder := filepath.Join(t.TempDir(), "m")
	copyDir(t, f.modelDir, filepath.Join(modelFolder, "3"))
	for name, tc := range map[string]struct {
		dir, want string
	}{
		"model folder": {modelFolder, "point --model-dir at one of them"},
		"empty":        {t.TempDir(), "no manifest.json"},
		"missing":      {filepath.Join(t.TempDir(), "nope"), "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := New(Config{Models: tc.dir, ModelName: "m"})
			if err != nil {
				t.Fatal(err)
			}
			err = srv.Scan(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("scan: %v, want %q", err, tc.want)
			}
			if name != "missing" && !errors.Is(err, ErrNotVersionDir) {
				t.Errorf("%v is not ErrNotVersionDir", err)
			}
		})
	}
	for _, cfg := range []Config{
		{Models: f.modelDir, ModelName: "a/b"},
		{Models: f.modelDir, ModelName: ".hidden"},
		{Models: f.modelDir, ModelName: "two words"},
		{Models: f.modelDir, ModelName: strings.Repeat("m", MaxNameBytes+1)},
		{Models: f.modelDir, ModelName: "m", ModelVersion: "v2"},
		{Models: f.modelDir, ModelName: "m", ModelVersion: "0"},
		{Models: f.modelDir, ModelVersion: "2"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("name %.20q version %q: accepted", cfg.ModelName, cfg.ModelVersion)
		}
	}
	srv, err := New(Config{Models: f.modelDir, ModelName: "m", ModelVersion: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Repository().Resolve("m", ""); err != nil || v.Version != "7" || v.Dir != f.modelDir {
		t.Errorf("resolve m: %+v, %v; want version 7 from %s", v, err, f.modelDir)
	}
}
