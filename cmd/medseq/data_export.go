//go:build iceberg

package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/medseq/medseq/data/icebergmeds" // also registers --meds iceberg:CATALOG/NAMESPACE
)

func runDataExport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data export", "--meds DIR --iceberg CATALOG/NAMESPACE [--iceberg-config FILE] [--buckets N]")
	meds := fs.String("meds", "", "MEDS dataset folder to export")
	dest := fs.String("iceberg", "", "Iceberg namespace to write: CATALOG/NAMESPACE (or iceberg:CATALOG/NAMESPACE)")
	cfgPath := fs.String("iceberg-config", "", "catalog config file (default $"+icebergmeds.ConfigEnv+
		", else "+icebergmeds.DefaultConfigFile+" below the user config folder)")
	buckets := fs.Int("buckets", icebergmeds.DefaultBuckets, "N of the events table's bucket(N, subject_id) "+
		"partition, when the export creates it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("meds", *meds, "iceberg", *dest); err != nil {
		return err
	}
	if *buckets < 1 {
		return usagef("--buckets %d: want at least 1", *buckets)
	}
	ref, err := icebergmeds.ParseRef(*dest)
	if err != nil {
		return usagef("--iceberg: %v", err)
	}
	cfg, err := icebergmeds.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	cat, err := cfg.OpenCatalog(ctx, ref.Catalog)
	if err != nil {
		return err
	}
	defer icebergmeds.CloseCatalog(cat)
	res, err := icebergmeds.Export(ctx, *meds, cat, ref, icebergmeds.ExportOptions{Buckets: *buckets, Log: e.log})
	if err != nil {
		return err
	}
	created := "none"
	if len(res.Created) > 0 {
		created = strings.Join(res.Created, ", ")
	}
	fmt.Fprintf(e.stdout, "exported %s to %s: %d subjects, %d rows, %d subject_splits rows, %d codes; "+
		"tables created: %s\nread it with --meds %s\n", *meds, ref, res.Subjects, res.Rows, res.Splits, res.Codes,
		created, ref)
	return nil
}
