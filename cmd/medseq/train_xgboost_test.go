package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/medseq/medseq/model/xgb"
)

// TestXGBoostSearchFlags: --search takes its trial count, sampler and seed; a searched
// parameter given as a flag too, stopping on logloss or never stopping is a usage error that
// says what to drop, before any input is read.
func TestXGBoostSearchFlags(t *testing.T) {
	base := []string{"train", "xgboost", "--meds", "m", "--cohort", "c", "--tokenizer", "t", "--out", "o"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"negative", []string{"--search", "-1"}, "flag --search: trials must be >= 0, got -1"},
		{"eta too", []string{"--search", "5", "--eta", "0.1"}, "drop --eta"},
		{"two searched", []string{"--search", "5", "--max-depth", "3", "--lambda", "2"}, "drop --lambda, --max-depth"},
		{"logloss", []string{"--search", "5", "--eval-metric", "logloss"}, "drop --eval-metric logloss"},
		{"no early stopping", []string{"--search", "5", "--early-stopping", "0"}, "--early-stopping must be >= 1"},
		{"sampler", []string{"--search", "5", "--search-sampler", "grid"}, `sampler must be "tpe" or "random", got "grid"`},
		{"negative lambda", []string{"--lambda", "-1"}, "lambda must be >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, append(append([]string(nil), base...), tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %s; want exit 2 and %q", code, stderr, tc.want)
			}
		})
	}
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, stdin: strings.NewReader("")}
	for _, tc := range []struct {
		name string
		args []string
		want xgb.SearchConfig
	}{
		{"off", nil, xgb.SearchConfig{Trials: 0, Seed: 1, Sampler: xgb.SamplerTPE, Space: xgb.DefaultSpace()}},
		{"tpe", []string{"--search", "40", "--eval-metric", "auc", "--rounds", "300"},
			xgb.SearchConfig{Trials: 40, Seed: 1, Sampler: xgb.SamplerTPE, Space: xgb.DefaultSpace()}},
		{"random", []string{"--search", "8", "--search-sampler", "random", "--search-seed", "9"},
			xgb.SearchConfig{Trials: 8, Seed: 9, Sampler: xgb.SamplerRandom, Space: xgb.DefaultSpace()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := xgboostFlags(e, append(append([]string(nil), base[2:]...), tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Search != tc.want {
				t.Fatalf("search %+v, want %+v", cfg.Search, tc.want)
			}
		})
	}
}
