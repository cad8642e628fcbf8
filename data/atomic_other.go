//go:build !linux

package data

// renameExchange: only Linux swaps two paths in one step here.
func renameExchange(a, b string) error { return errExchangeUnsupported }
