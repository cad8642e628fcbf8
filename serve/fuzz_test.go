package serve

import (
	"context"
	"testing"

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
		{ModelName: fixtureModel, PredictionTime: "2021-01-01", Events: ParseCodes("ICD10/I10@2019-05-01T10:00:00Z SNOMED/38341003@2020-02-03 MEDS_BIRTH@1960-01-01 SEX//F")},
		{ModelName: fixtureModel, PredictionTime: "2021-01-01T00:00:00+05:30", BirthDate: "1950-02-03", Sex: "M",
			Events: []*medseqv1.Event{{Code: "LOINC/4548-4", Time: "2020-12-31T23:59:59.999999Z", NumericValue: &v}}},
		{ModelName: fixtureModel, PredictionTime: "bad", Events: ParseCodes("A@x")},
		{},
	}
}

func FuzzPredictRequest(f *testing.F) {
	for _, r := range seedPredict() {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte{0x22, 0x02, 0x0a, 0x00})
	lim := Limits{MaxCodes: 64, MaxBatch: 4, MaxCodeLen: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r medseqv1.PredictRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		table := data.NewCodes()
		sub, err := decodePredict(table, &r, lim, "")
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
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
	for _, r := range []*inferencepb.ModelInferRequest{good, RawInferRequest(good), {ModelName: fixtureModel},
		{Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: InputInputIDs, Datatype: "INT64", Shape: []int64{1, 3},
			Contents: &inferencepb.InferTensorContents{Int64Contents: []int64{0, 7, 9}}}, {Name: InputPredictionTime, Datatype: "BYTES",
			Shape: []int64{1}, Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("2020-01-01")}}}}}} {
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
