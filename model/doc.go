// Package model owns the models medseq trains and serves: the BERT graph (encoder, MLM head,
// classifier head, configuration, checkpoints and safetensors export; coming with issue 5) and
// the model sub-packages:
//
//   - model/xgb: the XGBoost booster, trained through the real libxgboost (cgo): training with
//     early stopping, prediction, XGBoost's own model.json and the legacy binary format.
//   - model/gbt: the pure-Go serving predictor for those boosters (github.com/dmitryikh/leaves),
//     with exact parity with libxgboost, so the server builds without libxgboost.
//
// model and its sub-packages do not run training loops (package train does) and do not compute
// evaluation metrics (package eval does).
package model
