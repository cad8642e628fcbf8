package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/serve"
)

// serveFlags reads the flags of `medseq serve` into the server's options; the flags that need
// parsing come back raw in serveRaw.
func serveFlags(e *env, args []string) (*serve.Options, *serveRaw, error) {
	fs := newFlags(e, "serve", "--models DIR | --model-dir DIR --model-name NAME [--addr HOST:PORT | --grpc-port PORT] "+
		"[--metrics-addr HOST:PORT] [flags]")
	o, r := &serve.Options{Config: serve.Config{Log: e.log, Thresholds: map[string]float64{}}}, &serveRaw{}
	defBatch := serve.DefaultBatching()
	fs.StringVar(&o.Models, "models", "", "model repository: DIR/<name>/<version>/")
	fs.StringVar(&r.modelDir, "model-dir", "", "single-model mode (KServe: /mnt/models): the folder of one model version "+
		"(its manifest.json at the top), served as --model-name")
	fs.StringVar(&o.ModelName, "model-name", "", "single-model mode: the name the model is served under")
	fs.StringVar(&o.ModelVersion, "model-version", "1", "single-model mode: the version it is served as (a positive "+
		"integer)")
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8500", "gRPC listen address")
	fs.IntVar(&r.grpcPort, "grpc-port", 0, "listen for gRPC on this port on every interface (instead of --addr; KServe's "+
		"runtimes pass the port)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "127.0.0.1:9090", "Prometheus /metrics listen address (empty: off)")
	fs.StringVar(&r.policy, "version-policy", "latest", "version served when a request names none: latest, or "+
		"name=version[,name=version]")
	fs.DurationVar(&o.Poll, "poll", 5*time.Second, "how often to look for new model versions (0: load once)")
	fs.IntVar(&o.Limits.MaxCodes, "max-codes", serve.DefaultLimits().MaxCodes, "most events per subject")
	fs.IntVar(&o.Limits.MaxBatch, "max-request-subjects", serve.DefaultLimits().MaxBatch, "most subjects in one "+
		"PredictBatch or ModelInfer request")
	fs.IntVar(&o.MaxMessageBytes, "max-message-bytes", 16<<20, "largest request or response message")
	fs.IntVar(&o.MaxConcurrency, "max-concurrency", 0, "requests scoring at once (0: 4 x CPUs)")
	fs.Int64Var(&o.MaxInflightBytes, "max-inflight-bytes", serve.DefaultMaxInflightBytes, "memory held by requests being "+
		"received and answered "+
		"(a request holds twice --max-message-bytes while it arrives, then its decoded size); a call that cannot get it "+
		"within a second is RESOURCE_EXHAUSTED")
	fs.BoolVar(&r.modelHealth, "model-health", true, "per-model health entries (medseq.v1.Predictor/<name>): health "+
		"needs no token, so they name the models to anyone who can connect")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.ClientCA, "client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	fs.StringVar(&o.TokensFile, "tokens", "", "bearer tokens file (CALLER TOKEN per line) required for prediction RPCs")
	fs.StringVar(&o.AuditFile, "audit", "", "append-only audit log (JSON lines)")
	fs.StringVar(&o.AuditKeyFile, "audit-key-file", "", "hash subject ids in the audit log with HMAC-SHA-256 under this "+
		"file's key (default: plain SHA-256)")
	fs.StringVar(&r.gap, "gap", "", "override the cohort gap hidden before each prediction time (e.g. 30d)")
	fs.Func("threshold", "NAME=PROBABILITY: decide model NAME at this calibrated probability instead of its manifest's "+
		"operating point "+
		"(repeatable; GetModel and the medseq_model_threshold metric say so)", func(v string) error {
		name, val, ok := strings.Cut(v, "=")
		t, err := strconv.ParseFloat(val, 64)
		if !ok || name == "" || err != nil || !(t >= 0 && t <= 1) {
			return fmt.Errorf("%q: want NAME=PROBABILITY with a probability in [0, 1]", v)
		}
		o.Thresholds[name] = t
		return nil
	})
	fs.IntVar(&o.Batching.MaxBatch, "dynamic-batch-size", defBatch.MaxBatch, "dynamic batching of Predict calls: most "+
		"subjects per scoring call (0/1: off)")
	fs.DurationVar(&o.Batching.MaxDelay, "dynamic-batch-delay", defBatch.MaxDelay, "dynamic batching: longest a call "+
		"waits for others to join its batch")
	fs.StringVar(&r.batchKinds, "dynamic-batch-kinds", strings.Join(defBatch.Kinds, ","), "dynamic batching: model kinds "+
		"batched (bert, xgboost, comma-separated; all: every kind)")
	fs.BoolVar(&o.Pprof, "pprof", false, "also serve /debug/pprof/ on --metrics-addr (keep that address private)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 30*time.Second, "how long calls in flight may take to finish on "+
		"shutdown")
	r.sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	fs.Visit(func(f *flag.Flag) { r.set = append(r.set, f.Name) })
	return o, r, r.where(o)
}

// where settles what is served and where: --models, or --model-dir with --model-name
// (single-model mode), and --addr or --grpc-port.
func (r *serveRaw) where(o *serve.Options) error {
	single := r.modelDir != "" || o.ModelName != "" || slices.Contains(r.set, "model-version")
	switch {
	case o.Models != "" && single:
		return usagef("flag --models serves a repository; --model-dir, --model-name and --model-version serve one model " +
			"version: give one or the other")
	case single && (r.modelDir == "" || o.ModelName == ""):
		return usagef("flags --model-dir and --model-name go together (single-model mode)")
	case !single && o.Models == "":
		return usagef("flag --models (a model repository) or --model-dir with --model-name (one model version) is required")
	case slices.Contains(r.set, "grpc-port") && slices.Contains(r.set, "addr"):
		return usagef("flags --addr and --grpc-port both say where to listen: give one")
	case slices.Contains(r.set, "grpc-port") && (r.grpcPort < 1 || r.grpcPort > 65535):
		return usagef("flag --grpc-port: %d is not a TCP port (1-65535)", r.grpcPort)
	}
	if !single {
		o.ModelVersion = ""
		return r.port(o)
	}
	if _, ok := modelrepo.ParseVersion(o.ModelVersion); !ok {
		return usagef("flag --model-version: %q is not a version (a positive integer)", o.ModelVersion)
	}
	o.Models = r.modelDir
	return r.port(o)
}

// port applies --grpc-port.
func (r *serveRaw) port(o *serve.Options) error {
	if r.grpcPort != 0 {
		o.Addr = ":" + strconv.Itoa(r.grpcPort)
	}
	return nil
}

// serveRaw are the serve flags that are parsed after the flag set.
type serveRaw struct {
	policy, gap, batchKinds string
	modelHealth             bool
	sd                      scoringDevice
	modelDir                string   // --model-dir
	grpcPort                int      // --grpc-port; 0: --addr
	set                     []string // the flags given
}

// checkServeFlags refuses limits and flag combinations that mean nothing. A limit is never
// silently replaced: zero or negative is refused where it means nothing.
func checkServeFlags(o *serve.Options) error {
	for _, l := range []struct {
		name string
		v    int64
		zero bool // 0 has a meaning (documented in the flag's help)
	}{
		{"max-codes", int64(o.Limits.MaxCodes), false}, {"max-request-subjects", int64(o.Limits.MaxBatch), false},
		{"max-message-bytes", int64(o.MaxMessageBytes), false}, {"max-inflight-bytes", o.MaxInflightBytes, false},
		{"max-concurrency", int64(o.MaxConcurrency), true}, {"dynamic-batch-size", int64(o.Batching.MaxBatch), true},
		{"dynamic-batch-delay", int64(o.Batching.MaxDelay), true}, {"poll", int64(o.Poll), true},
		{"drain-timeout", int64(o.DrainTimeout), false},
	} {
		if l.v < 0 || (l.v == 0 && !l.zero) {
			want := "positive"
			if l.zero {
				want = "zero or positive"
			}
			return usagef("flag --%s: must be %s", l.name, want)
		}
	}
	switch {
	case o.MaxInflightBytes < 2*int64(o.MaxMessageBytes):
		return usagef("flag --max-inflight-bytes (%d) is below twice --max-message-bytes (%d): no request of that size "+
			"could be read", o.MaxInflightBytes, o.MaxMessageBytes)
	case o.AuditKeyFile != "" && o.AuditFile == "":
		return usagef("flag --audit-key-file needs --audit")
	case (o.TLSCert == "") != (o.TLSKey == ""):
		return usagef("flags --tls-cert and --tls-key go together")
	case o.ClientCA != "" && o.TLSCert == "":
		return usagef("flag --client-ca needs --tls-cert and --tls-key")
	}
	return nil
}

// serveOptions reads the serve flags into the server's options: checked limits, the version
// policy, the scoring device, batching kinds and the gap override.
func serveOptions(e *env, args []string) (*serve.Options, error) {
	o, r, err := serveFlags(e, args)
	if err != nil {
		return nil, err
	}
	if err := checkServeFlags(o); err != nil {
		return nil, err
	}
	if o.Policy, err = serve.ParsePolicy(r.policy); err != nil {
		return nil, usagef("flag --version-policy: %v", err)
	}
	reg, dev, err := r.sd.registry()
	if err != nil {
		return nil, err
	}
	e.log.Info("BERT models score on", "device", dev.Kind, "reason", dev.Reason)
	o.Scorers, o.NoModelHealth = reg, !r.modelHealth
	if o.Batching.Kinds, err = parseBatchKinds(r.batchKinds); err != nil {
		return nil, err
	}
	if r.gap != "" {
		g, err := data.ParseDuration(r.gap)
		if err != nil {
			return nil, usagef("flag --gap: %v", err)
		}
		o.Gap = &g
	}
	return o, nil
}

// runServe serves a model repository over gRPC until SIGINT/SIGTERM, then drains.
func runServe(ctx context.Context, e *env, args []string) error {
	o, err := serveOptions(e, args)
	if err != nil {
		return err
	}
	p, err := serve.Start(*o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "serving %s on %s\n", o.Models, p.Addr())
	return p.Run(ctx)
}

// runPredictClient scores one subject with a running server (medseq predict --addr).
func runPredictClient(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "predict", "--addr HOST:PORT --name NAME --codes \"CODE@TIME ...\" --prediction-time T [flags]")
	var c serve.ClientConfig
	req := &medseqv1.PredictRequest{}
	var codes string
	fs.StringVar(&c.Addr, "addr", "", "server address HOST:PORT")
	fs.StringVar(&req.ModelName, "name", "", "model name")
	fs.StringVar(&req.ModelVersion, "version", "", "model version (default: the server's policy)")
	fs.StringVar(&codes, "codes", "", "space-separated CODE@TIME or CODE@TIME=VALUE items (TIME: RFC 3339 or YYYY-MM-DD; "+
		"VALUE: the event's numeric value; bare CODE: static)")
	fs.StringVar(&req.PredictionTime, "prediction-time", "", "prediction time (default: now)")
	fs.StringVar(&req.BirthDate, "birth-date", "", "birth date (RFC 3339 or YYYY-MM-DD)")
	fs.StringVar(&req.Sex, "sex", "", "F or M")
	fs.StringVar(&req.SubjectId, "subject", "", "subject id (hashed in the server's audit log)")
	fs.StringVar(&c.Token, "token", os.Getenv("MEDSEQ_TOKEN"), "bearer token (default $MEDSEQ_TOKEN)")
	fs.StringVar(&c.CA, "ca", "", "CA certificate to verify the server (turns TLS on)")
	fs.StringVar(&c.Cert, "cert", "", "client certificate for mutual TLS (PEM)")
	fs.StringVar(&c.Key, "key", "", "client key for mutual TLS (PEM)")
	fs.StringVar(&c.ServerName, "server-name", "", "TLS server name (default: the host of --addr)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "deadline for the call")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("addr", c.Addr, "name", req.ModelName, "codes", codes); err != nil {
		return err
	}
	if err := serve.CheckCodes(codes); err != nil {
		return usagef("flag --codes: %v", err)
	}
	if req.PredictionTime == "" {
		req.PredictionTime = time.Now().UTC().Format(time.RFC3339)
	}
	req.Events = serve.ParseCodes(codes)
	resp, err := serve.Predict(ctx, c, req)
	if err != nil {
		return err
	}
	return printPredictResponse(e.stdout, resp, *asJSON)
}

// printPredictResponse prints a served prediction, as JSON or for people.
func printPredictResponse(w io.Writer, resp *medseqv1.PredictResponse, asJSON bool) error {
	if asJSON {
		b, err := protojsonMarshal(resp)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, string(b))
		return nil
	}
	fmt.Fprintf(w, "model       %s version %s\nprobability %.9g (raw %.9g, calibrated)\ndecision    %v at threshold "+
		"%.6g\nevents      %d used, %d censored; %d codes unknown, %d truncated\nrequest id  %s\n",
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
			return nil, usagef("flag --dynamic-batch-kinds: unknown model kind %q (want %s, %s or "+
				"all)", k, modelrepo.KindBERT, modelrepo.KindXGBoost)
		}
	}
	return kinds, nil
}
