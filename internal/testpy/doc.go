// Package testpy finds Debian's Python for cross-language reference tests (scikit-learn,
// PyTorch, xgboost): the system interpreter, which sees Debian's python3-* packages, not
// whatever python3 comes first on PATH.
package testpy
