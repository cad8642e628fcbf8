"""Reference values from scikit-learn for eval's decision-curve tests (eval/decision_test.go).

Reads a JSON list of cases from argv[1] and writes the results to argv[2]. Each case has y
(0/1), p (probabilities), t (threshold probabilities) and s (target sensitivities). Net benefit
is computed from scikit-learn's confusion_matrix at each threshold (positive when p >= t);
PPV and specificity at a target sensitivity from precision_recall_curve and roc_curve at the
highest threshold whose recall reaches the target. Run with Debian's /usr/bin/python3 and
python3-sklearn.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve


def net_benefit(y, p, t):
    tn, fp, fn, tp = confusion_matrix(y, (p >= t).astype(int), labels=[0, 1]).ravel()
    n = len(y)
    return tp / n - fp / n * t / (1 - t), int(tp), int(fp)


def at_sensitivity(y, p, target):
    precision, recall, thresholds = precision_recall_curve(y, p)
    ok = [i for i in range(len(thresholds)) if recall[i] >= target - 1e-12]
    i = max(ok, key=lambda k: thresholds[k])
    thr = thresholds[i]
    fpr, tpr, rthr = roc_curve(y, p, drop_intermediate=False)
    j = int(np.where(rthr == thr)[0][0])
    return {"threshold": float(thr), "sensitivity": float(recall[i]), "ppv": float(precision[i]),
            "specificity": float(1 - fpr[j])}


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        y = np.array(c["y"], dtype=int)
        p = np.array(c["p"], dtype=float)
        prev = y.mean()
        nb, tps, fps, treat_all = [], [], [], []
        for t in c["t"]:
            v, tp, fp = net_benefit(y, p, t)
            nb.append(v)
            tps.append(tp)
            fps.append(fp)
            treat_all.append(prev - (1 - prev) * t / (1 - t))
        out.append({"net_benefit": nb, "tp": tps, "fp": fps, "treat_all": treat_all,
                    "at_sensitivity": [at_sensitivity(y, p, s) for s in c["s"]]})
    json.dump({"sklearn": sklearn.__version__, "results": out}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
