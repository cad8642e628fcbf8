package train

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// AutoSettings names the settings of `train classify` the run chooses itself from its number
// of training labels and the model's size (AutoClassifySchedule) instead of taking
// BERTTraining's: those the user left unset. The zero value chooses none.
type AutoSettings struct {
	Epochs, LR, Warmup, Patience bool
	// EvalEvery evaluates on the tuning split once per epoch.
	EvalEvery bool
}

// AllAuto chooses every setting: what `train classify` does with none of --epochs,
// --max-steps, --lr, --warmup, --patience and --eval-every given.
func AllAuto() AutoSettings {
	return AutoSettings{Epochs: true, LR: true, Warmup: true, Patience: true, EvalEvery: true}
}

// names lists the chosen settings as flags name them.
func (a AutoSettings) names() []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{a.Epochs, "epochs"}, {a.LR, "lr"}, {a.Warmup, "warmup"}, {a.Patience, "patience"}, {a.EvalEvery, "eval-every"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// ClassifySchedule is how long and how fast a classifier trains.
type ClassifySchedule struct {
	Labels int     // the training labels it is chosen for
	Epochs float64 // passes over the training split (an upper bound: early stopping ends sooner)
	LR     float64 // peak learning rate
	Warmup float64 // a fraction of all steps
	// Patience is the epochs without a better tuning metric before stopping.
	Patience int
}

// The rule's constants, from scripts/bert-schedule-grid.sh on synthetic cohorts of 573 to 9,516
// training labels (docs/MODELS.md): at lr 1e-3 the tiny BERT's training loss sits at the loss
// of predicting the prevalence for its first 150 to 300 steps, whatever the cohort's size (the
// old 3 or 4 epochs of a thousand labels, about 100 steps, never left it), then its tuning
// loss is least within 2 to 4 epochs and it memorises the training split after (training
// AUROC 0.99 by 10 epochs). So the epochs give at least scheduleMinSteps steps, and early
// stopping on the tuning loss ends the run a few epochs after its best. At lr 3e-3 the loss
// never left its initial value; 3e-4 did as well as 1e-3, later.
const (
	scheduleMinSteps  = 1200 // optimizer steps the epochs should reach at least
	scheduleMinEpochs = 8
	scheduleMaxEpochs = 40
	scheduleTinyLR    = 1e-3 // the peak learning rate of hidden size 64 (tiny)
	scheduleTinyH     = 64
	scheduleWarmup    = 0.1
	scheduleMinPat    = 3 // epochs of patience at least
)

// AutoClassifySchedule is the schedule for labels training labels in batches of batch, for a
// model of hidden size hidden: epochs enough for scheduleMinSteps steps (within
// [scheduleMinEpochs, scheduleMaxEpochs]); the tiny model's learning rate, scaled by
// 1/sqrt(hidden/64) for larger models (a rule of thumb, not measured here); 10% warmup;
// patience of a quarter of the epochs (at least 3).
func AutoClassifySchedule(labels, batch, hidden int) ClassifySchedule {
	stepsPerEpoch := max(1, (labels+max(batch, 1)-1)/max(batch, 1))
	epochs := (scheduleMinSteps + stepsPerEpoch - 1) / stepsPerEpoch
	epochs = min(max(epochs, scheduleMinEpochs), scheduleMaxEpochs)
	lr := scheduleTinyLR
	if hidden > scheduleTinyH {
		lr *= math.Sqrt(float64(scheduleTinyH) / float64(hidden))
	}
	return ClassifySchedule{Labels: labels, Epochs: float64(epochs), LR: roundSig(lr, 2), Warmup: scheduleWarmup,
		Patience: max(scheduleMinPat, epochs/4)}
}

// roundSig rounds x to n significant digits.
func roundSig(x float64, n int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', n, 64), 64)
	return v
}

// applyAuto puts the schedule's choices into t for the settings auto names and logs them
// ("auto: 1,024 training labels → 20 epochs, lr 0.001, warmup 10%, patience 5 epochs").
// EvalEvery is set once the steps per epoch are known (bertRun.schedule).
func applyAuto(t *BERTTraining, auto AutoSettings, s ClassifySchedule, log *slog.Logger) {
	var parts []string
	if auto.Epochs {
		t.Epochs, t.MaxSteps = s.Epochs, 0
		parts = append(parts, fmt.Sprintf("%g epochs", s.Epochs))
	}
	if auto.LR {
		t.LR = s.LR
		parts = append(parts, "lr "+strconv.FormatFloat(s.LR, 'g', -1, 64))
	}
	if auto.Warmup {
		t.Warmup = s.Warmup
		parts = append(parts, fmt.Sprintf("warmup %g%%", 100*s.Warmup))
	}
	if auto.Patience {
		t.Patience = s.Patience
		parts = append(parts, fmt.Sprintf("patience %d epochs", s.Patience))
	}
	if auto.EvalEvery {
		parts = append(parts, "evaluated every epoch")
	}
	if len(parts) == 0 {
		return
	}
	log.Info(fmt.Sprintf("auto: %s training labels → %s", thousands(s.Labels), strings.Join(parts, ", ")),
		"chosen", strings.Join(auto.names(), ","))
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// stuckTolerance is how close to the loss of predicting the prevalence the best training loss
// may stay for a run to count as never having left its initial loss.
const stuckTolerance = 0.02

// constantLoss is the least mean BCE a constant logit reaches on labels with positive share
// prev and positives weighted posWeight: the loss of a model that learned only the
// prevalence (the prevalence's entropy unweighted; 2·(1−prev)·ln 2 with posWeight
// negatives/positives).
func constantLoss(prev, posWeight float64) float64 {
	if prev <= 0 || prev >= 1 {
		return 0
	}
	z := math.Log(posWeight * prev / (1 - prev))
	sp := func(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }
	return posWeight*prev*sp(-z) + (1-prev)*sp(z)
}

// lossCheck is whether a run's training loss left its initial value.
type lossCheck struct {
	Initial  float64 // the first evaluation's mean training loss
	Best     float64 // the least mean training loss of any evaluation
	Constant float64 // constantLoss on the training split
	Stuck    bool    // Best stayed within stuckTolerance of Constant
}

// checkLoss compares the training losses of history with the loss of predicting the
// prevalence.
func checkLoss(history []BERTMetrics, prev, posWeight float64) lossCheck {
	c := lossCheck{Constant: constantLoss(prev, posWeight), Best: math.Inf(1)}
	for i, m := range history {
		if i == 0 {
			c.Initial = m.TrainLoss
		}
		c.Best = math.Min(c.Best, m.TrainLoss)
	}
	c.Stuck = len(history) > 0 && c.Constant > 0 && c.Best >= (1-stuckTolerance)*c.Constant
	return c
}

// advice is the warning of a stuck run: what to try.
func (c lossCheck) advice(lr float64, auto ClassifySchedule) string {
	try := auto.LR
	if lr >= try {
		try = 3 * lr
	}
	return fmt.Sprintf("training loss never left its initial value (least %.4f, %.4f when predicting the prevalence "+
		"alone): try --lr %s or more --epochs (%g suit %s training labels)",
		c.Best, c.Constant, strconv.FormatFloat(roundSig(try, 2), 'g', -1, 64), auto.Epochs, thousands(auto.Labels))
}
