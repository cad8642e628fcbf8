// Package train owns the training drivers: `train xgboost`, and `train pretrain` and
// `train classify` for the BERT (with checkpoints and resume): reading a cohort's censored sequences, batching, schedules,
// early stopping, progress and machine-readable metrics logs, and writing a model version
// folder of the model repository. It does not compute evaluation metrics itself beyond what
// early stopping watches; eval judges the results.
package train
