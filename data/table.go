package data

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// WriteTable writes a small single-batch Parquet table atomically at path, with the same
// writer settings as the dataset's own files: fill appends the rows to the builder.
func WriteTable(path string, schema *arrow.Schema, fill func(*array.RecordBuilder)) error {
	return writeTable(path, schema, fill)
}

// ReadTable reads a whole (small) Parquet file and calls fn with each record batch.
func ReadTable(path string, fn func(rec arrow.RecordBatch) error) error {
	return readSmallTable(path, fn)
}
