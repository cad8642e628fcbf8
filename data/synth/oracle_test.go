package synth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/medseq/medseq/data"
)

// TestLoadOracleBadFiles: an oracle file with a mistyped or missing column is an error that
// names the file and the column, not a panic.
func TestLoadOracleBadFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	if _, err := Generate(context.Background(), Config{Out: dir, Subjects: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOracle(dir); err != nil {
		t.Fatalf("the generated oracle: %v", err)
	}
	field := func(name string, typ arrow.DataType) arrow.Field { return arrow.Field{Name: name, Type: typ} }
	subjectsWith := func(col int, f arrow.Field) *arrow.Schema {
		fields := append([]arrow.Field(nil), oracleSubjectsSch.Fields()...)
		fields[col] = f
		return arrow.NewSchema(fields, nil)
	}
	for _, tc := range []struct {
		name, file string
		schema     *arrow.Schema
		want       string
	}{
		{"sex as a number", OracleSubjectsFile, subjectsWith(2, field("sex", arrow.PrimitiveTypes.Int64)), "sex is int64"},
		{"frailty as text", OracleSubjectsFile, subjectsWith(5, field("frailty", arrow.BinaryTypes.String)),
			"frailty is utf8"},
		{"onset as a number", OracleSubjectsFile, subjectsWith(3, field("onset_time", arrow.PrimitiveTypes.Int64)),
			"onset_time is int64"},
		{"too few subject columns", OracleSubjectsFile,
			arrow.NewSchema(oracleSubjectsSch.Fields()[:4], nil), "want 9 columns, got 4"},
		{"too few hazard columns", OracleHazardFile,
			arrow.NewSchema(oracleHazardSch.Fields()[:2], nil), "want 3 columns, got 2"},
		{"hazard time as a number", OracleHazardFile, arrow.NewSchema([]arrow.Field{
			field("subject_id", arrow.PrimitiveTypes.Int64), field("time", arrow.PrimitiveTypes.Int64),
			field("log_multiplier", arrow.PrimitiveTypes.Float64)}, nil), "want columns subject_id int64, time timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "ds")
			if err := copyOracle(dir, bad); err != nil {
				t.Fatal(err)
			}
			// One row of zero values of the schema's types.
			err := data.WriteTable(filepath.Join(bad, tc.file), tc.schema, func(b *array.RecordBuilder) {
				for _, f := range b.Fields() {
					f.AppendEmptyValue()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = LoadOracle(bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("LoadOracle: %v, want an error naming %s and %q", err, tc.file, tc.want)
			}
		})
	}
}

// copyOracle copies a dataset's oracle files to the oracle folder of dst.
func copyOracle(src, dst string) error {
	for _, f := range []string{OracleModelFile, OracleSubjectsFile, OracleHazardFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			return err
		}
		if err := data.WriteFileAtomic(filepath.Join(dst, f), b); err != nil {
			return err
		}
	}
	return nil
}
