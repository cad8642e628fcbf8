package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// ClientConfig is how a client reaches a server (`medseq predict --addr`): the address, TLS
// (on when CA or Cert is given) and a bearer token.
type ClientConfig struct {
	Addr       string
	Token      string        // bearer token; "": none
	CA         string        // CA certificate (PEM) that verifies the server; turns TLS on
	Cert, Key  string        // client certificate and key (PEM) for mutual TLS
	ServerName string        // TLS server name; "": the host of Addr
	Timeout    time.Duration // deadline for each call; 0: none
}

// credentials are the transport credentials of c: plaintext, or TLS with its files.
func (c ClientConfig) credentials() (credentials.TransportCredentials, error) {
	if c.CA == "" && c.Cert == "" {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no certificates", c.CA)
		}
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// Dial connects to the server of c (lazily, as grpc.NewClient does).
func Dial(c ClientConfig) (*grpc.ClientConn, error) {
	creds, err := c.credentials()
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds))
}

// Predict scores one subject with the server of c: medseq.v1.Predictor/Predict, with the
// bearer token and within the timeout.
func Predict(ctx context.Context, c ClientConfig, req *medseqv1.PredictRequest) (*medseqv1.PredictResponse, error) {
	cc, err := Dial(c)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if c.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Token)
	}
	return medseqv1.NewPredictorClient(cc).Predict(ctx, req)
}
