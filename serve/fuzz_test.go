package serve

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	inferencepb "github.com/medseq/medseq/proto/inference"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// The fuzz targets feed arbitrary wire bytes through request decoding. Decoding must never
// panic, and whatever it accepts must be a history the scorer can take. `go test` runs the
// seed corpus; `go test -fuzz FuzzPredictRequest ./serve` explores.

func seedPredict() []*medseqv1.PredictRequest {
	v := float32(7.5)
	return []*medseqv1.PredictRequest{
		{ModelName: fixtureModel, PredictionTime: "2021-01-01",
			Events: ParseCodes("ICD10/I10@2019-05-01T10:00:00Z SNOMED/38341003@2020-02-03 MEDS_BIRTH@1960-01-01 SEX//F")},
		{ModelName: fixtureModel, PredictionTime: "2021-01-01T00:00:00+05:30", BirthDate: "1950-02-03", Sex: "M",
			Events: []*medseqv1.Event{{Code: "LOINC/4548-4", Time: "2020-12-31T23:59:59.999999Z", NumericValue: &v}}},
		{ModelName: fixtureModel, PredictionTime: "bad", Events: ParseCodes("A@x")},
		{ModelName: fixtureModel, PredictionTime: "2021-01-01",
			Events: ParseCodes("LOINC/4548-4@2020-03-01=48.5 L@2020-01-01=abc L@2020-01-02=-0")},
		{},
	}
}

func FuzzPredictRequest(f *testing.F) {
	for _, r := range seedPredict() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte{0x22, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x22, 0x03, 0x0a, 0x01, 0xff})                   // an event code that is not UTF-8
	f.Add([]byte{0x0a, 0x01, 0xff, 0x22, 0x02, 0x0a, 0x00})       // a model name that is not UTF-8
	f.Add([]byte{0x22, 0x04, 0x0a, 0x01, 0x41, 0x98, 0x01, 0x07}) // an event with an unknown field
	lim := Limits{MaxCodes: 64, MaxBatch: 4, MaxCodeLen: 64}
	wire := newCodec() // shared across inputs, so its recycled events meet every shape
	f.Fuzz(func(t *testing.T, b []byte) {
		// The server's codec against the standard one: the same message whenever both accept.
		var std medseqv1.PredictRequest
		stdErr := proto.Unmarshal(b, &std)
		var r medseqv1.PredictRequest
		err := wire.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(b))}, &r)
		defer wire.release(&r)
		switch {
		case err != nil && stdErr == nil:
			// vtprotobuf refuses a known field sent with the wrong wire type; the standard
			// decoder keeps it as an unknown field. Nothing else may differ.
			if !strings.Contains(err.Error(), "wrong wireType") {
				t.Fatalf("codec refused what proto.Unmarshal accepts: %v", err)
			}
			return
		case err != nil:
			return
		case stdErr == nil && !sameRequest(&std, &r):
			t.Fatalf("codec decoded %v, proto.Unmarshal %v", &r, &std)
		}
		table := data.NewCodes()
		sub, err := decodePredict(table, &r, lim, "", testDemographics())
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if stdErr != nil {
			// Accepted by the codec only: an event's code or time that is not UTF-8, which
			// decodePredict must then refuse, or a bad string that a later copy of the same
			// field replaced (the last one counts), so what is read is valid.
			valid := requestUTF8(&r) == nil
			for _, e := range r.Events {
				valid = valid && utf8.ValidString(e.Code) && utf8.ValidString(e.Time)
			}
			if !valid {
				t.Fatalf("decodePredict accepted a string that is not UTF-8 (proto.Unmarshal: %v)", stdErr)
			}
		}
		if len(sub.events) == 0 || len(sub.events) > lim.MaxCodes {
			t.Fatalf("accepted %d events", len(sub.events))
		}
		in, censored := sub.toInput(0)
		if censored < 0 || len(in.Events) > len(sub.events) {
			t.Fatal("censoring grew the history")
		}
		for _, e := range in.Events {
			if int(e.Code) >= table.Len() || e.Time > sub.predictionTime {
				t.Fatal("bad censored event")
			}
		}
	})
}

// sameRequest compares decoded requests, unknown fields by presence only: the standard
// decoder re-encodes an unknown field's tag in its shortest form, vtprotobuf keeps the bytes.
func sameRequest(a, b *medseqv1.PredictRequest) bool {
	strip := func(m *medseqv1.PredictRequest) (*medseqv1.PredictRequest, []bool) {
		m = proto.Clone(m).(*medseqv1.PredictRequest)
		has := []bool{len(m.ProtoReflect().GetUnknown()) > 0}
		m.ProtoReflect().SetUnknown(nil)
		for _, e := range m.Events {
			has = append(has, len(e.ProtoReflect().GetUnknown()) > 0)
			e.ProtoReflect().SetUnknown(nil)
		}
		return m, has
	}
	sa, ha := strip(a)
	sb, hb := strip(b)
	return proto.Equal(sa, sb) && slices.Equal(ha, hb)
}

func FuzzModelInfer(f *testing.F) {
	fx := getFixture(f)
	repo := NewRepository(fx.models, Policy{}, nil)
	if err := repo.Scan(context.Background()); err != nil {
		f.Fatal(err)
	}
	v, err := repo.Resolve(fixtureModel, "")
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{limits: Limits{MaxCodes: 64, MaxBatch: 4, MaxCodeLen: 64}}
	in := &inference{s: s}
	good := InferRequest(fixtureModel, "", seedPredict()[:2])
	inline := InferRequest(fixtureModel, "", seedPredict()[:1]) // one-line codes
	inline.Inputs[0].Contents.BytesContents[0] = []byte("LOINC/4548-4@2020-03-01=48.5 A@2020-01-01=1e39 B@2020-01-02==1")
	for _, r := range []*inferencepb.ModelInferRequest{good, RawInferRequest(good), inline, {ModelName: fixtureModel},
		{Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			{Name: InputInputIDs, Datatype: "INT64", Shape: []int64{1, 3},
				Contents: &inferencepb.InferTensorContents{Int64Contents: []int64{0, 7, 9}}},
			{Name: InputPredictionTime, Datatype: "BYTES", Shape: []int64{1},
				Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("2020-01-01")}}}}}} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r inferencepb.ModelInferRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		table := data.NewCodes()
		subs, err := in.inferSubjects(v, &r, table)
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if len(subs) == 0 || len(subs) > s.limits.MaxBatch {
			t.Fatalf("accepted a batch of %d", len(subs))
		}
		ins := make([]scorer.Input, 0, len(subs))
		for _, sub := range subs {
			x, _ := sub.toInput(v.Gap)
			ins = append(ins, x)
		}
		if _, err := v.Scorer.Score(table, ins); err != nil {
			t.Fatalf("accepted input the scorer refuses: %v", err)
		}
	})
}
