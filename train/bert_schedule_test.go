package train

import (
	"bytes"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestAutoClassifySchedule(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		labels, batch, hidden int
		epochs                float64
		lr                    float64
	}{
		{"a handful of labels: the most epochs", 100, 32, 64, scheduleMaxEpochs, 1e-3},
		{"the issue's thousand labels", 1024, 32, 64, 38, 1e-3},
		{"the demo's training split", 2324, 32, 64, 17, 1e-3},
		{"many labels: the fewest epochs", 100000, 32, 64, scheduleMinEpochs, 1e-3},
		{"small model: a lower rate", 2324, 32, 256, 17, 5e-4},
		{"base model: lower still", 2324, 32, 768, 17, 2.9e-4},
		{"larger batches: more epochs for the same steps", 2324, 64, 64, 33, 1e-3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := AutoClassifySchedule(tc.labels, tc.batch, tc.hidden)
			if s.Epochs != tc.epochs || math.Abs(s.LR-tc.lr) > 1e-12 || s.Labels != tc.labels {
				t.Errorf("%+v, want %g epochs at lr %g", s, tc.epochs, tc.lr)
			}
			if s.Warmup <= 0 || s.Warmup >= 1 || s.Patience < scheduleMinPat || float64(s.Patience) > s.Epochs {
				t.Errorf("warmup %g, patience %d of %g epochs", s.Warmup, s.Patience, s.Epochs)
			}
			steps := math.Ceil(float64(tc.labels)/float64(tc.batch)) * s.Epochs
			if s.Epochs < scheduleMaxEpochs && steps < scheduleMinSteps {
				t.Errorf("%g steps, fewer than %d without reaching the most epochs", steps, scheduleMinSteps)
			}
		})
	}
	// Fewer labels never get fewer epochs.
	prev := math.Inf(1)
	for n := 50; n < 200000; n = n*3/2 + 1 {
		e := AutoClassifySchedule(n, 32, 64).Epochs
		if e > prev {
			t.Fatalf("%d labels get %g epochs, fewer labels %g", n, e, prev)
		}
		prev = e
	}
}

func TestApplyAuto(t *testing.T) {
	s := ClassifySchedule{Labels: 1024, Epochs: 20, LR: 5e-4, Warmup: 0.1, Patience: 5}
	for _, tc := range []struct {
		name string
		auto AutoSettings
		want BERTTraining
		log  string
	}{
		{"all", AllAuto(), BERTTraining{LR: 5e-4, Epochs: 20, Warmup: 0.1, Patience: 5},
			"auto: 1,024 training labels → 20 epochs, lr 0.0005, warmup 10%, patience 5 epochs, " +
				"evaluated every epoch"},
		{"lr given", AutoSettings{Epochs: true, Warmup: true},
			BERTTraining{LR: 3e-3, Epochs: 20, Warmup: 0.1, Patience: 2},
			"auto: 1,024 training labels → 20 epochs, warmup 10%"},
		{"none", AutoSettings{}, BERTTraining{LR: 3e-3, MaxSteps: 40, Warmup: 0.2, Patience: 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			got := BERTTraining{LR: 3e-3, MaxSteps: 40, Warmup: 0.2, Patience: 2}
			if tc.auto.Epochs {
				tc.want.MaxSteps = 0
			} else {
				tc.want.MaxSteps = 40
			}
			applyAuto(&got, tc.auto, s, slog.New(slog.NewTextHandler(&buf, nil)))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("training %+v, want %+v", got, tc.want)
			}
			if tc.log == "" && buf.Len() > 0 || !strings.Contains(buf.String(), tc.log) {
				t.Errorf("log %q, want %q", buf.String(), tc.log)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1024: "1,024", 123456: "123,456",
		1234567: "1,234,567", -2500: "-2,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestConstantLoss: the loss of predicting the prevalence is the prevalence's entropy
// unweighted, 2·(1−p)·ln 2 with positives weighted negatives/positives, and no constant logit
// does better.
func TestConstantLoss(t *testing.T) {
	for _, tc := range []struct {
		prev, w, want float64
	}{
		{0.5, 1, math.Ln2},
		{0.2, 1, -(0.2*math.Log(0.2) + 0.8*math.Log(0.8))},
		{0.2, 4, 2 * 0.8 * math.Ln2},
		{0.05, 19, 2 * 0.95 * math.Ln2},
		{0.3, 2.5, math.NaN()},
	} {
		got := constantLoss(tc.prev, tc.w)
		if !math.IsNaN(tc.want) && math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("constantLoss(%g, %g) = %v, want %v", tc.prev, tc.w, got, tc.want)
		}
		for _, z := range []float64{-3, -1, -0.3, 0, 0.3, 1, 3} {
			y := make([]float32, 1000)
			for i := range int(tc.prev * 1000) {
				y[i] = 1
			}
			logits := make([]float32, len(y))
			for i := range logits {
				logits[i] = float32(z)
			}
			if l := bceLoss(logits, y, tc.w); l < got-1e-6 {
				t.Errorf("prevalence %g weight %g: the constant logit %g reaches %v, below %v",
					tc.prev, tc.w, z, l, got)
			}
		}
	}
	if constantLoss(0, 1) != 0 || constantLoss(1, 1) != 0 {
		t.Error("one class: want 0 (nothing to compare against)")
	}
}

func TestCheckLoss(t *testing.T) {
	c := constantLoss(0.2, 4) // 1.109
	hist := func(losses ...float64) []BERTMetrics {
		var h []BERTMetrics
		for i, l := range losses {
			h = append(h, BERTMetrics{Step: i + 1, TrainLoss: l})
		}
		return h
	}
	for _, tc := range []struct {
		name  string
		h     []BERTMetrics
		stuck bool
	}{
		{"flat at the constant", hist(1.12, 1.11, 1.109, 1.11), true},
		{"within 2%", hist(1.2, 1.15, 0.99*c), true},
		{"left it once", hist(1.2, 0.95*c, 1.1), false},
		{"learned", hist(1.1, 0.9, 0.7), false},
		{"no evaluation", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkLoss(tc.h, 0.2, 4)
			if got.Stuck != tc.stuck || math.Abs(got.Constant-c) > 1e-12 {
				t.Errorf("%+v, want stuck %v", got, tc.stuck)
			}
			if len(tc.h) > 0 && (got.Initial != tc.h[0].TrainLoss || got.Best > got.Initial) {
				t.Errorf("initial %v, best %v of %v", got.Initial, got.Best, tc.h)
			}
		})
	}
	adv := checkLoss(hist(1.12, 1.11), 0.2, 4).advice(0, ClassifySchedule{Labels: 1024, Epochs: 38, LR: 1e-3})
	if !strings.Contains(adv, "training loss never left its initial value") || !strings.Contains(adv, "--lr 0.001") ||
		!strings.Contains(adv, "1,024 training labels") {
		t.Errorf("advice %q", adv)
	}
	if adv := checkLoss(hist(1.12), 0.2, 4).advice(2e-3,
		ClassifySchedule{LR: 1e-3}); !strings.Contains(adv, "--lr 0.006") {
		t.Errorf("advice at a rate above the rule's: %q", adv)
	}
}
