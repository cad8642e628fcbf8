package serve

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

func wireOf(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }

// TestCodecRecycledEvents decodes requests of different shapes through one codec, releasing
// each: a recycled Event must never carry a value, a code or an unknown field of an earlier
// request.
func TestCodecRecycledEvents(t *testing.T) {
	c := newCodec()
	v := float32(6.1)
	first := &medseqv1.PredictRequest{ModelName: "m", PredictionTime: "2021-01-01", Events: []*medseqv1.Event{
		{Code: "LOINC/4548-4", Time: "2020-01-01", NumericValue: &v}, {Code: "A"}, {Code: "B"}, {Code: "C"}}}
	raw, err := proto.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	// An unknown field (number 9) inside the first event.
	ev := protowire.AppendTag(nil, 1, protowire.BytesType)
	ev = protowire.AppendString(ev, "X")
	ev = protowire.AppendTag(ev, 9, protowire.VarintType)
	ev = protowire.AppendVarint(ev, 7)
	raw = protowire.AppendTag(raw, 4, protowire.BytesType)
	raw = protowire.AppendBytes(raw, ev)
	second := &medseqv1.PredictRequest{ModelName: "m", PredictionTime: "2021-01-01",
		Events: []*medseqv1.Event{{Code: "D", Time: "2019-05-05"}}}
	raw2, _ := proto.Marshal(second)

	for round := range 3 {
		for i, b := range [][]byte{raw, raw2} {
			var std, got medseqv1.PredictRequest
			if err := proto.Unmarshal(b, &std); err != nil {
				t.Fatal(err)
			}
			if err := c.Unmarshal(wireOf(b), &got); err != nil {
				t.Fatalf("round %d, request %d: %v", round, i, err)
			}
			if !proto.Equal(&std, &got) {
				t.Fatalf("round %d, request %d: codec %v, proto.Unmarshal %v", round, i, &got, &std)
			}
			c.release(&got)
			if got.Events != nil {
				t.Fatal("release left the events on the request")
			}
		}
	}
}

// TestCodecUTF8 checks what the standard codec refuses and vtprotobuf would not: request
// strings that are not UTF-8, and a response that would carry one.
func TestCodecUTF8(t *testing.T) {
	c := newCodec()
	bad := string([]byte{0xff, 'a'})
	for _, tc := range []struct {
		name string
		req  []byte
		ok   bool
	}{
		{"valid", rawRequest("m", "A", "2020-01-01"), true},
		{"model name", rawRequest(bad, "A", "2020-01-01"), false},
		// Event codes and times are checked by decodeSubject (INVALID_ARGUMENT naming the event).
		{"event code", rawRequest("m", bad, "2020-01-01"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r medseqv1.PredictRequest
			err := c.Unmarshal(wireOf(tc.req), &r)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := c.Marshal(&medseqv1.PredictResponse{RequestId: bad}); err == nil {
		t.Error("a response with a string that is not UTF-8 was encoded")
	}
	// Every other message goes to the standard codec, which refuses the same.
	if _, err := c.Marshal(&medseqv1.ModelInfo{Name: bad}); err == nil {
		t.Error("the fallback encoded a string that is not UTF-8")
	}
	good := &medseqv1.PredictResponse{ModelName: "m", ModelVersion: "1", Probability: 0.25, RawScore: 0.5, Decision: true,
		RequestId: "r"}
	out, err := c.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	var back medseqv1.PredictResponse
	if err := proto.Unmarshal(out.Materialize(), &back); err != nil || !proto.Equal(good, &back) {
		t.Fatalf("round trip: %v, %v", &back, err)
	}
}

// rawRequest encodes a one-event PredictRequest with a birth date by hand, so its strings
// may be anything.
func rawRequest(model, code, when string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, model)
	ev := protowire.AppendTag(nil, 1, protowire.BytesType)
	ev = protowire.AppendString(ev, code)
	ev = protowire.AppendTag(ev, 2, protowire.BytesType)
	ev = protowire.AppendString(ev, when)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, ev)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	b = protowire.AppendString(b, "2021-01-01")
	b = protowire.AppendTag(b, 6, protowire.BytesType)
	return protowire.AppendString(b, "1960-05-01")
}

// rawCodec sends and receives bytes as they are: a client that writes what it likes.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return wireOf(*v.(*[]byte)), nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// TestCodecOnTheWire sends hand-written requests to a real server: an event code that is not
// UTF-8 is INVALID_ARGUMENT naming the event; a model name that is not UTF-8 is
// INVALID_ARGUMENT naming the field (D7: grpc-go's own codec answers INTERNAL); a valid request
// still scores.
func TestCodecOnTheWire(t *testing.T) {
	r := start(t, Config{Models: newRepo(t)})
	cc := dial(t, r.addr)
	ctx := tctx(t)
	call := func(req []byte) error {
		var resp []byte
		return cc.Invoke(ctx, "/medseq.v1.Predictor/Predict", &req, &resp, grpc.ForceCodecV2(rawCodec{}))
	}
	if err := call(rawRequest(fixtureModel, "ICD10/I10", "2020-01-01")); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	wantCode(t, call(rawRequest(fixtureModel, string([]byte{0xff}), "2020-01-01")), codes.InvalidArgument,
		"events[0].code")
	wantCode(t, call(rawRequest(fixtureModel+string([]byte{0xff}), "A", "2020-01-01")), codes.InvalidArgument,
		"model_name")
	// The server is still there.
	if err := call(rawRequest(fixtureModel, "ICD10/I10", "2020-01-01")); err != nil {
		t.Fatalf("after bad requests: %v", err)
	}
}
