// Package model groups the models medseq trains and serves; each lives in a sub-package:
//
//   - model/bert: the BERT in gomlx (encoder, MLM head tied to the token embeddings, pooler and
//     classifier, named configs, safetensors with HuggingFace names, masking, device selection,
//     the BERT scorer).
//   - model/xgb: the XGBoost booster, trained through the real libxgboost (cgo): training with
//     early stopping, prediction, XGBoost's own model.json and the legacy binary format.
//   - model/gbt: the pure-Go serving predictor for those boosters (github.com/dmitryikh/leaves),
//     with exact parity with libxgboost, so the server builds without libxgboost.
//   - model/features: the baseline's sparse feature rows.
//   - model/scorer: loads a model version folder and scores histories (predict and serve).
//
// model and its sub-packages do not run training loops (package train does) and do not compute
// evaluation metrics (package eval does).
package model
