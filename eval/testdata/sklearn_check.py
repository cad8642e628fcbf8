"""Reference values from scikit-learn for eval's tests (eval/sklearn_test.go).

Reads a JSON list of cases from argv[1] and writes the results to argv[2]. Each case has
y (0/1), p (probabilities), w (sample weights), q (query points for the isotonic fit).
Run with Debian's /usr/bin/python3 and python3-sklearn.
"""
import json
import sys
import warnings

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (average_precision_score, brier_score_loss, log_loss,
                             roc_auc_score)


def logistic(x, y, w=None):
    try:
        lr = LogisticRegression(penalty=None, solver="newton-cg", tol=1e-12, max_iter=10000)
    except TypeError:
        lr = LogisticRegression(penalty="none", solver="newton-cg", tol=1e-12, max_iter=10000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr.fit(x.reshape(-1, 1), y, sample_weight=w)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        y = np.array(c["y"], dtype=int)
        p = np.array(c["p"], dtype=float)
        w = np.array(c["w"], dtype=float)
        q = np.array(c["q"], dtype=float)
        r = {
            "auroc": roc_auc_score(y, p),
            "auroc_w": roc_auc_score(y, p, sample_weight=w),
            "ap": average_precision_score(y, p),
            "ap_w": average_precision_score(y, p, sample_weight=w),
            "brier": brier_score_loss(y, p),
            "brier_w": brier_score_loss(y, p, sample_weight=w),
            "logloss": log_loss(y, p),
            "logloss_w": log_loss(y, p, sample_weight=w),
        }
        iso = IsotonicRegression(out_of_bounds="clip").fit(p, y)
        r["iso_pred"] = iso.predict(q).tolist()
        iso_w = IsotonicRegression(out_of_bounds="clip").fit(p, y, sample_weight=w)
        r["iso_pred_w"] = iso_w.predict(q).tolist()
        lo, hi = 1 / (len(p) + 2), (len(p) + 1) / (len(p) + 2)
        iso_b = IsotonicRegression(out_of_bounds="clip", y_min=lo, y_max=hi).fit(p, y)
        r["iso_pred_b"] = iso_b.predict(q).tolist()
        r["platt_a"], r["platt_b"] = logistic(p, y)
        r["platt_a_w"], r["platt_b_w"] = logistic(p, y, w)
        eps = 1e-15
        lg = np.log(np.clip(p, eps, 1 - eps) / (1 - np.clip(p, eps, 1 - eps)))
        r["slope"], r["intercept"] = logistic(lg, y)
        for strat in ("uniform", "quantile"):
            pt, pp = calibration_curve(y, p, n_bins=10, strategy=strat)
            r["cal_" + strat] = [pt.tolist(), pp.tolist()]
        out.append(r)
    json.dump({"sklearn": sklearn.__version__, "results": out}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
