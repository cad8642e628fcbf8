// Package data owns everything medseq knows about patient records before a model sees them:
// reading and writing MEDS v0.4 datasets (Parquet through arrow-go's pqarrow), importing CSV
// extracts, the synthetic EHR generator's output layout, cohort and label building, temporal
// censoring, subject-level stratified splits, run manifests and atomic writes.
//
// Times are int64 microseconds since the Unix epoch (MEDS stores timestamp[us] without a time
// zone); StaticTime marks a static row (a null time in MEDS). Codes are interned into a Codes
// table per dataset, so an Event is 16 bytes and sequences are cheap to slice.
//
// Censoring lives here, in one place (Censor and Cohort.Sequences): every later stage —
// vocabulary counts, features, model inputs — sees a subject only through it. The one
// exception is deliberate and by split: Records (records.go) streams the whole records of the
// training (or tuning) subjects, for pretraining and a vocabulary counted on records, and
// never a held-out subject's (RecordSplits decides, the cohort first).
//
// Every label also carries its time to event (Label.EventTime, EventObserved, CensorReason):
// the first target code at or after its prediction time, or its censoring at the end of
// observation by death, at the dataset's end (administrative: within the cohort's censor
// window of it) or at an earlier end of record. censor.go defines them.
//
// A dataset is a folder of Parquet shards or, through a Source registered for its reference's
// scheme (source.go), tables elsewhere: package data/icebergmeds registers iceberg:CATALOG/NS.
// Every reader (Open, ReadShard, SubjectSplits, CodeMetadata, Fingerprint) takes either.
//
// The package knows nothing about models.
package data
