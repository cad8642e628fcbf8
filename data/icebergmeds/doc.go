// Package icebergmeds keeps MEDS datasets in Apache Iceberg tables: an Iceberg namespace
// holding an events table with the MEDS columns (subject_id, time, code, numeric_value),
// bucketed by subject_id, and the subject_splits and codes tables. Importing the package
// registers the dataset reference iceberg:CATALOG/NAMESPACE with data.Open, so every command
// that takes --meds reads such a dataset as it reads a folder; Export writes a MEDS folder into
// such tables.
//
// Catalogs are configured by name (config.go): a REST catalog such as Apache Polaris (OAuth2
// client credentials, storage credentials vended per table) or a SQL catalog on SQLite for
// local use. Reading goes through github.com/apache/iceberg-go: scans pinned to the snapshot
// read when the dataset was opened, projected to the MEDS columns and streamed as Arrow record
// batches, one shard at a time. A shard is a bucket of the subject_id partition (every event of
// a subject lands in one bucket), or, for a table not bucketed by subject_id, a group of data
// files whose subject_id ranges overlap (see shards.go); a group beyond a bound is refused.
//
// The package links iceberg-go's clients for S3, GCS and Azure storage and the SQLite driver:
// medseq links it only when built with -tags iceberg (make build does).
package icebergmeds
