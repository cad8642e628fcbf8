package features

// CSR is a sparse row-major matrix of float32 features: an absent entry is a missing value (as
// XGBoost treats it), which for a count means zero occurrences.
type CSR struct {
	Indptr  []int64
	Indices []uint32
	Data    []float32
	NumCol  int
}

// Rows is the number of rows.
func (x *CSR) Rows() int {
	if len(x.Indptr) == 0 {
		return 0
	}
	return len(x.Indptr) - 1
}

// Row returns the indices and values of row i.
func (x *CSR) Row(i int) ([]uint32, []float32) {
	a, b := x.Indptr[i], x.Indptr[i+1]
	return x.Indices[a:b], x.Data[a:b]
}
