//go:build xla && cgo

package bert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestXLABackendFakePlugin goes as far as the device boundary without a GPU: the XLA backend
// is built in, takes the plugin by path (no search, no download) and reports a plugin that
// does not load as a clear error.
func TestXLABackendFakePlugin(t *testing.T) {
	if !XLABuilt {
		t.Fatal("XLABuilt is false under -tags xla")
	}
	p := filepath.Join(t.TempDir(), "jax_plugins", "xla_cuda12", "xla_cuda_plugin.so")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := BackendFor(Device{Kind: "gpu", Plugin: p})
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("fake plugin: %v", err)
	}
	t.Logf("fake plugin: %v", err)
	if os.Getenv("GOMLX_NO_AUTO_INSTALL") != "1" {
		t.Fatal("GOMLX_NO_AUTO_INSTALL not set")
	}
}
