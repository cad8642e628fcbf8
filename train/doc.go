// Package train owns the training drivers: `train xgboost`, and `train pretrain` and
// `train classify` for the BERT (with checkpoints and resume): reading a cohort's censored
// sequences, batching, schedules, early stopping, progress and machine-readable metrics
// logs, and writing a model version folder of the model repository. It does not compute
// evaluation metrics itself beyond what early stopping watches; eval judges the results.
//
// Every driver fills in one skeleton (run.go): startRun opens and checks the inputs, the
// driver reads its data and trains inside createOut's atomic folder, and finish saves the
// model, copies the tokenizer, writes each split's predictions with the calibration and the
// operating point (servable models), completes the manifest and commits. bertRun (bert_run.go)
// adds what the two BERT drivers share: device and engine, schedule, checkpoints, the loop.
//
// `train pretrain` learns by default from a records corpus (corpus*.go): the whole records of
// every training subject of the dataset (data.Records), cut into windows of the model's length
// (corpus_cut.go) and streamed shard by shard through a bounded shuffle buffer
// (corpus_stream.go), so memory does not grow with the dataset; validation reads a sample of
// the tuning subjects' windows; a held-out subject is never read.
package train
