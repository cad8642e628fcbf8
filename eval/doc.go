// Package eval judges models: it works on any table of (subject, prediction time, label,
// score, attributes), so it judges medseq's models and anyone else's. It owns metrics with
// confidence intervals, calibration, segment analysis and reports. It does not depend on
// gomlx or on how a score was made.
package eval
