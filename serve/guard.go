package serve

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// What a request's strings may hold, in bytes. Longer ones are INVALID_ARGUMENT naming the
// field (never echoing it); event codes have their own limit (Limits.MaxCodeLen).
const (
	MaxNameBytes = 256 // model_name, model_version, and the names of GetModel, ModelInfer, ...
	MaxIDBytes   = 128 // request_id, subject_id, ModelInfer's id, the x-request-id header
	MaxTimeBytes = 64  // prediction_time, birth_date, an event's time
	MaxSexBytes  = 16  // sex
	maxEchoBytes = 64  // the most of a caller's string an error message repeats
)

// DefaultMaxInflightBytes bounds, when a Config leaves it zero, the memory held by requests
// being received and answered (Config.MaxInflightBytes).
const DefaultMaxInflightBytes = 256 << 20

// maxBudgetWait is how long a call waits for in-flight memory before RESOURCE_EXHAUSTED.
const maxBudgetWait = time.Second

// checkLen refuses a string longer than max bytes, naming the field.
func checkLen(field, v string, max int) error {
	if len(v) > max {
		return badField(field, "longer than %d bytes", max)
	}
	return nil
}

// checkRequestStrings applies the string limits to a PredictRequest (prefix names it within
// a batch: "requests[3].").
func checkRequestStrings(prefix string, r *medseqv1.PredictRequest) error {
	for _, f := range [...]struct {
		name, v string
		max     int
	}{
		{"model_name", r.GetModelName(), MaxNameBytes}, {"model_version", r.GetModelVersion(), MaxNameBytes},
		{"subject_id", r.GetSubjectId(), MaxIDBytes}, {"request_id", r.GetRequestId(), MaxIDBytes},
		{"prediction_time", r.GetPredictionTime(), MaxTimeBytes}, {"birth_date", r.GetBirthDate(), MaxTimeBytes},
		{"sex", r.GetSex(), MaxSexBytes},
	} {
		if err := checkLen(prefix+f.name, f.v, f.max); err != nil {
			return err
		}
	}
	return nil
}

// truncate shortens s to at most n bytes (at a rune boundary) for an error message, marking
// the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// budget bounds the bytes held by requests in flight (Config.MaxInflightBytes). Safe for
// concurrent use.
type budget struct {
	limit int64
	gauge prometheus.Gauge

	mu      sync.Mutex
	used    int64
	waiters int
	freed   chan struct{} // closed (and replaced) when bytes are released and someone waits
}

func newBudget(limit int64, g prometheus.Gauge) *budget {
	return &budget{limit: limit, gauge: g, freed: make(chan struct{})}
}

var errBudget = status.Error(codes.ResourceExhausted,
	"server busy: the memory for requests in flight (--max-inflight-bytes) is taken; retry later")

// acquire takes n bytes, waiting up to maxBudgetWait (and the call's deadline) for them.
func (b *budget) acquire(ctx context.Context, n int64) error {
	var timer *time.Timer
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.gauge.Set(float64(b.used))
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		if n > b.limit {
			b.mu.Unlock()
			return status.Errorf(codes.ResourceExhausted, "request needs %d bytes in flight, "+
				"more than the server's --max-inflight-bytes %d", n, b.limit)
		}
		b.waiters++
		freed := b.freed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(maxBudgetWait)
		}
		var err error
		select {
		case <-freed:
		case <-timer.C:
			err = errBudget
		case <-ctx.Done():
			err = ctxStatus(ctx)
		}
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// resize turns a holding of from bytes into one of to bytes without waiting; false (holding
// from still) when the budget cannot grow that far.
func (b *budget) resize(from, to int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if to > from && b.used+to-from > b.limit {
		return false
	}
	b.used += to - from
	b.gauge.Set(float64(b.used))
	if to < from {
		b.wake()
	}
	return true
}

// release gives back n bytes.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.gauge.Set(float64(b.used))
	b.wake()
	b.mu.Unlock()
}

func (b *budget) wake() {
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

// wireMsg is a request message as it came off the wire: the codec hands it over undecoded,
// so that receive can charge and check it before decoding. owned (set by receive): b must be
// a copy that nothing recycles (a PredictRequest's decoded strings point into it); else b
// may be buf's, a pooled buffer given back once the message is decoded.
type wireMsg struct {
	b     []byte
	buf   mem.Buffer
	owned bool
}

// free gives back the pooled buffer, if any.
func (w *wireMsg) free() {
	if w.buf != nil {
		w.buf.Free()
	}
	*w = wireMsg{}
}

// perValue is what receive charges for each field value of a request beyond its bytes: a
// slice element, a message struct, a string header.
const perValue = 64

// decodedCost estimates the memory that decoding b as a message of md (nil: unknown) takes
// beyond b itself: perValue per field value, at every depth, and 8 bytes per byte of packed
// numbers (a one-byte varint becomes an int64). An error means b is not a protobuf message.
func decodedCost(b []byte, md protoreflect.MessageDescriptor, depth int) (int64, error) {
	if depth > 64 {
		return 0, errors.New("messages nested more than 64 deep")
	}
	plan := costPlanOf(md)
	var cost int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		val := b[:m]
		b = b[m:]
		cost += perValue
		if typ != protowire.BytesType || plan == nil {
			continue
		}
		f := plan.field(num)
		if f.kind == costPlain {
			continue
		}
		inner, _ := protowire.ConsumeBytes(val)
		switch f.kind {
		case costMessage:
			c, err := decodedCost(inner, f.message, depth+1)
			if err != nil {
				return 0, err
			}
			cost += c
		case costPacked:
			cost += 8 * int64(len(inner))
		}
	}
	return cost, nil
}

// How decodedCost counts a length-delimited field.
const (
	costPlain   = iota // a string, bytes or unknown field: its bytes and perValue
	costMessage        // a message: counted inside
	costPacked         // packed numbers: 8 bytes per wire byte
)

// costField is one field of a costPlan.
type costField struct {
	kind    int
	message protoreflect.MessageDescriptor
}

// costPlan is what decodedCost needs of a message descriptor, read from it once: the
// descriptor's reflection lookups cost more than the scan itself on a long history.
type costPlan struct {
	byNumber []costField // indexed by field number (small numbers)
	other    map[protowire.Number]costField
}

func (p *costPlan) field(num protowire.Number) costField {
	if int(num) < len(p.byNumber) {
		return p.byNumber[num]
	}
	return p.other[num]
}

// costPlans caches costPlans by descriptor.
var costPlans sync.Map // protoreflect.MessageDescriptor -> *costPlan

func costPlanOf(md protoreflect.MessageDescriptor) *costPlan {
	if md == nil {
		return nil
	}
	if p, ok := costPlans.Load(md); ok {
		return p.(*costPlan)
	}
	p := &costPlan{other: map[protowire.Number]costField{}}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		var f costField
		switch k := fd.Kind(); {
		case k == protoreflect.MessageKind || k == protoreflect.GroupKind:
			f = costField{kind: costMessage, message: fd.Message()}
		case fd.IsList() && k != protoreflect.StringKind && k != protoreflect.BytesKind:
			f = costField{kind: costPacked}
		default:
			continue
		}
		if n := int(fd.Number()); n < 64 {
			for len(p.byNumber) <= n {
				p.byNumber = append(p.byNumber, costField{})
			}
			p.byNumber[n] = f
		} else {
			p.other[fd.Number()] = f
		}
	}
	actual, _ := costPlans.LoadOrStore(md, p)
	return actual.(*costPlan)
}

// receive reads one request message into v for a call. While the message arrives (its size
// unknown until then) it holds twice MaxMessageBytes of the in-flight budget (the message as
// it came in, and the copy that is decoded), then the message's estimated decoded size, which
// it returns for the caller to release when the call ends. A
// message that is not valid protobuf, or holds a string that is not UTF-8, is
// INVALID_ARGUMENT; one the budget cannot hold is RESOURCE_EXHAUSTED.
func (s *Server) receive(ctx context.Context, w *wireMsg, recv func(any) error, v any) (held int64, err error) {
	r := 2 * int64(s.cfg.MaxMessageBytes)
	if err := s.mem.acquire(ctx, r); err != nil {
		return 0, err
	}
	_, w.owned = v.(*medseqv1.PredictRequest)
	defer w.free()
	if err := recv(w); err != nil {
		s.mem.release(r)
		return 0, err
	}
	var md protoreflect.MessageDescriptor
	name := "request"
	if pm, ok := v.(proto.Message); ok {
		md = pm.ProtoReflect().Descriptor()
		name = string(md.FullName())
	}
	cost, err := decodedCost(w.b, md, 0)
	if err != nil {
		s.mem.release(r)
		return 0, status.Errorf(codes.InvalidArgument, "request: not a valid %s message: %v", name, err)
	}
	held = int64(len(w.b)) + cost
	if !s.mem.resize(r, held) {
		s.mem.release(r)
		if held > s.mem.limit {
			return 0, status.Errorf(codes.ResourceExhausted,
				"request: decodes to about %d bytes, more than the server's --max-inflight-bytes %d", held, s.mem.limit)
		}
		return 0, errBudget
	}
	if err := s.wire.decode(w.b, v); err != nil {
		s.mem.release(held)
		var fe *fieldError
		if errors.As(err, &fe) {
			return 0, status.Error(codes.InvalidArgument, fe.Error())
		}
		return 0, status.Errorf(codes.InvalidArgument, "request: not a valid %s message: %v", name, err)
	}
	return held, nil
}

// register registers a service whose unary methods read their request through receive:
// its errors reach the interceptor (answered and counted there) instead of grpc-go's
// INTERNAL "failed to unmarshal", and the call's memory is charged before decoding.
func (s *Server) register(desc *grpc.ServiceDesc, impl any) {
	d := s.wrapDesc(desc)
	s.grpc.RegisterService(&d, impl)
}

// wrapDesc is desc with its unary handlers reading through receive.
func (s *Server) wrapDesc(desc *grpc.ServiceDesc) grpc.ServiceDesc {
	d := *desc
	d.Methods = slices.Clone(desc.Methods)
	for i := range d.Methods {
		h := d.Methods[i].Handler
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error,
			ic grpc.UnaryServerInterceptor) (any, error) {
			ci := &callInfo{}
			ctx = context.WithValue(ctx, callInfoKey{}, ci)
			return h(srv, ctx, func(v any) error {
				// An error is kept for the interceptor, which answers it: the handler then
				// sees an empty request it never reads.
				ci.held, ci.recvErr = s.receive(ctx, &ci.wire, dec, v)
				return nil
			}, ic)
		}
	}
	return d
}

// RecvMsg reads a stream's next message through receive, releasing the previous one's memory.
func (w *wrappedStream) RecvMsg(m any) error {
	w.s.mem.release(w.held)
	w.held = 0
	held, err := w.s.receive(w.ctx, &w.wire, w.ServerStream.RecvMsg, m)
	w.held = held
	return err
}

// tapAuth checks the bearer token from the headers, before any message of the call is read:
// a caller without a valid token makes the server read and decode nothing. Failures are
// counted (medseq_auth_failures_total, and medseq_requests_total as Unauthenticated) and
// logged without the token.
func (s *Server) tapAuth(ctx context.Context, info *tap.Info) (context.Context, error) {
	if s.tokens == nil || openMethod(info.FullMethodName) {
		return ctx, nil
	}
	hdr := ""
	if v := info.Header.Get("authorization"); len(v) > 0 {
		hdr = v[0]
	}
	caller, reason, err := s.tokens.check(hdr)
	if err != nil {
		s.authFailed(ctx, info.FullMethodName, reason, true)
		return ctx, err
	}
	return context.WithValue(ctx, tokenCallerKey{}, caller), nil
}

type tokenCallerKey struct{}

// authLog rate-limits the authentication failure log: one line per authLogEvery, with the
// number of failures not logged since.
type authLog struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Int64
}

const authLogEvery = 10 * time.Second

func (s *Server) authFailed(ctx context.Context, method, reason string, countRequest bool) {
	s.metrics.AuthFailures.WithLabelValues(reason).Inc()
	if countRequest {
		s.metrics.counter(s.metrics.Requests, 3, labels3{methodName(method), "", codes.Unauthenticated.String()}).Inc()
	}
	now := time.Now().UnixNano()
	last := s.authLog.last.Load()
	if now-last < int64(authLogEvery) || !s.authLog.last.CompareAndSwap(last, now) {
		s.authLog.suppressed.Add(1)
		return
	}
	from := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		from = p.Addr.String()
	}
	s.log.Warn("authentication failed", "method", truncate(method, 128), "reason", reason, "peer", from,
		"failures_not_logged", s.authLog.suppressed.Swap(0))
}
