package serve

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
	"github.com/medseq/medseq/tokenize"
)

// TestCodeItemsAnyCode: the CODE@TIME item syntax (predict --codes, ModelInfer's one-line and
// [batch, length] codes) carries any code in its text form and reads it back exactly.
func TestCodeItemsAnyCode(t *testing.T) {
	for _, c := range []struct{ in, code, time string }{
		{"LAB//51498//%20@2020-01-01", "LAB//51498// ", "2020-01-01"},
		{"HOSPITAL_ADMISSION//EW%20EMER.//EMERGENCY%20ROOM@2020-01-01T10:00:00Z",
			"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "2020-01-01T10:00:00Z"},
		{"LAB//50912//mg/dL@2020-01-01", "LAB//50912//mg/dL", "2020-01-01"},
		{"%5BMASK]@2020-01-01", "[MASK]", "2020-01-01"},
		{"EMAIL%40x", "EMAIL@x", ""}, // a static code holding '@'
		{"LAB//100%", "LAB//100%", ""},
		{"LAB//100%2525", "LAB//100%25", ""},
	} {
		it := splitCodeItem(c.in)
		if it.code != c.code || it.time != c.time {
			t.Errorf("%q: code %q time %q, want %q %q", c.in, it.code, it.time, c.code, c.time)
		}
	}
	var evs []*medseqv1.Event
	for i, c := range []string{"LAB//51498// ", "MEDICATION//START//Insulin Glargine 100 unit/mL",
		"TRANSFER_TO//ward//Med/Surg", "[MASK]",
		"a@b", "x=y", "LAB//%41", "NOTE//naïve\u00a0café", "tab\there"} {
		e := &medseqv1.Event{Code: c}
		if i%2 == 0 {
			e.Time = "2020-01-0" + string(rune('1'+i))
		}
		if i == 2 {
			v := float32(1.5)
			e.NumericValue = &v
		}
		evs = append(evs, e)
	}
	line := CodesLine(evs)
	if strings.Count(line, " ") != len(evs)-1 {
		t.Fatalf("CodesLine %q: one item per event, separated by single spaces", line)
	}
	back := ParseCodes(line)
	if len(back) != len(evs) {
		t.Fatalf("ParseCodes(%q): %d events, want %d", line, len(back), len(evs))
	}
	for i := range evs {
		if back[i].Code != evs[i].Code || back[i].Time != evs[i].Time ||
			(back[i].NumericValue == nil) != (evs[i].NumericValue == nil) {
			t.Errorf("event %d: %+v back as %+v (line %q)", i, evs[i], back[i], line)
		}
	}
}

// TestDecodeCodeLimits: the server refuses exactly the codes data.CheckCode refuses (the limits
// of import and the readers), naming the field and never repeating the code; any other code,
// with spaces, trailing blanks or a special token's name, is accepted.
func TestDecodeCodeLimits(t *testing.T) {
	lim := DefaultLimits()
	if lim.MaxCodeLen != data.MaxCodeBytes {
		t.Errorf("serving's code limit %d, the data's %d", lim.MaxCodeLen, data.MaxCodeBytes)
	}
	one := func(code string) error {
		_, err := decodeSubject(data.NewCodes(), []eventItem{{code: "MEDS_BIRTH", time: "1960-01-01"},
			{code: code, time: "2020-01-01"}},
			"2021-01-01", "", "", "s1", lim, "", "events", &modelrepo.Demographics{Demographics: data.DefaultDemographics()})
		return err
	}
	for _, c := range []string{"LAB//51498// ", "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "[MASK]", "[PAD]",
		"tab\there",
		strings.Repeat("é", data.MaxCodeBytes/2)} {
		if err := one(c); err != nil {
			t.Errorf("%q refused: %v", c, err)
		}
	}
	for _, c := range []struct{ code, msg string }{
		{"A\x00B", "events[1].code: holds a NUL byte"},
		{"A\nB", "events[1].code: holds a line break"},
		{"B\xff", "events[1].code: is not valid UTF-8"},
		{"  ", "events[1].code: is blank"},
		{strings.Repeat("Q", data.MaxCodeBytes+1), "events[1].code: longer than 256 bytes"},
	} {
		err := one(c.code)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v, want %q", c.code, err, c.msg)
			continue
		}
		if len(c.code) > 1 && strings.Contains(err.Error(), c.code) {
			t.Errorf("the error %q repeats the code", err)
		}
		if data.CheckCode(c.code) == nil {
			t.Errorf("data.CheckCode accepts %q, which serving refuses", c.code)
		}
	}
}

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestForeignCodesCounted plants codes from outside the training vocabulary in served
// histories: each is answered as unknown or pieced, never as a known code, and
// medseq_codes_total counts the three kinds per model, beside the training shares.
func TestForeignCodesCounted(t *testing.T) {
	repo := newRepo(t)
	r := start(t, Config{Models: repo})
	pc := medseqv1.NewPredictorClient(dial(t, r.addr))
	ctx := tctx(t)
	waitFor(t, "the model to load", func() bool { _, err := r.srv.repo.Resolve(fixtureModel, ""); return err == nil })
	v, _ := r.srv.repo.Resolve(fixtureModel, "")
	tok := v.Scorer.Tokenizer()
	// A pieced code: a known stem with a known suffix, itself not in the vocabulary.
	pieced := ""
	for _, stem := range tok.Vocab.Tokens()[tok.WholeEnd:] {
		if strings.HasPrefix(stem, "##") {
			continue
		}
		for _, suf := range tok.Vocab.Tokens()[tok.WholeEnd:] {
			if c, ok := strings.CutPrefix(suf, "##"); ok {
				if _, kind := tok.AppendCode(nil, stem+c); kind == tokenize.CodePieced && pieced == "" {
					pieced = data.ParseCodeText(stem + c)
				}
			}
		}
	}
	if pieced == "" {
		t.Fatal("the fixture's tokenizer pieces no code")
	}
	foreign := []string{"READ/C10..", "ICD9/250.00", "LAB//51498// ", "[MASK]"}
	req := &medseqv1.PredictRequest{ModelName: fixtureModel, PredictionTime: "2021-01-01", BirthDate: "1960-01-01",
		Sex: "F", Events: ParseCodes("ICD10/I10@2019-05-01 " + ItemCode(pieced) + "@2019-06-01")}
	for _, c := range foreign {
		req.Events = append(req.Events, &medseqv1.Event{Code: c, Time: "2019-07-01"})
	}
	resp, err := pc.Predict(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.UnknownCodes != int32(len(foreign)) {
		t.Errorf("unknown codes %d, want %d (the foreign ones)", resp.UnknownCodes, len(foreign))
	}
	m := r.srv.metrics
	got := map[string]float64{}
	for _, k := range []string{"whole", "pieced", "unknown"} {
		got[k] = counterValue(t, m.Codes.WithLabelValues(fixtureModel, "1", k))
	}
	// Birth and sex come as fields: the server adds their events (whole codes of the model).
	if got["unknown"] != float64(len(foreign)) || got["pieced"] != 1 ||
		got["whole"] != float64(resp.EventsUsed)-1-float64(len(foreign)) {
		t.Errorf("medseq_codes_total %v for %d events used, want unknown %d, pieced 1", got, resp.EventsUsed, len(foreign))
	}
	if rates := v.Manifest.TokenRates; rates == nil || rates.Codes == 0 || rates.WholeRate < 0.5 {
		t.Errorf("manifest token rates %+v", rates)
	} else if w := gaugeValue(t, m.TrainCodes.WithLabelValues(fixtureModel, "1", "whole")); w != rates.WholeRate {
		t.Errorf("medseq_model_training_code_share{kind=whole} %v, manifest %v", w, rates.WholeRate)
	}
	// A code no stage accepts is refused, naming the event.
	req.Events = append(req.Events, &medseqv1.Event{Code: "X\x00", Time: "2019-08-01"})
	_, err = pc.Predict(ctx, req)
	wantCode(t, err, codes.InvalidArgument, "events[6].code")
}
