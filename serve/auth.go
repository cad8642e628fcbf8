package serve

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Tokens maps the SHA-256 of each bearer token to its caller's name.
type Tokens map[[32]byte]string

// LoadTokens reads a tokens file: one "CALLER TOKEN" per line (a line with only TOKEN names
// the caller "token-N"); blank lines and lines starting with # are skipped. Tokens must be
// at least 16 characters.
func LoadTokens(path string) (Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	t := Tokens{}
	seen := map[[32]byte]int{} // token hash -> line
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var caller, tok string
		switch len(fields) {
		case 1:
			caller, tok = fmt.Sprintf("token-%d", n), fields[0]
		case 2:
			caller, tok = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("tokens %s line %d: want CALLER TOKEN", path, n)
		}
		if len(tok) < 16 {
			return nil, fmt.Errorf("tokens %s line %d: token shorter than 16 characters", path, n)
		}
		h := sha256.Sum256([]byte(tok))
		if first, dup := seen[h]; dup {
			// Two lines with one token make the audit log's caller ambiguous.
			return nil, fmt.Errorf("tokens %s line %d: the token of line %d again (each caller needs its own token)", path, n,
				first)
		}
		seen[h] = n
		t[h] = caller
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	if len(t) == 0 {
		return nil, fmt.Errorf("tokens %s: no tokens", path)
	}
	return t, nil
}

// openMethods need no token: health, reflection and the liveness/readiness probes.
func openMethod(full string) bool {
	return strings.HasPrefix(full, "/grpc.health.v1.") || strings.HasPrefix(full, "/grpc.reflection.") ||
		full == "/inference.GRPCInferenceService/ServerLive" || full == "/inference.GRPCInferenceService/ServerReady"
}

type callerKey struct{}

// Caller is who made the request: the token's caller, else the client certificate's
// subject common name, else "anonymous".
func Caller(ctx context.Context) string {
	if c, ok := ctx.Value(callerKey{}).(string); ok {
		return c
	}
	return "anonymous"
}

// authenticate checks the bearer token (when tokens are configured) and returns the context
// carrying the caller.
func (s *Server) authenticate(ctx context.Context, full string) (context.Context, error) {
	caller := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			caller = "cert:" + ti.State.PeerCertificates[0].Subject.CommonName
		}
	}
	if s.tokens != nil && !openMethod(full) {
		// The tap (tapAuth) checked the token before the request was read; a call that did
		// not pass through it (a test calling the interceptor) is checked here.
		if name, ok := ctx.Value(tokenCallerKey{}).(string); ok {
			caller = name
		} else {
			hdr := ""
			if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
				hdr = vals[0]
			}
			name, reason, err := s.tokens.check(hdr)
			if err != nil {
				s.authFailed(ctx, full, reason, false)
				return ctx, err
			}
			caller = name
		}
	}
	if caller == "" {
		return ctx, nil
	}
	return context.WithValue(ctx, callerKey{}, caller), nil
}

// check reads an authorization header's bearer token: the caller, or why it fails (a
// metric label: missing, malformed, unknown) with the Unauthenticated status to answer.
func (t Tokens) check(header string) (caller, reason string, err error) {
	if header == "" {
		return "", "missing", status.Error(codes.Unauthenticated, "authorization: bearer token required")
	}
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(header, "bearer ")
	}
	if !ok {
		return "", "malformed", status.Error(codes.Unauthenticated, "authorization: want \"Bearer TOKEN\"")
	}
	name, found := t[sha256.Sum256([]byte(strings.TrimSpace(tok)))]
	if !found {
		return "", "unknown", status.Error(codes.Unauthenticated, "authorization: unknown token")
	}
	return name, "", nil
}

// TLSConfig builds the server's TLS configuration: cert and key (PEM files), and when
// clientCA is given, mutual TLS requiring client certificates signed by it.
func TLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client CA %s: no certificates", clientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
