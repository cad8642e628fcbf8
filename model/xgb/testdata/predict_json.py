#!/usr/bin/python3
"""Loads an XGBoost model.json with Python's xgboost and predicts a CSR matrix.

Usage: predict_json.py MODEL_JSON DATA_DIR OUT

DATA_DIR holds indptr.i64, indices.u4, data.f4 (raw little-endian arrays) and shape.txt
("rows cols"). OUT receives the probabilities as raw little-endian float32. Exit status 3
means xgboost, numpy or scipy is missing (the Go test skips then, unless CI is set).
"""
import os
import sys

try:
    import numpy as np
    import scipy.sparse as sp
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print(f"missing python package: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    model, d, out = sys.argv[1:4]
    with open(os.path.join(d, "shape.txt")) as f:
        rows, cols = (int(v) for v in f.read().split())
    indptr = np.fromfile(os.path.join(d, "indptr.i64"), dtype="<i8")
    indices = np.fromfile(os.path.join(d, "indices.u4"), dtype="<u4")
    data = np.fromfile(os.path.join(d, "data.f4"), dtype="<f4")
    x = sp.csr_matrix((data, indices, indptr), shape=(rows, cols))
    bst = xgb.Booster(model_file=model)
    # Absent entries of a scipy CSR matrix are missing values for XGBoost.
    pred = bst.predict(xgb.DMatrix(x, missing=np.nan))
    np.asarray(pred, dtype="<f4").tofile(out)
    print(f"xgboost {xgb.__version__}: {len(pred)} predictions, {bst.num_boosted_rounds()} rounds")


if __name__ == "__main__":
    main()
