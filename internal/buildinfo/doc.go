// Package buildinfo holds what the binary knows about itself: module version, git commit and
// build time, stamped at link time by the Makefile with -ldflags -X, and otherwise read from the
// Go build information embedded in every binary.
package buildinfo
