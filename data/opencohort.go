package data

import "fmt"

// OpenedCohort is a cohort with the dataset it is read against, as every stage after
// `medseq data cohort` opens them.
type OpenedCohort struct {
	Dataset *Dataset
	Cohort  *Cohort
	// MEDSFingerprint is the dataset's content fingerprint, computed once for the check: a
	// stage records it in its own manifest (Manifest.AddInputFingerprint) instead of reading
	// every byte of the dataset a second time.
	MEDSFingerprint string
	// Mismatch is why the dataset is not the one the cohort was built from (it wraps
	// ErrInputMismatch), when OpenCohort was allowed to go on regardless; nil when it is.
	// The caller warns about it.
	Mismatch error
}

// OpenCohort loads the cohort at cohortDir, checks that medsDir is the dataset it was built
// from (the fingerprint its manifest recorded) and opens the dataset. A dataset from another
// run is refused with an error wrapping ErrInputMismatch that names both runs and says how to
// go on regardless (--allow-mismatch); with allowMismatch it is opened, and Mismatch says why
// it should not have been.
func OpenCohort(medsDir, cohortDir string, allowMismatch bool) (*OpenedCohort, error) {
	c, err := LoadCohort(cohortDir)
	if err != nil {
		return nil, err
	}
	ds, err := Open(medsDir)
	if err != nil {
		return nil, err
	}
	fp, err := ds.Fingerprint()
	if err != nil {
		return nil, err
	}
	oc := &OpenedCohort{Cohort: c, Dataset: ds, MEDSFingerprint: fp}
	if err := c.Manifest.CheckInputFingerprint(InputMEDS, medsDir, fp); err != nil {
		if !allowMismatch {
			return nil, fmt.Errorf("%w (or pass --allow-mismatch)", err)
		}
		oc.Mismatch = err
	}
	return oc, nil
}
