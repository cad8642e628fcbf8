//go:build !cgo || noxgboost

package xgb

import "context"

// Available reports whether this build links libxgboost (false with -tags noxgboost or
// without cgo).
const Available = false

// LibraryVersion is the version of the libxgboost this process loaded: none in this build.
func LibraryVersion() string { return "" }

// Booster is a trained XGBoost model; in this build there is none.
type Booster struct{ best int }

func Train(ctx context.Context, p Params, train *CSR, trainY []float32, tune *CSR, tuneY []float32,
	onRound func(RoundLog)) (*Booster, []RoundLog, error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	return nil, nil, ErrUnavailable
}
func LoadBooster(path string) (*Booster, error)          { return nil, ErrUnavailable }
func (b *Booster) Close() error                          { return nil }
func (b *Booster) BestIteration() int                    { return b.best }
func (b *Booster) NumFeatures() int                      { return 0 }
func (b *Booster) Predict(x *CSR) ([]float32, error)     { return nil, ErrUnavailable }
func (b *Booster) SaveJSON(path string) error            { return ErrUnavailable }
func (b *Booster) SaveLegacyBinary(path string) error    { return ErrUnavailable }
func (b *Booster) FeatureGain() (map[int]float64, error) { return nil, ErrUnavailable }
func ompWaitPolicy() string                              { return "" }
