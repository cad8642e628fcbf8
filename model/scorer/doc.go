// Package scorer loads a model version folder of the model repository (see DESIGN.md:
// manifest.json, tokenizer files, calibration.json, and bert/ or xgboost/) and scores censored
// histories with it. Batch scoring (medseq predict) and the gRPC server use the same Scorer, so
// an offline score and a served one agree. It returns raw model probabilities; calibration is
// applied by the caller (eval owns it).
package scorer
