// Package eval judges models: it works on any table of (subject, prediction time, label,
// score, attributes), so it judges medseq's models and anyone else's. It owns metrics with
// confidence intervals, calibration, segment analysis and reports. It does not depend on
// gomlx or on how a score was made.
//
// # Predictions
//
// ReadPredictions and WritePredictions use the MEDS-evaluation layout (subject_id,
// prediction_time, boolean_value, predicted_boolean_value, predicted_boolean_probability) as
// Parquet or CSV. In Parquet the file holds exactly meds-evaluation's PredictionSchema, and
// attributes (age, sex, split, raw_probability, ...) go to a typed extras file beside it
// (NAME.extra.parquet) that ReadPredictions joins back; a CSV file holds them after the five
// columns. Probabilities must be finite and in [0, 1].
//
// # Metrics
//
// Compute reports AUROC, average precision (scikit-learn's step definition), log loss
// (probabilities clipped to [ε, 1−ε], ε = 2.22e-16, as scikit-learn's eps="auto"), Brier, and
// at a threshold (positive when score >= threshold) the confusion matrix, precision, recall,
// specificity, NPV, F1, accuracy, balanced accuracy, MCC, LR+ and LR−. Each is computed twice:
// sample-weighted (each prediction 1) and subject-weighted (each of a subject's n predictions
// 1/n, MEDS-evaluation's convention). A ratio with a zero denominator is NaN in Go and null in
// JSON; a likelihood ratio with only its denominator zero is +Inf ("+Inf" in JSON); see Num.
//
// Thresholds are fixed, or chosen (max-F1, Youden's J, target sensitivity) on tuning
// predictions; chosen on the evaluated predictions they come with a warning. Segments reuse
// the aggregate's threshold.
//
// Intervals are percentile bootstrap intervals over subjects: resample r draws subjects with
// replacement from a PCG stream seeded (seed, r), so results depend on the seed only, not on
// the number of workers. The predictions are sorted by score once; each resample is one O(n)
// pass with the subjects' multiplicities as row weights.
//
// DeLong compares two models' AUROCs on the same rows; CompareSegments adds a per-segment
// comparison and a Simpson's-paradox check.
//
// # Calibration
//
// Reliability curves (uniform or quantile bins, as scikit-learn's calibration_curve), ECE,
// calibration slope and intercept (logistic regression of the label on logit(p)), and two
// recalibrations fitted on a tuning split: Platt (scikit-learn's unpenalised
// LogisticRegression on the score) and Isotonic (IsotonicRegression(out_of_bounds="clip")).
// A fitted Calibration is saved as calibration.json beside a model.
//
// # Cohort checks
//
// CheckCohort compares the classes' ages and sequence lengths and flags any single feature
// whose presence alone gives AUROC above 0.99: almost always a leak.
//
// The tests compare the numbers with scikit-learn (testdata/sklearn_check.py, run with
// /usr/bin/python3); they skip without scikit-learn unless the CI variable is set.
package eval
