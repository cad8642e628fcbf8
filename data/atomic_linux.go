package data

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameExchange swaps the paths a and b in one step (renameat2 RENAME_EXCHANGE). It answers
// errExchangeUnsupported where the kernel or the file system cannot (old kernels, NFS, some
// FUSE and overlay file systems).
func renameExchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.ENOTSUP) {
		return errExchangeUnsupported
	}
	return err
}
