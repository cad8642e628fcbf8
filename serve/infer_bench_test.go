package serve

import (
	"context"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// handlerCase is one unary RPC as the server registers it, with its request.
type handlerCase struct {
	name string
	impl any
	md   grpc.MethodDesc
	req  proto.Message
}

// benchHandlers runs each case's whole per-call work short of the transport, as
// BenchmarkHandler does: decode the request bytes, interceptor and handler, encode the response.
func benchHandlers(b *testing.B, srv *Server, cases []handlerCase) {
	codec := srv.wire
	for _, tc := range cases {
		raw, err := proto.Marshal(tc.req)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
				"user-agent", "grpc-go/1.85.0", "content-type", "application/grpc", ":authority", "127.0.0.1:8500",
				"grpc-accept-encoding", "gzip"))
			dec := func(v any) error {
				return codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, v)
			}
			cpu0 := processCPU()
			for b.Loop() {
				resp, err := tc.md.Handler(tc.impl, ctx, dec, srv.unaryInterceptor)
				if err != nil {
					b.Fatal(err)
				}
				out, err := codec.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
			}
			// CPU time is steadier than wall time on a machine shared with other work.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServer is a scanned, healthy server over a fresh copy of the fixture repository.
func benchServer(b *testing.B) *Server {
	srv, err := New(Config{Models: newRepo(b)})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.repo.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv.setHealth()
	return srv
}

func findMethod(b *testing.B, sd grpc.ServiceDesc, name string) grpc.MethodDesc {
	for _, m := range sd.Methods {
		if m.MethodName == name {
			return m
		}
	}
	b.Fatalf("no method %s", name)
	return grpc.MethodDesc{}
}

// BenchmarkPredict is one medseq.v1 Predict call, a short history and a held-out subject's
// full one.
func BenchmarkPredict(b *testing.B) {
	srv := benchServer(b)
	md := findMethod(b, srv.wrapDesc(&medseqv1.Predictor_ServiceDesc), "Predict")
	p := &predictor{s: srv}
	benchHandlers(b, srv, []handlerCase{
		{"small", p, md, smallRequest(b)},
		{"heldout", p, md, heldOut(b, 1)[0].Request},
	})
}

// BenchmarkInfer is one Open Inference Protocol ModelInfer call for four held-out subjects:
// codes one line per subject, [batch, length] codes with values, and the latter as raw
// contents.
func BenchmarkInfer(b *testing.B) {
	srv := benchServer(b)
	md := findMethod(b, srv.wrapDesc(&inferencepb.GRPCInferenceService_ServiceDesc), "ModelInfer")
	in := &inference{s: srv}
	reqs := requestsOf(heldOut(b, 4))
	var noValues []*medseqv1.PredictRequest
	for _, r := range reqs {
		r = proto.Clone(r).(*medseqv1.PredictRequest)
		for _, e := range r.Events {
			e.NumericValue = nil
		}
		noValues = append(noValues, r)
	}
	values := InferRequest(fixtureModel, "", reqs)
	benchHandlers(b, srv, []handlerCase{
		{"lines", in, md, InferRequest(fixtureModel, "", noValues)},
		{"values", in, md, values},
		{"raw", in, md, RawInferRequest(values)},
	})
}
