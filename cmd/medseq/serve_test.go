package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
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
	} {
		var ue usageError
		if err := runServe(context.Background(), e, args); !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
	var ue usageError
	if err := runPredictClient(context.Background(), e, []string{"--addr", "127.0.0.1:1"}); !errors.As(err, &ue) {
		t.Errorf("predict client without --name: %v", err)
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
	go func() {
		done <- runServe(ctx, e, []string{"--models", filepath.Join(out, demoModels), "--addr", "127.0.0.1:0", "--metrics-addr", "", "--poll", "0"})
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
