package modelrepo

// Kinds of pretraining corpus (Corpus.Kind).
const (
	// CorpusRecords is the whole records of the dataset's training subjects, cut into windows
	// of the model's length.
	CorpusRecords = "records"
	// CorpusCohort is the cohort's censored training sequences, one per label.
	CorpusCohort = "cohort"
)

// Corpus is what a masked-language model was pretrained on (train pretrain): the kind, the
// training subjects, windows and tokens of one epoch, and how the windows were cut. The
// tuning subjects gave the validation windows; held-out subjects and subjects without a split
// were never read.
type Corpus struct {
	Kind     string `json:"kind"`     // records or cohort
	Subjects int    `json:"subjects"` // training subjects read
	Windows  int    `json:"windows"`  // training windows (sequences) per epoch
	Tokens   int64  `json:"tokens"`   // their tokens, [CLS] and [SEP] included
	// Until is the date the records were cut at (only events before it); "" for none.
	Until string `json:"until,omitempty"`
	// Stride is the tokens consecutive windows of a record share (0: none).
	Stride int `json:"stride,omitempty"`
	MaxLen int `json:"max_len"` // tokens per window
	// ShuffleBuffer is the windows the training stream shuffles among (0: a cohort corpus,
	// shuffled whole).
	ShuffleBuffer  int `json:"shuffle_buffer,omitempty"`
	TuningSubjects int `json:"tuning_subjects"`
	// TuningWindows are the validation windows: every tuning window, or a uniform sample of
	// them when there are more than the run keeps.
	TuningWindows   int `json:"tuning_windows"`
	HeldOutSubjects int `json:"held_out_subjects"` // never read
	// Unassigned are subjects neither the cohort nor the dataset gives a split: never read.
	Unassigned int `json:"unassigned_subjects,omitempty"`
	// SplitSources count the subjects by where their split came from (cohort, subject_splits,
	// shard_folder).
	SplitSources map[string]int `json:"split_sources,omitempty"`
}
