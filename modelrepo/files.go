package modelrepo

import (
	"path/filepath"
	"strings"
)

// Kinds of model.
const (
	KindXGBoost = "xgboost"
	KindBERT    = "bert"
	// KindBERTMLM is a pretraining run (masked-LM heads): an input of train classify, not a
	// model that scores, so it has no calibration or operating point.
	KindBERTMLM = "bert-mlm"
)

// Files and folders of a model version.
const (
	ManifestFile    = "manifest.json"
	CalibrationFile = "calibration.json"
	TrainLogFile    = "metrics.jsonl"
	XGBoostDir      = "xgboost"
	XGBoostJSON     = "model.json"
	XGBoostLegacy   = "model.bin"
	TopFeaturesFile = "top_features.json" // inside XGBoostDir
	BERTDir         = "bert"
)

// PredictionsFile is the folder's predictions of a split (predictions_<split>.parquet), in
// meds-evaluation's PredictionSchema and nothing else.
func PredictionsFile(dir, split string) string {
	return filepath.Join(dir, "predictions_"+split+".parquet")
}

// PredictionsExtraFile is the medseq columns of the folder's predictions of a split (age, sex,
// split, raw_probability, keyed by subject_id and prediction_time), beside PredictionsFile:
// predictions_<split>.extra.parquet.
func PredictionsExtraFile(dir, split string) string {
	return PredictionsExtraPath(PredictionsFile(dir, split))
}

// PredictionsExtraPath is the extras file beside any predictions Parquet file (a model
// folder's, or medseq predict's --out): NAME.parquet -> NAME.extra.parquet.
func PredictionsExtraPath(predictions string) string {
	ext := filepath.Ext(predictions)
	return strings.TrimSuffix(predictions, ext) + ".extra" + ext
}

// CalibrationPath is dir/calibration.json.
func CalibrationPath(dir string) string { return filepath.Join(dir, CalibrationFile) }

// TrainLogPath is dir/metrics.jsonl.
func TrainLogPath(dir string) string { return filepath.Join(dir, TrainLogFile) }

// XGBoostPath is dir/xgboost, or a file inside it.
func XGBoostPath(dir string, file ...string) string {
	return filepath.Join(append([]string{dir, XGBoostDir}, file...)...)
}

// TopFeaturesPath is dir/xgboost/top_features.json.
func TopFeaturesPath(dir string) string { return XGBoostPath(dir, TopFeaturesFile) }

// BERTPath is dir/bert, the HuggingFace folder of a BERT model.
func BERTPath(dir string) string { return filepath.Join(dir, BERTDir) }
