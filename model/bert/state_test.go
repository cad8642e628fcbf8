package bert

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEngineStateRoundTrip saves an engine's state after two steps and restores it into a
// fresh engine: weights, moments, step count and best weights come back exactly, and the
// next step of both engines is the same step.
func TestEngineStateRoundTrip(t *testing.T) {
	c := toyConfig(t, true)
	a := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
	defer a.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for range 2 {
		if _, err := a.TrainStep(toyBatch(r, 4, 16), 1e-3); err != nil {
			t.Fatal(err)
		}
	}
	best, err := a.Weights()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		best *Weights
	}{{"with best", best}, {"without best", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files, err := a.SaveState(dir, tc.best)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 3, false: 2}[tc.best != nil]; len(files) != want {
				t.Fatalf("files %v, want %d", files, want)
			}
			b := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
			defer b.Close()
			gotBest, err := b.RestoreState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if (gotBest != nil) != (tc.best != nil) {
				t.Fatalf("best restored %v, saved %v", gotBest != nil, tc.best != nil)
			}
			if gotBest != nil {
				for _, s := range gotBest.Specs {
					if !slices.Equal(gotBest.Data[s.Name], tc.best.Data[s.Name]) {
						t.Fatalf("best %s differs", s.Name)
					}
				}
			}
			if b.Steps() != a.Steps() || b.Steps() < 2 {
				t.Errorf("steps %d, want %d", b.Steps(), a.Steps())
			}
			oa, _ := a.copyAdam()
			ob, _ := b.copyAdam()
			for _, s := range a.specs {
				if !slices.Equal(oa.M[s.Name], ob.M[s.Name]) || !slices.Equal(oa.V[s.Name], ob.V[s.Name]) {
					t.Fatalf("moments of %s differ", s.Name)
				}
			}
			// The same next step from both.
			batch := toyBatch(rand.New(rand.NewPCG(9, 9)), 4, 16)
			var after []*Weights
			for _, e := range []*Engine{a, b} {
				if err := e.SetDropoutSeed(5); err != nil {
					t.Fatal(err)
				}
				if _, err := e.TrainStep(batch, 1e-3); err != nil {
					t.Fatal(err)
				}
				w, err := e.Weights()
				if err != nil {
					t.Fatal(err)
				}
				after = append(after, w)
			}
			for _, s := range a.specs {
				if !slices.Equal(after[0].Data[s.Name], after[1].Data[s.Name]) {
					t.Fatalf("after one more step %s differs", s.Name)
				}
			}
		})
	}
}

// TestRestoreStateRefuses: files of an earlier format, of another model, or damaged are
// errors naming the file, never a misread state.
func TestRestoreStateRefuses(t *testing.T) {
	c := toyConfig(t, false)
	a := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
	defer a.Close()
	saved := t.TempDir()
	if _, err := a.SaveState(saved, nil); err != nil {
		t.Fatal(err)
	}
	copyDir := func(t *testing.T) string {
		dir := t.TempDir()
		for _, f := range []string{StateWeightsFile, StateOptimFile} {
			buf, err := os.ReadFile(filepath.Join(saved, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	t.Run("earlier format", func(t *testing.T) {
		dir := copyDir(t)
		// As checkpoints of earlier builds wrote it: the weights with no format in the metadata.
		w, _ := a.Weights()
		if err := writeStateNoFormat(filepath.Join(dir, StateWeightsFile), w); err != nil {
			t.Fatal(err)
		}
		b := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
		defer b.Close()
		if _, err := b.RestoreState(dir); !errors.Is(err, ErrStateFormat) ||
			!strings.Contains(err.Error(), StateWeightsFile) {
			t.Errorf("earlier format: %v", err)
		}
	})
	t.Run("another model", func(t *testing.T) {
		other := c
		other.AgeEmbeddings = true
		b := newToyEngine(t, other, Heads{Classifier: true}, TaskClassify)
		defer b.Close()
		if _, err := b.RestoreState(copyDir(t)); err == nil || !strings.Contains(err.Error(), "age_embeddings") {
			t.Errorf("another config: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		dir := copyDir(t)
		p := filepath.Join(dir, StateOptimFile)
		buf, _ := os.ReadFile(p)
		if err := os.WriteFile(p, buf[:len(buf)-100], 0o644); err != nil {
			t.Fatal(err)
		}
		b := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
		defer b.Close()
		if _, err := b.RestoreState(dir); err == nil || !strings.Contains(err.Error(), StateOptimFile) {
			t.Errorf("truncated: %v", err)
		}
	})
}

func writeStateNoFormat(path string, w *Weights) error {
	names := make([]string, len(w.Specs))
	ts := map[string]Tensor{}
	for i, s := range w.Specs {
		names[i] = s.Name
		ts[s.Name] = Tensor{DType: "F32", Shape: s.Shape, F32: w.Data[s.Name]}
	}
	return WriteSafetensors(path, names, ts, map[string]string{"producer": "medseq checkpoint"})
}
