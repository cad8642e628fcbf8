// Package study holds analyses that need a dataset and a model together: censoring
// sensitivity and learning curves. It orchestrates the other packages (data builds and
// rebuilds cohorts, model/scorer scores them as medseq predict does, eval computes the
// metrics) and owns no algorithm of its own beyond choosing the rows each analysis compares.
//
// # Censoring sensitivity
//
// A cohort requires its negatives to be followed for a while after the prediction time
// (data cohort --follow-up): a negative whose records stop sooner might have been diagnosed
// unseen. Censoring asks how much that choice moves a model's numbers. It rebuilds the
// model's cohort from its own rules with no follow-up requirement, so that every label keeps
// its time to event (data.Label.EventTime), scores the held-out labels once through
// model/scorer with the model's calibration, and evaluates filters of those rows:
//
//   - follow-up 0: every negative kept, whatever its follow-up (the reference);
//   - follow-up F, drop: negatives censored within F (no event, followed less than F) are
//     dropped, which is what data cohort --follow-up F does;
//   - follow-up F, drop-lost: only negatives lost to follow-up (end of record or dataset end)
//     are dropped; those censored by death stay negatives, death being a competing event that
//     ends the risk of a diagnosis.
//
// Keeping the censored negatives as negatives at any F is the follow-up-0 row: the same rows.
// Positives are never dropped. A cohort built from external labels (data cohort --labels with
// --target codes) is used as it is, since it was never filtered by follow-up. Labels whose
// subject is in the model's cohort keep that cohort's split, so no subject the model trained on
// is evaluated.
//
// # Learning curves
//
// Curve answers "which model, at our size?": it trains XGBoost and the BERT classifier through
// the train drivers on nested, class-stratified fractions of the training split's subjects
// (deterministic for a seed: each fraction keeps the first round(f·n) subjects of each class in
// one seeded order), with the same tuning and held-out rows for every fraction (each fit checks
// it scored exactly the cohort's held-out rows), and reports held-out AUROC with bootstrap
// intervals, DeLong's test between the models at each fraction and, on synthetic data, the
// oracle's AUROC (curve.json, curve.svg). Every fraction shares the one tokenizer, counted on the
// full training split, so that a pretrained --init fits every fraction.
package study
