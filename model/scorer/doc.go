// Package scorer loads a model version folder of the model repository (see docs/DESIGN.md:
// manifest.json, tokenizer files, calibration.json, and bert/ or xgboost/) and scores censored
// histories with it. Batch scoring (medseq predict) and the gRPC server use the same Scorer, so
// an offline score and a served one agree. A Scorer returns raw model probabilities;
// PredictCohort (medseq predict) scores a cohort's labels and calibrates them with the folder's
// calibration.json (modelrepo.Calibration); eval writes them.
package scorer
