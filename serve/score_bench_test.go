package serve

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// BenchmarkScorePath is the server's per-request work without gRPC: decode, censor, score,
// calibrate.
func BenchmarkScorePath(b *testing.B) {
	fx := getFixture(b)
	repo := NewRepository(fx.models, Policy{}, nil)
	if err := repo.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	v, _ := repo.Resolve(fixtureModel, "")
	for _, tc := range []struct {
		name string
		req  func() any
	}{{"small", nil}, {"heldout", nil}} {
		req := smallRequest(b)
		if tc.name == "heldout" {
			req = heldOut(b, 1)[0].Request
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				table := data.NewCodes()
				sub, err := decodePredict(table, req, DefaultLimits(), "", testDemographics())
				if err != nil {
					b.Fatal(err)
				}
				in, _ := sub.toInput(v.Gap)
				res, err := v.Scorer.Score(table, []scorer.Input{in})
				if err != nil {
					b.Fatal(err)
				}
				_ = v.Calibrate(res[0].Probability)
			}
		})
	}
}

// BenchmarkHandler is the server's whole per-call work for one unary RPC short of the
// transport: decode the request bytes, run the interceptor (auth, request id, metrics) and the
// handler, encode the response. health is grpc.health.v1 Check on the same server: the
// difference is what a Predict costs beyond any RPC.
func BenchmarkHandler(b *testing.B) {
	srv, err := New(Config{Models: newRepo(b)})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.repo.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv.setHealth()
	codec := srv.wire
	find := func(sd grpc.ServiceDesc, name string) grpc.MethodDesc {
		for _, m := range sd.Methods {
			if m.MethodName == name {
				return m
			}
		}
		b.Fatalf("no method %s", name)
		return grpc.MethodDesc{}
	}
	cases := []struct {
		name string
		impl any
		md   grpc.MethodDesc
		req  proto.Message
	}{
		// The handlers as the server registers them (reading through receive).
		{"health", srv.health, find(srv.wrapDesc(&healthpb.Health_ServiceDesc), "Check"), &healthpb.HealthCheckRequest{}},
		{"predict/small", &predictor{s: srv}, find(srv.wrapDesc(&medseqv1.Predictor_ServiceDesc), "Predict"),
			smallRequest(b)},
		{"predict/heldout", &predictor{s: srv}, find(srv.wrapDesc(&medseqv1.Predictor_ServiceDesc), "Predict"),
			heldOut(b, 1)[0].Request},
	}
	for _, tc := range cases {
		raw, err := proto.Marshal(tc.req)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			// What a grpc-go client's call carries besides the pseudo-headers.
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
				"user-agent", "grpc-go/1.85.0", "content-type", "application/grpc", ":authority", "127.0.0.1:8500",
				"grpc-accept-encoding", "gzip"))
			for b.Loop() {
				dec := func(v any) error {
					return codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, v)
				}
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
		})
	}
}
