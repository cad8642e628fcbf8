package scorer

import (
	"context"

	"github.com/medseq/medseq/data"
)

// Scored is one label's score: the label as the cohort holds it and the scorer's result.
type Scored struct {
	Label  data.Label
	Result Result
	Events int // codes scored (the censored history's events)
}

// ScoreCohort scores every label of the cohort's splits (all when splits is empty) on its
// censored sequence (data.Cohort.Sequences: the cohort's gap and censoring), batch labels per
// Score call, and hands each batch's results to fn in cohort order. medseq predict and the
// training runs that write a model folder's predictions score through it, so both give the
// served answer for the same history.
func ScoreCohort(ctx context.Context, sc Scorer, ds *data.Dataset, c *data.Cohort, splits []string, batch int,
	fn func([]Scored) error) error {
	if batch < 1 {
		batch = 512
	}
	var pending []Input
	var labels []data.Label
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		res, err := sc.Score(ds.Codes, pending)
		if err != nil {
			return err
		}
		out := make([]Scored, len(res))
		for i, r := range res {
			out[i] = Scored{Label: labels[i], Result: r, Events: len(pending[i].Events)}
		}
		pending, labels = pending[:0], labels[:0]
		return fn(out)
	}
	// Events of a shard stay valid while the shard is current: score before moving on.
	err := c.Sequences(ctx, ds, splits, func(s data.Sequence) error {
		pending = append(pending, Input{Events: s.Events, Birth: s.Label.Birth, Sex: s.Label.Sex,
			PredictionTime: s.Label.PredictionTime})
		labels = append(labels, s.Label)
		if len(pending) >= batch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
