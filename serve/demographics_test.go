package serve

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// TestSettleDemographics: birth and sex from events, fields or both, as data cohort reads
// them; contradictions and a missing birth are refused naming the fields.
func TestSettleDemographics(t *testing.T) {
	birth, _ := ParseTime("1960-05-01")
	ev := func(code, when string) *medseqv1.Event { return &medseqv1.Event{Code: code, Time: when} }
	for _, tc := range []struct {
		name       string
		events     []*medseqv1.Event
		birthDate  string
		sex        string
		wantErr    string // field named by the error
		wantBirth  int64
		wantSex    string
		wantEvents []string // codes in order after settling
	}{
		{"events only", []*medseqv1.Event{ev("ICD10/I10", "2010-01-01"), ev("MEDS_BIRTH", "1960-05-01"), ev("SEX//F", "")},
			"", "", "", birth, "F", []string{"SEX//F", "MEDS_BIRTH", "ICD10/I10"}},
		{"fields only: the events are added", []*medseqv1.Event{ev("ICD10/I10", "2010-01-01")},
			"1960-05-01", "F", "", birth, "F", []string{"SEX//F", "MEDS_BIRTH", "ICD10/I10"}},
		{"birth added before same-time rows", []*medseqv1.Event{ev("SNOMED/1", "1960-05-01"), ev("ICD10/I10", "2010-01-01")},
			"1960-05-01", "M", "", birth, "M", []string{"SEX//M", "MEDS_BIRTH", "SNOMED/1", "ICD10/I10"}},
		{"both, agreeing", []*medseqv1.Event{ev("MEDS_BIRTH", "1960-05-01T00:00:00Z"), ev("GENDER//female", ""),
			ev("ICD10/I10", "2010-01-01")},
			"1960-05-01", "F", "", birth, "F", []string{"GENDER//female", "MEDS_BIRTH", "ICD10/I10"}},
		{"both, birth differs", []*medseqv1.Event{ev("MEDS_BIRTH", "1961-05-01"), ev("ICD10/I10", "2010-01-01")},
			"1960-05-01", "", "birth_date", 0, "", nil},
		{"both, sex differs",
			[]*medseqv1.Event{ev("MEDS_BIRTH", "1960-05-01"), ev("SEX//M", ""), ev("ICD10/I10", "2010-01-01")},
			"", "F", "sex", 0, "", nil},
		{"no birth either way", []*medseqv1.Event{ev("SEX//M", ""), ev("ICD10/I10", "2010-01-01")},
			"", "", "birth_date", 0, "", nil},
		{"a static birth row is no birth", []*medseqv1.Event{ev("MEDS_BIRTH", ""), ev("ICD10/I10", "2010-01-01")},
			"", "", "birth_date", 0, "", nil},
		{"no sex either way: unknown", []*medseqv1.Event{ev("MEDS_BIRTH", "1960-05-01"), ev("ICD10/I10", "2010-01-01")},
			"", "", "", birth, data.SexUnknown, []string{"MEDS_BIRTH", "ICD10/I10"}},
		{"an unknown sex code does not set sex", []*medseqv1.Event{ev("SEX//U", ""), ev("MEDS_BIRTH", "1960-05-01")},
			"", "M", "", birth, "M", []string{"SEX//M", "SEX//U", "MEDS_BIRTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := data.NewCodes()
			req := &medseqv1.PredictRequest{PredictionTime: "2015-01-01", Events: tc.events, BirthDate: tc.birthDate,
				Sex: tc.sex}
			sub, err := decodePredict(table, req, DefaultLimits(), "", testDemographics())
			if tc.wantErr != "" {
				fe, ok := err.(*fieldError)
				if !ok || fe.field != tc.wantErr {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				if strings.Contains(fe.msg, "1960") || strings.Contains(fe.msg, "1961") {
					t.Errorf("the error repeats a date: %q", fe.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sub.birth != tc.wantBirth || sub.sex != tc.wantSex {
				t.Errorf("birth %d sex %q, want %d %q", sub.birth, sub.sex, tc.wantBirth, tc.wantSex)
			}
			var got []string
			for _, e := range sub.events {
				got = append(got, table.Name(e.Code))
			}
			if strings.Join(got, " ") != strings.Join(tc.wantEvents, " ") {
				t.Errorf("events %q, want %q", got, tc.wantEvents)
			}
		})
	}
	// A model whose vocabulary held no birth or sex code adds no events for the fields.
	table := data.NewCodes()
	bare := &modelrepo.Demographics{Demographics: data.DefaultDemographics()}
	req := &medseqv1.PredictRequest{PredictionTime: "2015-01-01", BirthDate: "1960-05-01", Sex: "F",
		Events: []*medseqv1.Event{{Code: "ICD10/I10", Time: "2010-01-01"}}}
	sub, err := decodePredict(table, req, DefaultLimits(), "", bare)
	if err != nil || len(sub.events) != 1 || sub.birth != birth || sub.sex != "F" {
		t.Fatalf("bare demographics: %+v %v", sub, err)
	}
}

// TestDemographicsEveryWay: the same held-out subjects scored with age and sex as fields, as
// events and as both get one probability and one decision, equal to the offline score; a
// contradiction is INVALID_ARGUMENT.
func TestDemographicsEveryWay(t *testing.T) {
	repo := newRepo(t)
	r := start(t, Config{Models: repo})
	pc := medseqv1.NewPredictorClient(dial(t, r.addr))
	ctx := tctx(t)
	reqs := heldOut(t, 30)
	want := offline(t, getFixture(t).modelDir, reqs)
	demo := testDemographics()
	for i, lr := range reqs {
		both := lr.Request
		events := proto.Clone(both).(*medseqv1.PredictRequest)
		events.BirthDate, events.Sex = "", ""
		fields := proto.Clone(both).(*medseqv1.PredictRequest)
		fields.Events = nil
		demoEvents := 0
		for _, e := range both.Events {
			if _, isSex := demo.Sex(e.Code); demo.IsBirth(e.Code) || isSex {
				demoEvents++
				continue
			}
			fields.Events = append(fields.Events, e)
		}
		if demoEvents == 0 {
			t.Fatalf("subject %d: the dataset's history has no birth or sex event", i)
		}
		for way, req := range map[string]*medseqv1.PredictRequest{"both": both, "events": events, "fields": fields} {
			resp, err := pc.Predict(ctx, req)
			if err != nil {
				t.Fatalf("subject %d as %s: %v", i, way, err)
			}
			if math.Abs(resp.Probability-want[i]) > 1e-12 || resp.Decision != (want[i] >= resp.Threshold) {
				t.Fatalf("subject %d as %s: %.12f (decision %v), offline %.12f", i, way, resp.Probability, resp.Decision, want[i])
			}
		}
	}
	bad := proto.Clone(reqs[0].Request).(*medseqv1.PredictRequest)
	bad.BirthDate = "1900-01-01"
	_, err := pc.Predict(ctx, bad)
	wantCode(t, err, codes.InvalidArgument, "birth_date")
	bad.BirthDate, bad.Sex = "", map[string]string{"F": "M", "M": "F"}[reqs[0].Label.Sex]
	_, err = pc.Predict(ctx, bad)
	wantCode(t, err, codes.InvalidArgument, "sex")
}

// TestThresholdOverride: serve --threshold decides at another point and says so in GetModel
// and the metrics; without it the manifest's operating point rules.
func TestThresholdOverride(t *testing.T) {
	repo := newRepo(t)
	man, err := modelrepo.ReadManifest(getFixture(t).modelDir)
	if err != nil {
		t.Fatal(err)
	}
	if man.OperatingPoint.Rule != "max-f1" || man.OperatingPoint.ChosenOn != "tuning" || man.OperatingPoint.Tuning == nil {
		t.Fatalf("operating point %+v", man.OperatingPoint)
	}
	for _, tc := range []struct {
		name       string
		thresholds map[string]float64
		want       float64
	}{
		{"manifest", nil, man.OperatingPoint.Threshold},
		{"override", map[string]float64{fixtureModel: 0.02}, 0.02},
		{"another model's override", map[string]float64{"other": 0.02}, man.OperatingPoint.Threshold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, Config{Models: repo, Thresholds: tc.thresholds})
			pc := medseqv1.NewPredictorClient(dial(t, r.addr))
			ctx := tctx(t)
			info, err := pc.GetModel(ctx, &medseqv1.GetModelRequest{Name: fixtureModel})
			if err != nil {
				t.Fatal(err)
			}
			overridden := tc.want != man.OperatingPoint.Threshold
			if info.Threshold != tc.want || info.ThresholdOverridden != overridden ||
				strings.Contains(info.ThresholdRule, "override") != overridden || !strings.Contains(info.ThresholdRule, "max-f1") {
				t.Fatalf("GetModel threshold %v overridden %v rule %q", info.Threshold, info.ThresholdOverridden,
					info.ThresholdRule)
			}
			for _, lr := range heldOut(t, 20) {
				resp, err := pc.Predict(ctx, lr.Request)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Threshold != tc.want || resp.Decision != (resp.Probability >= tc.want) {
					t.Fatalf("decision %v at %v for %v, want threshold %v", resp.Decision, resp.Threshold, resp.Probability, tc.want)
				}
			}
			source := map[bool]string{true: "override", false: "manifest"}[overridden]
			if g := r.srv.metrics.Threshold.WithLabelValues(fixtureModel, "1", source); gaugeValue(t, g) != tc.want {
				t.Errorf("medseq_model_threshold{source=%s} = %v, want %v", source, gaugeValue(t, g), tc.want)
			}
		})
	}
	if _, err := New(Config{Models: repo, Thresholds: map[string]float64{fixtureModel: 1.5}}); err == nil {
		t.Error("a threshold above 1 was accepted")
	}
}

// gaugeValue reads a Prometheus gauge.
func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
