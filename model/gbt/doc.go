// Package gbt is the pure-Go (no cgo) serving predictor for the gradient-boosted trees that
// model/xgb trains: it loads the legacy XGBoost binary model written by xgb.SaveLegacyBinary and
// predicts probabilities with github.com/dmitryikh/leaves, so that the server builds and runs
// without libxgboost.
//
// leaves was written for XGBoost up to 0.90 and mis-reads what XGBoost 1.x writes. Load fixes
// every difference in memory before leaves sees the model (the file is never converted):
//
//   - the optional "binf" marker at the start of the file is stripped;
//   - num_output_group, stored as 0 by XGBoost 1.x, is set to 1 (binary models only);
//   - base_score, stored as a probability by XGBoost 1.x, is turned into the margin leaves adds
//     before the trees (logit, in float32 as XGBoost computes it);
//   - XGBoost sends x < threshold left and leaves tests x <= threshold: every split threshold t
//     becomes math.Nextafter32(t, -Inf), the largest float32 below t, so that for every float32
//     x, x <= t' exactly when x < t.
//
// Load also checks the structure of the file (sizes, tree shapes, child and feature indices)
// before leaves reads it, and recovers any panic, so a corrupt or truncated file is an error.
//
// An absent entry in a sparse row is a missing value (NaN), as in XGBoost: it follows the
// split's default direction. Predictions equal libxgboost's to within 1e-6 (XGBoost sums the
// trees in float32, leaves in float64).
//
// gbt owns CSR, the sparse row matrix both packages use (xgb.CSR is an alias of gbt.CSR).
package gbt
