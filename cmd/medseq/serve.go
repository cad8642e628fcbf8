package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
)

// runServe serves a model repository over gRPC until SIGINT/SIGTERM, then drains.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "--models DIR [--addr HOST:PORT] [--metrics-addr HOST:PORT] [flags]")
	models := fs.String("models", "", "model repository: DIR/<name>/<version>/")
	addr := fs.String("addr", "127.0.0.1:8500", "gRPC listen address")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9090", "Prometheus /metrics listen address (empty: off)")
	policy := fs.String("version-policy", "latest", "version served when a request names none: latest, or name=version[,name=version]")
	poll := fs.Duration("poll", 5*time.Second, "how often to look for new model versions (0: load once)")
	maxCodes := fs.Int("max-codes", serve.DefaultLimits().MaxCodes, "most events per subject")
	maxBatch := fs.Int("max-request-subjects", serve.DefaultLimits().MaxBatch, "most subjects in one PredictBatch or ModelInfer request")
	maxMsg := fs.Int("max-message-bytes", 16<<20, "largest request or response message")
	maxConc := fs.Int("max-concurrency", 0, "requests scoring at once (0: 4 x CPUs)")
	maxInflight := fs.Int64("max-inflight-bytes", serve.DefaultMaxInflightBytes, "memory held by requests being received and answered "+
		"(a request holds twice --max-message-bytes while it arrives, then its decoded size); a call that cannot get it within a second is RESOURCE_EXHAUSTED")
	modelHealth := fs.Bool("model-health", true, "per-model health entries (medseq.v1.Predictor/<name>): health needs no token, so they name the models to anyone who can connect")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM); with --tls-key")
	keyFile := fs.String("tls-key", "", "TLS private key (PEM)")
	clientCA := fs.String("client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	tokens := fs.String("tokens", "", "bearer tokens file (CALLER TOKEN per line) required for prediction RPCs")
	audit := fs.String("audit", "", "append-only audit log (JSON lines)")
	auditKey := fs.String("audit-key-file", "", "hash subject ids in the audit log with HMAC-SHA-256 under this file's key (default: plain SHA-256)")
	gap := fs.String("gap", "", "override the cohort gap hidden before each prediction time (e.g. 30d)")
	thresholds := map[string]float64{}
	fs.Func("threshold", "NAME=PROBABILITY: decide model NAME at this calibrated probability instead of its manifest's operating point "+
		"(repeatable; GetModel and the medseq_model_threshold metric say so)", func(v string) error {
		name, val, ok := strings.Cut(v, "=")
		t, err := strconv.ParseFloat(val, 64)
		if !ok || name == "" || err != nil || !(t >= 0 && t <= 1) {
			return fmt.Errorf("%q: want NAME=PROBABILITY with a probability in [0, 1]", v)
		}
		thresholds[name] = t
		return nil
	})
	defBatch := serve.DefaultBatching()
	batchMax := fs.Int("dynamic-batch-size", defBatch.MaxBatch, "dynamic batching of Predict calls: most subjects per scoring call (0/1: off)")
	batchDelay := fs.Duration("dynamic-batch-delay", defBatch.MaxDelay, "dynamic batching: longest a call waits for others to join its batch")
	batchKinds := fs.String("dynamic-batch-kinds", strings.Join(defBatch.Kinds, ","), "dynamic batching: model kinds batched (bert, xgboost, comma-separated; all: every kind)")
	pprofOn := fs.Bool("pprof", false, "also serve /debug/pprof/ on --metrics-addr (keep that address private)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long calls in flight may take to finish on shutdown")
	var sd scoringDevice
	sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("models", *models); err != nil {
		return err
	}
	// A limit is never silently replaced: zero or negative is refused where it means nothing.
	for _, l := range []struct {
		name string
		v    int64
		zero bool // 0 has a meaning (documented in the flag's help)
	}{
		{"max-codes", int64(*maxCodes), false}, {"max-request-subjects", int64(*maxBatch), false},
		{"max-message-bytes", int64(*maxMsg), false}, {"max-inflight-bytes", *maxInflight, false},
		{"max-concurrency", int64(*maxConc), true}, {"dynamic-batch-size", int64(*batchMax), true},
		{"dynamic-batch-delay", int64(*batchDelay), true}, {"poll", int64(*poll), true},
		{"drain-timeout", int64(*drain), false},
	} {
		if l.v < 0 || (l.v == 0 && !l.zero) {
			want := "positive"
			if l.zero {
				want = "zero or positive"
			}
			return usagef("flag --%s: must be %s", l.name, want)
		}
	}
	if *maxInflight < 2*int64(*maxMsg) {
		return usagef("flag --max-inflight-bytes (%d) is below twice --max-message-bytes (%d): no request of that size could be read", *maxInflight, *maxMsg)
	}
	if *auditKey != "" && *audit == "" {
		return usagef("flag --audit-key-file needs --audit")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usagef("flags --tls-cert and --tls-key go together")
	}
	if *clientCA != "" && *certFile == "" {
		return usagef("flag --client-ca needs --tls-cert and --tls-key")
	}
	pol, err := serve.ParsePolicy(*policy)
	if err != nil {
		return usagef("flag --version-policy: %v", err)
	}
	reg, dev, err := sd.registry()
	if err != nil {
		return err
	}
	e.log.Info("BERT models score on", "device", dev.Kind, "reason", dev.Reason)
	cfg := serve.Config{Models: *models, Policy: pol, Poll: *poll, MaxMessageBytes: *maxMsg, MaxConcurrency: *maxConc,
		MaxInflightBytes: *maxInflight, NoModelHealth: !*modelHealth,
		Limits: serve.Limits{MaxCodes: *maxCodes, MaxBatch: *maxBatch}, DrainTimeout: *drain, Log: e.log,
		Batching: serve.Batching{MaxBatch: *batchMax, MaxDelay: *batchDelay}, Scorers: reg, Thresholds: thresholds}
	if cfg.Batching.Kinds, err = parseBatchKinds(*batchKinds); err != nil {
		return err
	}
	if *gap != "" {
		g, err := data.ParseDuration(*gap)
		if err != nil {
			return usagef("flag --gap: %v", err)
		}
		cfg.Gap = &g
	}
	if *certFile != "" {
		if cfg.TLS, err = serve.TLSConfig(*certFile, *keyFile, *clientCA); err != nil {
			return err
		}
	}
	if *tokens != "" {
		if cfg.Tokens, err = serve.LoadTokens(*tokens); err != nil {
			return err
		}
	}
	if *audit != "" {
		if cfg.Audit, err = serve.OpenAudit(*audit); err != nil {
			return err
		}
		defer cfg.Audit.Close()
		if *auditKey != "" {
			key, err := os.ReadFile(*auditKey)
			if err != nil {
				return err
			}
			if key = []byte(strings.TrimSpace(string(key))); len(key) < 16 {
				return fmt.Errorf("--audit-key-file %s: key shorter than 16 bytes", *auditKey)
			}
			cfg.Audit.SetKey(key)
		}
	}
	srv, err := serve.New(cfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if cfg.TLS == nil && !isLoopback(lis.Addr()) {
		e.log.Warn("serving without TLS on a non-loopback address; health data should not cross a network in clear", "addr", lis.Addr().String())
	}
	var hs *http.Server
	if *metricsAddr != "" {
		mlis, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			lis.Close()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.MetricsHandler())
		if *pprofOn {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.log.Error("metrics server", "err", err)
			}
		}()
		e.log.Info("metrics", "addr", mlis.Addr().String())
	}
	e.log.Info("serving", "addr", lis.Addr().String(), "models", *models, "tls", cfg.TLS != nil, "mtls", *clientCA != "", "tokens", cfg.Tokens != nil)
	// SIGHUP reopens the audit log (after logrotate) and rescans the repository; calls in
	// flight are not touched. Without this, SIGHUP's default action kills the server undrained.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupDone := make(chan struct{})
	defer func() { <-hupDone }()
	hctx, stopHup := context.WithCancel(ctx)
	defer stopHup()
	go func() { defer close(hupDone); onHangup(hctx, e.log, hup, srv, cfg.Audit) }()
	fmt.Fprintf(e.stdout, "serving %s on %s\n", *models, lis.Addr())
	err = srv.Serve(ctx, lis)
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(sctx)
		cancel()
	}
	e.log.Info("stopped")
	return err
}

// onHangup handles each signal from hup until ctx ends: the audit log (when there is one) is
// reopened at its path and the model repository rescanned. A failure is logged and the server
// goes on as it was.
func onHangup(ctx context.Context, log *slog.Logger, hup <-chan os.Signal, srv *serve.Server, audit *serve.Audit) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		log.Info("SIGHUP: reopening the audit log and rescanning the model repository")
		if err := audit.Reopen(); err != nil {
			log.Error("SIGHUP: the audit log stays on its old file", "err", err)
		}
		if err := srv.Scan(ctx); err != nil && ctx.Err() == nil {
			log.Warn("SIGHUP: model repository scan", "err", err)
		}
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// runPredictClient scores one subject with a running server (medseq predict --addr).
func runPredictClient(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "predict", "--addr HOST:PORT --name NAME --codes \"CODE@TIME ...\" --prediction-time T [flags]")
	addr := fs.String("addr", "", "server address HOST:PORT")
	name := fs.String("name", "", "model name")
	version := fs.String("version", "", "model version (default: the server's policy)")
	codesFlag := fs.String("codes", "", "space-separated CODE@TIME or CODE@TIME=VALUE items (TIME: RFC 3339 or YYYY-MM-DD; VALUE: the event's numeric value; bare CODE: static)")
	pt := fs.String("prediction-time", "", "prediction time (default: now)")
	birth := fs.String("birth-date", "", "birth date (RFC 3339 or YYYY-MM-DD)")
	sex := fs.String("sex", "", "F or M")
	subject := fs.String("subject", "", "subject id (hashed in the server's audit log)")
	token := fs.String("token", os.Getenv("MEDSEQ_TOKEN"), "bearer token (default $MEDSEQ_TOKEN)")
	caFile := fs.String("ca", "", "CA certificate to verify the server (turns TLS on)")
	certFile := fs.String("cert", "", "client certificate for mutual TLS (PEM)")
	keyFile := fs.String("key", "", "client key for mutual TLS (PEM)")
	serverName := fs.String("server-name", "", "TLS server name (default: the host of --addr)")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline for the call")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("addr", *addr, "name", *name, "codes", *codesFlag); err != nil {
		return err
	}
	if err := serve.CheckCodes(*codesFlag); err != nil {
		return usagef("flag --codes: %v", err)
	}
	if *pt == "" {
		*pt = time.Now().UTC().Format(time.RFC3339)
	}
	creds := insecure.NewCredentials()
	if *caFile != "" || *certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: *serverName}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--ca %s: no certificates", *caFile)
			}
		}
		if *certFile != "" {
			c, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				return err
			}
			tc.Certificates = []tls.Certificate{c}
		}
		creds = credentials.NewTLS(tc)
	}
	cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}
	req := &medseqv1.PredictRequest{ModelName: *name, ModelVersion: *version, SubjectId: *subject,
		Events: serve.ParseCodes(*codesFlag), PredictionTime: *pt, BirthDate: *birth, Sex: *sex}
	resp, err := medseqv1.NewPredictorClient(cc).Predict(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := protojsonMarshal(resp)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	fmt.Fprintf(e.stdout, "model       %s version %s\nprobability %.9g (raw %.9g, calibrated)\ndecision    %v at threshold %.6g\nevents      %d used, %d censored; %d codes unknown, %d truncated\nrequest id  %s\n",
		resp.ModelName, resp.ModelVersion, resp.Probability, resp.RawScore, resp.Decision, resp.Threshold,
		resp.EventsUsed, resp.EventsCensored, resp.UnknownCodes, resp.TruncatedCodes, strings.TrimSpace(resp.RequestId))
	return nil
}

func protojsonMarshal(m *medseqv1.PredictResponse) ([]byte, error) {
	return protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
}

// parseBatchKinds reads --dynamic-batch-kinds: model kinds, comma-separated, or "all" (every kind).
func parseBatchKinds(v string) ([]string, error) {
	if strings.TrimSpace(v) == "all" {
		return nil, nil
	}
	var kinds []string
	for _, k := range strings.Split(v, ",") {
		switch k = strings.TrimSpace(k); k {
		case modelrepo.KindBERT, modelrepo.KindXGBoost:
			kinds = append(kinds, k)
		default:
			return nil, usagef("flag --dynamic-batch-kinds: unknown model kind %q (want %s, %s or all)", k, modelrepo.KindBERT, modelrepo.KindXGBoost)
		}
	}
	return kinds, nil
}
