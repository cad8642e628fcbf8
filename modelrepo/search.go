package modelrepo

import "path/filepath"

// SearchTrialsFile holds a hyperparameter search's trials, one JSON object a line, in the
// order they ran (train xgboost --search).
const SearchTrialsFile = "search_trials.jsonl"

// SearchTrialsPath is dir/search_trials.jsonl.
func SearchTrialsPath(dir string) string { return filepath.Join(dir, SearchTrialsFile) }

// Search is the hyperparameter search that chose a model's parameters: what it drew from,
// how, every trial and the one kept. The manifest's params are the kept trial's.
type Search struct {
	Sampler string `json:"sampler"` // tpe or random
	Seed    uint64 `json:"seed"`
	// Objective is what each trial was scored by and the search maximised (tuning_auroc:
	// the tuning split's AUROC at the round early stopping kept). The held-out split is
	// never read.
	Objective string               `json:"objective"`
	Space     map[string]SearchDim `json:"space"`
	Trials    []SearchTrial        `json:"trials"`
	Best      int                  `json:"best"` // the kept trial, an index into Trials
	// TrialsFile is the folder's file with the same trials, one a line (SearchTrialsFile).
	TrialsFile string `json:"trials_file"`
}

// SearchDim is one searched parameter's range: [Min, Max], drawn uniformly, log-uniformly
// with Log, whole numbers with Int.
type SearchDim struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	Log bool    `json:"log,omitempty"`
	Int bool    `json:"int,omitempty"`
}

// SearchTrial is one trial: the parameters it drew and what it reached.
type SearchTrial struct {
	Trial         int                `json:"trial"`
	Params        map[string]float64 `json:"params"`
	TuningAUROC   float64            `json:"tuning_auroc"`
	TrainAUROC    float64            `json:"train_auroc"`
	TuningLogloss float64            `json:"tuning_logloss"`
	BestIteration int                `json:"best_iteration"`
	Rounds        int                `json:"rounds"`
	Seconds       float64            `json:"seconds"`
}
