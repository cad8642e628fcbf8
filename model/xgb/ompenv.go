//go:build cgo && !noxgboost

package xgb

/*
#include <stdlib.h>

// libgomp (which libxgboost links) reads OMP_WAIT_POLICY once, in its own ELF constructor,
// which runs when the dynamic loader initialises the shared libraries: before any
// __attribute__((constructor)) of the executable and long before Go's init functions. Only
// the executable's .preinit_array runs earlier, so that is where we set it. Without it the
// OpenMP worker threads spin between parallel regions and steal the CPU from everything else
// on a busy machine. A value the user set is kept.
static void medseq_xgb_omp_env(int argc, char **argv, char **envp) {
	(void)argc; (void)argv; (void)envp;
	setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
}
__attribute__((section(".preinit_array"), used))
static void (*medseq_xgb_omp_env_preinit)(int, char **, char **) = medseq_xgb_omp_env;

static const char *medseq_xgb_getenv(const char *k) { return getenv(k); }
*/
import "C"

import (
	"os"
	"unsafe"
)

// glibc's __libc_start_main resets environ to the environment the process started with after
// the preinit hook ran (libgomp has read it by then), and Go's os.Getenv reads that same
// starting environment. So set it again, for everything that reads it later (child processes
// included), unless the user set it.
func init() {
	if _, ok := os.LookupEnv("OMP_WAIT_POLICY"); !ok {
		os.Setenv("OMP_WAIT_POLICY", "PASSIVE")
	}
}

// ompWaitPolicy is OMP_WAIT_POLICY as the C library sees it (Go's os.Getenv reads the
// environment the process started with, which the preinit hook does not change).
func ompWaitPolicy() string {
	k := C.CString("OMP_WAIT_POLICY")
	defer C.free(unsafe.Pointer(k))
	v := C.medseq_xgb_getenv(k)
	if v == nil {
		return ""
	}
	return C.GoString(v)
}
