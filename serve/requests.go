package serve

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/medseq/medseq/data"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// FormatTime writes MEDS microseconds as the RFC 3339 text the API reads ("" for static).
func FormatTime(us int64) string {
	if us == data.StaticTime {
		return ""
	}
	return data.TimeOf(us).Format(time.RFC3339Nano)
}

// LabelledRequest is a Predict request made from a cohort label, with the label.
type LabelledRequest struct {
	Label   data.Label
	Request *medseqv1.PredictRequest
}

// CohortRequests builds Predict requests for a cohort's labels (the given splits, all when
// empty; at most limit, 0 = all) from the subjects' full, uncensored histories, so the
// server's censoring is what decides what the model sees. For end-to-end checks against
// offline predictions.
func CohortRequests(ctx context.Context, meds, cohort string, splits []string, limit int,
	model string) ([]LabelledRequest, error) {
	c, err := data.LoadCohort(cohort)
	if err != nil {
		return nil, err
	}
	ds, err := data.Open(meds)
	if err != nil {
		return nil, err
	}
	want := map[int64][]data.Label{}
	inSplit := map[string]bool{}
	for _, s := range splits {
		inSplit[s] = true
	}
	n := 0
	for _, l := range c.Labels {
		if len(splits) > 0 && !inSplit[l.Split] {
			continue
		}
		if limit > 0 && n >= limit {
			break
		}
		want[l.SubjectID] = append(want[l.SubjectID], l)
		n++
	}
	var out []LabelledRequest
	err = ds.ForEachSubject(ctx, func(s data.Subject) error {
		for _, l := range want[s.ID] {
			r := &medseqv1.PredictRequest{ModelName: model, SubjectId: fmt.Sprint(s.ID),
				PredictionTime: FormatTime(l.PredictionTime), Sex: l.Sex, BirthDate: FormatTime(l.Birth)}
			for _, e := range s.Events {
				ev := &medseqv1.Event{Code: ds.Codes.Name(e.Code), Time: FormatTime(e.Time)}
				if !math.IsNaN(float64(e.Value)) {
					ev.NumericValue = proto.Float32(e.Value)
				}
				r.Events = append(r.Events, ev)
			}
			out = append(out, LabelledRequest{Label: l, Request: r})
		}
		return nil
	})
	return out, err
}
