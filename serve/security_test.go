package serve

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client certificate, made fresh.
type testPKI struct {
	dir                     string
	caPEM                   []byte
	caFile, srvCert, srvKey string
	cliCert, cliKey         string
	ca                      *x509.Certificate
	caKey                   *ecdsa.PrivateKey
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "medseq test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	p.caPEM, _ = os.ReadFile(p.caFile)
	p.srvCert, p.srvKey = p.issue(t, "server", 2, x509.ExtKeyUsageServerAuth)
	p.cliCert, p.cliKey = p.issue(t, "client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) issue(t testing.TB, cn string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, cn+".pem"), filepath.Join(p.dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return
}

func (p *testPKI) clientCreds(t testing.TB, withCert bool) grpc.DialOption {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withCert {
		c, err := tls.LoadX509KeyPair(p.cliCert, p.cliKey)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tc))
}

func TestTLSAndMutualTLS(t *testing.T) {
	pki := newPKI(t)
	req := heldOut(t, 1)[0].Request
	t.Run("tls", func(t *testing.T) {
		tc, err := TLSConfig(pki.srvCert, pki.srvKey, "")
		if err != nil {
			t.Fatal(err)
		}
		r := start(t, Config{Models: newRepo(t), TLS: tc})
		pc := medseqv1.NewPredictorClient(dial(t, r.addr, pki.clientCreds(t, false)))
		if _, err := pc.Predict(tctx(t), req); err != nil {
			t.Fatal(err)
		}
		// A plaintext client cannot talk to a TLS server.
		pcPlain := medseqv1.NewPredictorClient(dial(t, r.addr))
		if _, err := pcPlain.Predict(tctx(t), req); status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext to TLS: %v", err)
		}
	})
	t.Run("mtls", func(t *testing.T) {
		tc, err := TLSConfig(pki.srvCert, pki.srvKey, pki.caFile)
		if err != nil {
			t.Fatal(err)
		}
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		a, err := OpenAudit(audit)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		r := start(t, Config{Models: newRepo(t), TLS: tc, Audit: a})
		pc := medseqv1.NewPredictorClient(dial(t, r.addr, pki.clientCreds(t, true)))
		if _, err := pc.Predict(tctx(t), req); err != nil {
			t.Fatal(err)
		}
		recs := readAudit(t, audit)
		if len(recs) != 1 || recs[0].Caller != "cert:client" {
			t.Fatalf("audit %+v", recs)
		}
		noCert := medseqv1.NewPredictorClient(dial(t, r.addr, pki.clientCreds(t, false)))
		if _, err := noCert.Predict(tctx(t), req); err == nil {
			t.Fatal("mTLS server accepted a client without a certificate")
		}
	})
}

func readAudit(t testing.TB, path string) []AuditRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestTokensAndAudit(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tokens")
	os.WriteFile(tokFile, []byte("# callers\nalice s3cret-token-alice-0123\nbob   s3cret-token-bob-456789\n"), 0o600)
	toks, err := LoadTokens(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "short"), []byte("a short\n"), 0o600)
	if _, err := LoadTokens(filepath.Join(dir, "short")); err == nil {
		t.Fatal("short token accepted")
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	old := `{"time":"2020-01-01T00:00:00Z","request_id":"old","caller":"x","method":"Predict","model":"m",` +
		`"version":"1","score":0.5}`
	os.WriteFile(auditPath, []byte(old+"\n"), 0o600)
	a, err := OpenAudit(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var logBuf logBuffer
	r := start(t, Config{Models: newRepo(t), Tokens: toks, Audit: a, Log: newTestLogger(&logBuf)})
	cc := dial(t, r.addr)
	pc := medseqv1.NewPredictorClient(cc)
	reqs := heldOut(t, 3)
	req := reqs[0].Request
	ctx := tctx(t)
	_, err = pc.Predict(ctx, req)
	wantCode(t, err, codes.Unauthenticated, "authorization")
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope-nope-nope-nope")
	_, err = pc.Predict(bad, req)
	wantCode(t, err, codes.Unauthenticated, "authorization")
	_, err = inferencepb.NewGRPCInferenceServiceClient(cc).ModelInfer(ctx,
		InferRequest(fixtureModel, "", requestsOf(reqs)))
	wantCode(t, err, codes.Unauthenticated, "authorization")
	// Health and liveness stay open.
	if h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil ||
		h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with tokens: %v %v", h, err)
	}
	if _, err := inferencepb.NewGRPCInferenceServiceClient(cc).ServerLive(ctx,
		&inferencepb.ServerLiveRequest{}); err != nil {
		t.Fatal(err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret-token-bob-456789", "x-request-id",
		"req-42")
	resp, err := pc.Predict(good, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.RequestId != "req-42" {
		t.Fatalf("request id %q", resp.RequestId)
	}
	if _, err := inferencepb.NewGRPCInferenceServiceClient(cc).ModelInfer(good,
		InferRequest(fixtureModel, "", requestsOf(reqs))); err != nil {
		t.Fatal(err)
	}
	recs := readAudit(t, auditPath)
	if len(recs) != 1+1+len(reqs) || recs[0].RequestID != "old" {
		t.Fatalf("audit log has %d records (appended to the old one?): %+v", len(recs), recs)
	}
	got := recs[1]
	if got.Caller != "bob" || got.RequestID != "req-42" || got.Model != fixtureModel || got.Version != "1" ||
		got.SubjectHash != HashSubject(req.SubjectId) || got.Score != resp.Probability || got.Time.IsZero() {
		t.Fatalf("audit record %+v", got)
	}
	// With a key, the hash is an HMAC: not the plain SHA-256 of the id.
	keyed := &Audit{}
	keyed.SetKey([]byte("0123456789abcdef"))
	if h := keyed.hash(req.SubjectId); h == HashSubject(req.SubjectId) || len(h) != 64 {
		t.Fatalf("keyed hash %q", h)
	}
	raw, _ := os.ReadFile(auditPath)
	for _, lr := range reqs {
		for _, e := range lr.Request.Events[:3] {
			if strings.Contains(string(raw), e.Code) {
				t.Fatalf("audit log holds a code")
			}
		}
		if strings.Contains(string(raw), `"`+lr.Request.SubjectId+`"`) {
			t.Fatalf("audit log holds a subject id")
		}
	}
	// The process log holds neither codes nor tokens.
	for _, bad := range []string{req.Events[0].Code, "s3cret", req.SubjectId + `"`} {
		if strings.Contains(logBuf.String(), bad) {
			t.Fatalf("process log holds %q", bad)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	pc := medseqv1.NewPredictorClient(dial(t, r.addr))
	reqs := heldOut(t, 2)
	if _, err := pc.Predict(tctx(t), reqs[0].Request); err != nil {
		t.Fatal(err)
	}
	pc.Predict(tctx(t), &medseqv1.PredictRequest{ModelName: "nope"})
	hs := httptest.NewServer(r.srv.MetricsHandler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`medseq_requests_total{code="OK",method="Predict",model="t2d-xgboost"} 1`,
		`medseq_requests_total{code="NotFound",method="Predict",model=""} 1`,
		`medseq_request_duration_seconds_bucket{method="Predict",model="t2d-xgboost",version="1",le=`,
		`medseq_batch_size_bucket{method="Predict",model="t2d-xgboost"`,
		`medseq_queue_duration_seconds_bucket{model="t2d-xgboost"`,
		`medseq_model_load_duration_seconds{model="t2d-xgboost",version="1"}`,
		`medseq_model_loads_total{model="t2d-xgboost",status="ok"} 1`,
		`medseq_model_versions_loaded 1`,
		`medseq_inference_count_total{model="t2d-xgboost",version="1"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), reqs[0].Request.Events[0].Code) {
		t.Error("metrics hold a code")
	}
}

func TestRecoverPanics(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	_, err := r.srv.unaryInterceptor(context.Background(), nil,
		&grpc.UnaryServerInfo{FullMethod: "/medseq.v1.Predictor/Predict"},
		func(ctx context.Context, req any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic gave %v", err)
	}
}
