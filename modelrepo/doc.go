// Package modelrepo owns a model version folder: its file names, its typed manifest, its
// calibration file and the operating point, with the reading that predict, serve and eval share.
// train writes a folder only through it; nothing else names a file of the folder.
//
// A version folder (models/<name>/<version>/) holds:
//
//	manifest.json                  Manifest: kind, name, run, inputs, gap, operating point, ...
//	calibration.json               Calibration fitted on the tuning split
//	predictions_<split>.parquet    the run's scored splits (meds-evaluation's PredictionSchema only)
//	predictions_<split>.extra.parquet   their age, sex, split and raw_probability (eval.WritePredictions)
//	metrics.jsonl                  the training curve, one JSON object a line
//	tokenizer.json, vocab.txt, medseq_tokenizer.json   the tokenizer (owned by package tokenize)
//	xgboost/                       model.json, model.bin, the feature space, top_features.json
//	bert/                          the HuggingFace BERT folder (owned by package model/bert)
//
// The operating point (OperatingPoint) is the one threshold a deployment uses: a prediction is
// positive when its calibrated probability is at or above it. It is chosen once, on the
// calibrated tuning predictions, and every door reads it from the manifest: the folder's split
// predictions, medseq predict, the served decision and the report's deployed point.
package modelrepo
