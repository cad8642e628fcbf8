package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStartAndPredict starts a server as `medseq serve` does, with mutual TLS, tokens, a keyed
// audit log, metrics and pprof, scores one subject through it as `medseq predict --addr` does,
// and stops it.
func TestStartAndPredict(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	tokens, audit, key := filepath.Join(dir, "tokens"), filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "key")
	writeFile(t, tokens, "alice s3cret-token-alice-0123\n")
	writeFile(t, key, "  a-key-of-at-least-sixteen-bytes \n")
	p, err := Start(Options{Config: Config{Models: newRepo(t), Log: slog.New(slog.DiscardHandler)},
		Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Pprof: true,
		TLSCert: pki.srvCert, TLSKey: pki.srvKey, ClientCA: pki.caFile, TokensFile: tokens, AuditFile: audit,
		AuditKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the server did not stop")
		}
	}()
	req := heldOut(t, 1)[0].Request
	c := ClientConfig{Addr: p.Addr().String(), Token: "s3cret-token-alice-0123", CA: pki.caFile, Cert: pki.cliCert,
		Key: pki.cliKey, ServerName: "127.0.0.1", Timeout: 10 * time.Second}
	resp, err := Predict(tctx(t), c, req)
	if err != nil || resp.ModelName != fixtureModel || !(resp.Probability >= 0 && resp.Probability <= 1) {
		t.Fatalf("predict: %v, %v", resp, err)
	}
	recs := readAudit(t, audit)
	if len(recs) != 1 || recs[0].SubjectHash == "" || recs[0].SubjectHash == HashSubject(req.SubjectId) {
		t.Errorf("audit %+v: want one record hashed under the key", recs)
	}
	for name, edit := range map[string]func(*ClientConfig){
		"wrong token":    func(c *ClientConfig) { c.Token = "s3cret-token-mallory-0" },
		"no client cert": func(c *ClientConfig) { c.Cert, c.Key = "", "" },
	} {
		bad := c
		edit(&bad)
		if _, err := Predict(tctx(t), bad, req); err == nil {
			t.Errorf("%s: scored", name)
		} else if name == "wrong token" && status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	for path, want := range map[string]string{"/metrics": "medseq_", "/debug/pprof/": "goroutine"} {
		if body := httpGet(t, "http://"+p.MetricsAddr().String()+path); !strings.Contains(body, want) {
			t.Errorf("%s: no %q in %.200q", path, want, body)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestStartErrors: each file or address Start cannot use is an error naming it, and a
// failure releases the listener it had opened.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	short, tokens := filepath.Join(dir, "short-key"), filepath.Join(dir, "tokens")
	writeFile(t, short, "0123456789\n")
	writeFile(t, tokens, "a s3cret-token-0123456789\nb s3cret-token-0123456789\n")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freeAddr(t)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"tls files", Options{TLSCert: filepath.Join(dir, "none.pem"), TLSKey: filepath.Join(dir, "none-key.pem")},
			"none.pem"},
		{"shared token", Options{TokensFile: tokens}, "line 2"},
		{"tokens file", Options{TokensFile: filepath.Join(dir, "no-tokens")}, "no-tokens"},
		{"audit folder", Options{AuditFile: filepath.Join(dir, "missing", "audit.jsonl")}, "audit log"},
		{"short audit key", Options{AuditFile: filepath.Join(dir, "a.jsonl"), AuditKeyFile: short}, "shorter than 16 bytes"},
		{"no audit key", Options{AuditFile: filepath.Join(dir, "b.jsonl"), AuditKeyFile: filepath.Join(dir, "no-key")},
			"no-key"},
		{"busy address", Options{Addr: busy.Addr().String()}, busy.Addr().String()},
		{"busy metrics address", Options{Addr: free, MetricsAddr: busy.Addr().String()}, busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Models = dir
			if o.Addr == "" {
				o.Addr = "127.0.0.1:0"
			}
			if p, err := Start(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("started %v: %v; want an error naming %q", p, err, tc.want)
			}
			if l, err := net.Listen("tcp", o.Addr); err == nil {
				l.Close()
			} else if o.Addr == free {
				t.Errorf("the gRPC listener was not released: %v", err)
			}
		})
	}
}

// freeAddr is a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// D6: SIGHUP reopens the audit log at its path (after logrotate moved it) and rescans the
// repository; the server goes on.
func TestOnHangup(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	a, err := OpenAudit(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv, err := New(Config{Models: filepath.Join(dir, "models")})
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal)
	done := make(chan struct{})
	go func() { defer close(done); onHangup(ctx, slog.New(slog.NewTextHandler(&logs, nil)), hup, srv, a) }()
	a.Write(AuditRecord{RequestID: "before"})
	if err := os.Rename(auditPath, auditPath+".1"); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	hup <- syscall.SIGHUP // the second waits for the first to be handled
	a.Write(AuditRecord{RequestID: "after"})
	cancel()
	<-done
	old, _ := os.ReadFile(auditPath + ".1")
	cur, err := os.ReadFile(auditPath)
	if err != nil || !strings.Contains(string(old), `"before"`) || strings.Contains(string(old), `"after"`) ||
		!strings.Contains(string(cur), `"after"`) {
		t.Fatalf("audit log not reopened: old %q, new %q (%v)", old, cur, err)
	}
	// The repository did not exist: the rescan failed, was logged, and nothing stopped.
	if !strings.Contains(logs.String(), "SIGHUP: model repository scan") {
		t.Fatalf("logs: %s", logs.String())
	}
}
