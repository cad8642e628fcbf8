// Package memstat reads the process's peak resident memory for benchmarks that report it.
package memstat
