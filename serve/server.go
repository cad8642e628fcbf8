package serve

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// Service names, as health checks name them.
const (
	PredictorService = "medseq.v1.Predictor"
	InferenceService = "inference.GRPCInferenceService"
)

// Config configures a Server.
type Config struct {
	Models          string        // model repository DIR/<name>/<version>/ (one version's folder with ModelName)
	Policy          Policy        // version served when a request names none
	Poll            time.Duration // repository polling interval; 0 = load once
	Limits          Limits
	MaxMessageBytes int         // largest request and response; 0 = 16 MiB
	MaxConcurrency  int         // requests scoring at once; 0 = 4 x GOMAXPROCS
	TLS             *tls.Config // nil = plaintext (loopback only, please)
	Tokens          Tokens      // nil = no bearer tokens
	Audit           *Audit      // nil = no audit log
	Gap             *int64      // overrides the gap read from manifests
	// Thresholds override a model's operating point (its manifest's threshold on the
	// calibrated probability), by model name; GetModel and the metrics say so.
	Thresholds   map[string]float64
	DrainTimeout time.Duration    // graceful drain on shutdown; 0 = 30s
	Batching     Batching         // dynamic batching of Predict; off when zero (DefaultBatching is the command's)
	Scorers      *scorer.Registry // model kinds the repository can load; nil: XGBoost only
	Log          *slog.Logger
	// MaxInflightBytes bounds the memory held by requests being received and answered: a
	// call holds twice MaxMessageBytes while its request arrives (the bytes as received and
	// the copy decoded), then the request's estimated decoded size; one that cannot (within a
	// second) is RESOURCE_EXHAUSTED. 0 = DefaultMaxInflightBytes; at least 2 x MaxMessageBytes.
	MaxInflightBytes int64
	// NoModelHealth leaves out the per-model health entries ("medseq.v1.Predictor/<name>"):
	// health is open to callers without a token, and those entries name the models.
	NoModelHealth bool
	// ModelName turns on single-model mode (KServe's /mnt/models): Models is one model
	// version's folder, served as this name and ModelVersion ("" = "1").
	ModelName, ModelVersion string
}

// Server is the gRPC server and its model repository.
type Server struct {
	cfg     Config
	log     *slog.Logger
	repo    *Repository
	metrics *Metrics
	health  *health.Server
	grpc    *grpc.Server
	tokens  Tokens
	audit   *Audit
	limits  Limits
	slots   chan struct{}
	batchQ  chan *job // nil: no dynamic batching
	tables  sync.Pool // per-request code tables of unbatched Predict calls
	wire    *codec    // the gRPC codec
	mem     *budget   // request memory in flight
	authLog authLog
	// modelHealth: models with a per-model health entry, guarded by mu.
	modelHealth map[string]bool

	mu       sync.Mutex
	draining bool
}

// New builds a server; nothing is loaded or listened on until Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, metrics: NewMetrics(), health: health.NewServer(), tokens: cfg.Tokens,
		wire: newCodec(), audit: cfg.Audit, limits: cfg.Limits.withDefaults(),
		slots: make(chan struct{}, cfg.MaxConcurrency)}
	if cfg.Batching.MaxBatch > 1 {
		s.batchQ = make(chan *job, cfg.Batching.MaxBatch*cfg.Batching.Workers)
	}
	s.mem = newBudget(cfg.MaxInflightBytes, s.metrics.InflightMem)
	s.repo = NewRepository(cfg.Models, cfg.Policy, cfg.Log)
	s.repo.gap = cfg.Gap
	s.repo.thresholds = cfg.Thresholds
	s.repo.single = singleModel{name: cfg.ModelName, version: cfg.ModelVersion}
	if cfg.Scorers != nil {
		s.repo.scorers = cfg.Scorers
	}
	s.repo.onLoad = s.countLoad
	s.grpc = grpc.NewServer(s.grpcOptions()...)
	s.register(&medseqv1.Predictor_ServiceDesc, &predictor{s: s})
	s.register(&inferencepb.GRPCInferenceService_ServiceDesc, &inference{s: s})
	s.register(&healthpb.Health_ServiceDesc, s.health)
	reflection.Register(s.grpc)
	s.setHealth()
	return s, nil
}

// setDefaults checks the configuration and fills in the defaults of what is zero.
func (cfg *Config) setDefaults() error {
	if cfg.Models == "" {
		return errors.New("serve: no model repository")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.checkSingleModel(); err != nil {
		return err
	}
	if cfg.MaxMessageBytes < 0 || cfg.MaxConcurrency < 0 || cfg.MaxInflightBytes < 0 || cfg.DrainTimeout < 0 ||
		cfg.Poll < 0 || cfg.Limits.MaxCodes < 0 || cfg.Limits.MaxBatch < 0 || cfg.Limits.MaxCodeLen < 0 {
		return errors.New("serve: negative limit (0 means the default)")
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 16 << 20
	}
	if cfg.MaxInflightBytes == 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.MaxInflightBytes < 2*int64(cfg.MaxMessageBytes) {
		return fmt.Errorf("serve: max in-flight bytes %d below twice the max message bytes %d: "+
			"no request of that size could be read", cfg.MaxInflightBytes, cfg.MaxMessageBytes)
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Batching.MaxBatch > 1 && cfg.Batching.Workers <= 0 {
		cfg.Batching.Workers = runtime.GOMAXPROCS(0)
	}
	for name, t := range cfg.Thresholds {
		if !(t >= 0 && t <= 1) {
			return fmt.Errorf("serve: threshold %v for model %s outside [0, 1]", t, name)
		}
	}
	return nil
}

// checkSingleModel checks single-model mode's name and version (a version is a positive
// integer, as a repository's folders are named) and fills in the default version.
func (cfg *Config) checkSingleModel() error {
	if cfg.ModelName == "" {
		if cfg.ModelVersion != "" {
			return errors.New("serve: a model version without a model name (single-model mode)")
		}
		return nil
	}
	if err := checkModelName(cfg.ModelName); err != nil {
		return err
	}
	if cfg.ModelVersion == "" {
		cfg.ModelVersion = "1"
	}
	if _, ok := modelrepo.ParseVersion(cfg.ModelVersion); !ok {
		return fmt.Errorf("serve: model version %q is not a positive integer", cfg.ModelVersion)
	}
	return nil
}

// checkModelName refuses a single-model name that a repository folder could not have: empty,
// hidden, with a slash, longer than requests may name, or not printable ASCII.
func checkModelName(name string) error {
	if len(name) > MaxNameBytes || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("serve: model name %q: not a model folder's name", name)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("serve: model name %q: only printable ASCII without spaces", name)
		}
	}
	return nil
}

// countLoad is the repository's onLoad: it counts a version's load and publishes its load
// time, operating point and training code rates.
func (s *Server) countLoad(v *Version, err error, name, version string) {
	if err != nil {
		s.metrics.Loads.WithLabelValues(name, "error").Inc()
		return
	}
	s.metrics.Loads.WithLabelValues(name, "ok").Inc()
	s.metrics.LoadTime.WithLabelValues(name, version).Set(v.LoadTime.Seconds())
	source := "manifest"
	if v.Overridden {
		source = "override"
	}
	s.metrics.Threshold.WithLabelValues(name, version, source).Set(v.Threshold)
	if r := v.Manifest.TokenRates; r != nil {
		for kind, share := range map[string]float64{"whole": r.WholeRate, "pieced": r.PiecedRate, "unknown": r.UnknownRate} {
			s.metrics.TrainCodes.WithLabelValues(name, version, kind).Set(share)
		}
	}
}

// grpcOptions are the gRPC server's options: codec, limits, authentication, interceptors,
// keepalive and TLS.
func (s *Server) grpcOptions() []grpc.ServerOption {
	cfg := &s.cfg
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(s.wire),
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		// Bearer tokens are checked from the headers, before any request is read (tapAuth).
		grpc.InTapHandle(s.tapAuth),
		// Headers are read before anything is authenticated: 64 KiB, not grpc-go's 16 MiB.
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	return opts
}

// maxHeaderBytes bounds a call's headers (metadata).
const maxHeaderBytes = 64 << 10

// Repository is the server's model repository.
func (s *Server) Repository() *Repository { return s.repo }

// Metrics are the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// MetricsHandler serves /metrics.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{Registry: s.metrics.Registry}))
	return mux
}

// setHealth publishes SERVING for the server and both services once a model is loaded, and
// NOT_SERVING before that and while draining.
func (s *Server) setHealth() {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.repo.Ready() && !s.draining {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range []string{"", PredictorService, InferenceService} {
		s.health.SetServingStatus(svc, st)
	}
	// Per model: "<service>/<model name>" is SERVING while the model has a version loaded
	// (and the server is not draining); a model that disappeared turns NOT_SERVING.
	n := 0
	seen := map[string]bool{}
	for name, m := range s.repo.Models() {
		n += len(m.Versions)
		if s.cfg.NoModelHealth {
			continue
		}
		ms := healthpb.HealthCheckResponse_NOT_SERVING
		if m.Serving != nil && !s.draining {
			ms = healthpb.HealthCheckResponse_SERVING
		}
		for _, svc := range []string{PredictorService, InferenceService} {
			s.health.SetServingStatus(svc+"/"+name, ms)
		}
		seen[name] = true
	}
	for name := range s.modelHealth {
		if !seen[name] {
			for _, svc := range []string{PredictorService, InferenceService} {
				s.health.SetServingStatus(svc+"/"+name, healthpb.HealthCheckResponse_NOT_SERVING)
			}
		}
	}
	s.modelHealth = seen
	s.metrics.ModelsLoaded.Set(float64(n))
}

// Scan rescans the repository now and updates health.
func (s *Server) Scan(ctx context.Context) error {
	err := s.repo.Scan(ctx)
	s.setHealth()
	return err
}

// Serve loads the repository, serves on lis until ctx ends, then drains: health turns
// NOT_SERVING, new calls are refused, calls in flight get DrainTimeout to finish.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if err := s.Scan(ctx); err != nil {
		return err
	}
	if !s.repo.Ready() {
		s.log.Warn("no model version loaded yet; health is NOT_SERVING until one is", "models", s.cfg.Models)
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		if s.cfg.Poll <= 0 {
			return
		}
		t := time.NewTicker(s.cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
				if err := s.Scan(pollCtx); err != nil && pollCtx.Err() == nil {
					s.log.Warn("model repository scan", "err", err)
				}
			}
		}
	}()
	if s.batchQ != nil {
		// Workers outlive the drain: calls in flight still need their answers.
		stop := make(chan struct{})
		defer close(stop)
		for range s.cfg.Batching.Workers {
			go s.batchWorker(stop)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Drain()
	return nil
}

// Drain stops the server gracefully (bounded by DrainTimeout).
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.setHealth()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.DrainTimeout):
		s.log.Warn("drain timed out; stopping", "timeout", s.cfg.DrainTimeout)
		s.grpc.Stop()
	}
}

// Stop stops the server at once.
func (s *Server) Stop() { s.grpc.Stop() }

// callInfo is what a handler tells the interceptor about a call, for the metrics.
type callInfo struct {
	model string
	// What reading a unary call's request left (Server.register): the bytes it holds in the
	// in-flight budget, and the error to answer instead of calling the handler.
	held    int64
	recvErr error
	wire    wireMsg // the request as read
}

type callInfoKey struct{}

func setCallModel(ctx context.Context, model string) {
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		ci.model = model
	}
}

type requestIDKey struct{}

// requestID is the request's id: the x-request-id metadata, else a fresh random one.
func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		return id
	}
	return ""
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) prepare(ctx context.Context, full string) (context.Context, error) {
	ctx, err := s.authenticate(ctx, full)
	if err != nil {
		return ctx, err
	}
	id := ""
	// ValueFromIncomingContext reads one key; FromIncomingContext would copy every header.
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 {
		if len(v[0]) > MaxIDBytes {
			// Refused, as a request_id of that length is: never silently replaced.
			return ctx, status.Errorf(codes.InvalidArgument, "x-request-id: longer than %d bytes", MaxIDBytes)
		}
		id = v[0]
	}
	if id == "" && !openMethod(full) {
		id = newRequestID()
	}
	if id != "" {
		ctx = context.WithValue(ctx, requestIDKey{}, id)
	}
	return ctx, nil
}

func methodName(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

func (s *Server) record(full string, ci *callInfo, start time.Time, err error) {
	m := methodName(full)
	mt := s.metrics
	mt.counter(mt.Requests, 3, labels3{m, ci.model, status.Code(err).String()}).Inc()
	mt.histogram(mt.RPCLatency, 1, labels3{m, "", ""}).Observe(time.Since(start).Seconds())
}

func (s *Server) panicked(full string, p any) error {
	// The stack names our code, never the request's contents.
	s.log.Error("panic in handler", "method", full, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ci, _ := ctx.Value(callInfoKey{}).(*callInfo)
	if ci == nil {
		ci = &callInfo{}
		ctx = context.WithValue(ctx, callInfoKey{}, ci)
	}
	s.metrics.InFlight.Inc()
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, s.panicked(info.FullMethod, p)
		}
		s.mem.release(ci.held)
		ci.held = 0
		s.metrics.InFlight.Dec()
		s.record(info.FullMethod, ci, start, err)
	}()
	ctx, err = s.prepare(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if ci.recvErr != nil {
		// The request could not be read (receive): malformed, too large for the in-flight
		// budget, or the transport failed. Answered here so that it is counted.
		return nil, ci.recvErr
	}
	resp, err = h(ctx, req)
	if r, ok := req.(*medseqv1.PredictRequest); ok {
		s.wire.release(r) // the handler is done with it, and only the codec's requests come here
	}
	return resp, err
}

type wrappedStream struct {
	grpc.ServerStream
	ctx  context.Context
	s    *Server
	held int64   // in-flight bytes of the last message received
	wire wireMsg // the message being read
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo,
	h grpc.StreamHandler) (err error) {
	start := time.Now()
	ci := &callInfo{}
	s.metrics.InFlight.Inc()
	defer func() {
		if p := recover(); p != nil {
			err = s.panicked(info.FullMethod, p)
		}
		s.metrics.InFlight.Dec()
		s.record(info.FullMethod, ci, start, err)
	}()
	ctx, err := s.prepare(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	w := &wrappedStream{ServerStream: ss, ctx: context.WithValue(ctx, callInfoKey{}, ci), s: s}
	defer func() { s.mem.release(w.held) }()
	return h(srv, w)
}

// acquire waits for a scoring slot, honouring the deadline; release with <-s.slots.
func (s *Server) acquire(ctx context.Context, model string) error {
	start := time.Now()
	select {
	case s.slots <- struct{}{}: // fast path: a free slot, without waiting on ctx
	default:
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return ctxStatus(ctx)
		}
	}
	s.metrics.histogram(s.metrics.QueueTime, 1, labels3{model, "", ""}).Observe(time.Since(start).Seconds())
	return nil
}

func ctxStatus(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before scoring")
	}
	return status.Error(codes.Canceled, "request canceled")
}

// toStatus turns decoding and resolution errors into statuses naming the field.
func toStatus(err error, field, name, version string) error {
	var fe *fieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, fe.Error())
	case errors.Is(err, ErrNoModel):
		// Echoes are truncated: a caller's string is never repeated whole.
		return status.Errorf(codes.NotFound, "%s: model %q not found", field, truncate(name, maxEchoBytes))
	case errors.Is(err, ErrNoVersion):
		if version == "" {
			return status.Errorf(codes.Unavailable, "%s: model %q has no version to serve (pinned version not loaded)", field,
				truncate(name, maxEchoBytes))
		}
		vf := versionField(field)
		return status.Errorf(codes.NotFound, "%s: version %q of model %q not found", vf, truncate(version, maxEchoBytes),
			truncate(name, maxEchoBytes))
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, "internal error")
}

// resolve finds the version a request names and records the model for the metrics.
func (s *Server) resolve(ctx context.Context, field, name, version string) (*Version, error) {
	if name == "" {
		return nil, status.Errorf(codes.InvalidArgument, "%s: required", field)
	}
	if err := checkLen(field, name, MaxNameBytes); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	if err := checkLen(versionField(field), version, MaxNameBytes); err != nil {
		return nil, toStatus(err, "", "", "")
	}
	v, err := s.repo.Resolve(name, version)
	if err != nil {
		return nil, toStatus(err, field, name, version)
	}
	setCallModel(ctx, v.Name)
	return v, nil
}

// versionField names the version field that goes with a name field: model_name's
// model_version, name's version.
func versionField(nameField string) string {
	switch nameField {
	case "model_name": // the common case, without building the string
		return "model_version"
	case "name":
		return "version"
	}
	if strings.HasSuffix(nameField, "_name") {
		return strings.TrimSuffix(nameField, "_name") + "_version"
	}
	return "version"
}
