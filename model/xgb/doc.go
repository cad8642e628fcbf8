// Package xgb owns the XGBoost booster of medseq's baseline: training through the real
// libxgboost (cgo, `-lxgboost`, Debian's libxgboost-dev 1.7), prediction, and the two files a
// model version holds: XGBoost's own model.json (which Python's xgboost loads) and the legacy
// binary format that model/gbt serves with pure-Go leaves.
//
// Train runs binary:logistic with tree_method hist, evaluates logloss and auc on the training
// and tuning sets every round, stops early on the tuning set, and keeps only the best rounds
// (XGBoosterSlice), so that prediction, both saved files and feature gains all use rounds
// 0..BestIteration. Training stops between rounds when its context is cancelled. Every C
// return code is checked; XGBGetLastError becomes the Go error. Nothing is logged (XGBoost's
// verbosity is 0).
//
// Search (search.go) is a hyperparameter search over Space (MEDS-Tab's XGBoost sweep,
// adapted): each trial is a Train stopping early on its tuning AUROC, with parameters from a
// multivariate TPE (tpe.go) or uniform random draws; the best trial's booster is kept. Only
// the training and tuning sets reach it, and a seed makes it repeat exactly.
//
// OMP_WAIT_POLICY: libgomp reads it once, when the dynamic loader initialises it, before any
// Go code runs. A function in the executable's .preinit_array (the only code that runs
// earlier) sets OMP_WAIT_POLICY=PASSIVE unless the user set it, so OpenMP threads sleep
// instead of spinning between parallel regions on a busy machine.
//
// Builds without cgo or with -tags noxgboost get a stub: Available is false and every
// function returns ErrUnavailable; the tests skip with a message.
package xgb
