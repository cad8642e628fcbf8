package features

import "github.com/medseq/medseq/model/gbt"

// CSR is a sparse row-major matrix of float32 features: an absent entry is a missing value (as
// XGBoost treats it), which for a count means zero occurrences. It is the predictor's own type,
// so rows go to libxgboost and to leaves without copying.
type CSR = gbt.CSR
