package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Options are what `medseq serve` runs: the server's Config, where it listens, and the files
// behind Config's TLS, bearer tokens and audit log (Start loads them into it).
type Options struct {
	Config
	Addr        string // gRPC listen address (HOST:PORT; port 0 picks one)
	MetricsAddr string // Prometheus /metrics listen address; "": none
	Pprof       bool   // also serve /debug/pprof/ on MetricsAddr
	// TLSCert and TLSKey (PEM) turn TLS on; ClientCA also requires client certificates
	// signed by it (mutual TLS).
	TLSCert, TLSKey, ClientCA string
	TokensFile                string // bearer tokens (CALLER TOKEN per line) required for prediction RPCs
	AuditFile                 string // append-only audit log (JSON lines)
	// AuditKeyFile holds the key (at least 16 bytes) under which the audit log hashes subject
	// ids with HMAC-SHA-256 instead of plain SHA-256.
	AuditKeyFile string
}

// Process is a server started by Start: listening, not yet serving.
type Process struct {
	srv     *Server
	audit   *Audit
	lis     net.Listener
	metrics *http.Server // nil without a metrics address
	maddr   net.Addr
	hup     chan os.Signal
	log     *slog.Logger
}

// Start loads the TLS configuration, tokens and audit log that o names into its Config, builds
// the server, opens the gRPC listener and the metrics one (its HTTP server starts serving),
// and takes SIGHUP from here on (Run handles it). A failure releases what was opened.
func Start(o Options) (p *Process, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := o.loadFiles(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			o.Audit.Close()
		}
	}()
	srv, err := New(o.Config)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	if o.TLS == nil && !isLoopback(lis.Addr()) {
		o.Log.Warn("serving without TLS on a non-loopback address; health data should not cross a network in clear", "addr",
			lis.Addr().String())
	}
	p = &Process{srv: srv, audit: o.Audit, lis: lis, log: o.Log}
	if o.MetricsAddr != "" {
		if p.metrics, p.maddr, err = startMetrics(o, srv); err != nil {
			lis.Close()
			return nil, err
		}
	}
	o.Log.Info("serving", "addr", lis.Addr().String(), "models", o.Models, "tls", o.TLS != nil, "mtls", o.ClientCA != "",
		"tokens", o.Tokens != nil)
	// Without this, SIGHUP's default action kills the server undrained.
	p.hup = make(chan os.Signal, 1)
	signal.Notify(p.hup, syscall.SIGHUP)
	return p, nil
}

// loadFiles reads the TLS files, the tokens and the audit log (with its key) into o.Config.
func (o *Options) loadFiles() error {
	var err error
	if o.TLSCert != "" {
		if o.TLS, err = TLSConfig(o.TLSCert, o.TLSKey, o.ClientCA); err != nil {
			return err
		}
	}
	if o.TokensFile != "" {
		if o.Tokens, err = LoadTokens(o.TokensFile); err != nil {
			return err
		}
	}
	if o.AuditFile == "" {
		return nil
	}
	if o.Audit, err = OpenAudit(o.AuditFile); err != nil {
		return err
	}
	if o.AuditKeyFile == "" {
		return nil
	}
	key, err := os.ReadFile(o.AuditKeyFile)
	if err == nil && len(strings.TrimSpace(string(key))) < 16 {
		err = fmt.Errorf("--audit-key-file %s: key shorter than 16 bytes", o.AuditKeyFile)
	}
	if err != nil {
		o.Audit.Close()
		return err
	}
	o.Audit.SetKey([]byte(strings.TrimSpace(string(key))))
	return nil
}

// startMetrics listens on o.MetricsAddr and serves /metrics there (and /debug/pprof/ with
// o.Pprof) in the background.
func startMetrics(o Options, srv *Server) (*http.Server, net.Addr, error) {
	mlis, err := net.Listen("tcp", o.MetricsAddr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.MetricsHandler())
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("metrics server", "err", err)
		}
	}()
	o.Log.Info("metrics", "addr", mlis.Addr().String())
	return hs, mlis.Addr(), nil
}

// Addr is the gRPC listener's address.
func (p *Process) Addr() net.Addr { return p.lis.Addr() }

// MetricsAddr is the metrics listener's address; nil without one.
func (p *Process) MetricsAddr() net.Addr { return p.maddr }

// Server is the process's server.
func (p *Process) Server() *Server { return p.srv }

// Run serves until ctx ends, then drains (Server.Serve), stops the metrics server and closes
// the audit log. Meanwhile each SIGHUP reopens the audit log (after logrotate) and rescans the
// model repository; calls in flight are not touched.
func (p *Process) Run(ctx context.Context) error {
	defer p.audit.Close()
	defer signal.Stop(p.hup)
	hupDone := make(chan struct{})
	defer func() { <-hupDone }()
	hctx, stopHup := context.WithCancel(ctx)
	defer stopHup()
	go func() { defer close(hupDone); onHangup(hctx, p.log, p.hup, p.srv, p.audit) }()
	err := p.srv.Serve(ctx, p.lis)
	if p.metrics != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.metrics.Shutdown(sctx)
		cancel()
	}
	p.log.Info("stopped")
	return err
}

// onHangup handles each signal from hup until ctx ends: the audit log (when there is one) is
// reopened at its path and the model repository rescanned. A failure is logged and the server
// goes on as it was.
func onHangup(ctx context.Context, log *slog.Logger, hup <-chan os.Signal, srv *Server, audit *Audit) {
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
