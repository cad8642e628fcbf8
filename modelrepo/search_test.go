package modelrepo

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestManifestSearch: a search round-trips through the manifest; a manifest without one has
// no search key.
func TestManifestSearch(t *testing.T) {
	s := &Search{Sampler: "tpe", Seed: 7, Objective: "tuning_auroc",
		Space: map[string]SearchDim{"eta": {Min: 0.005, Max: 0.5, Log: true}, "max_depth": {Min: 2, Max: 10, Int: true}},
		Trials: []SearchTrial{
			{Trial: 0, Params: map[string]float64{"eta": 0.1, "max_depth": 4}, TuningAUROC: 0.71, TrainAUROC: 0.8,
				TuningLogloss: 0.5, BestIteration: 40, Rounds: 91, Seconds: 1.5},
			{Trial: 1, Params: map[string]float64{"eta": 0.02, "max_depth": 3}, TuningAUROC: 0.74, TrainAUROC: 0.77,
				TuningLogloss: 0.49, BestIteration: 300, Rounds: 351, Seconds: 4},
		},
		Best: 1, TrialsFile: SearchTrialsFile}
	for _, tc := range []struct {
		name   string
		search *Search
	}{{"with search", s}, {"without", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := testManifest()
			m.Search = tc.search
			if err := m.Write(dir); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(raw), `"search"`); got != (tc.search != nil) {
				t.Fatalf("search key present %v in %s", got, raw)
			}
			back, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Search, tc.search) {
				t.Fatalf("read back %+v, wrote %+v", back.Search, tc.search)
			}
		})
	}
	if got := SearchTrialsPath("m/1"); got != filepath.Join("m", "1", SearchTrialsFile) {
		t.Fatalf("SearchTrialsPath %q", got)
	}
}
