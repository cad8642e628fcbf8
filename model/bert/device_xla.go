//go:build xla && cgo

package bert

// The GPU backend: gomlx's XLA (PJRT) backend from go-xla, which is cgo and dlopens the PJRT
// plugin. Only built with `-tags xla`. The autoinstall package is never imported, and the
// plugin is named by its absolute path, so go-xla neither searches nor downloads anything.

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
)

// XLABuilt says whether this build includes the XLA backend.
const XLABuilt = true

var xlaBackends sync.Map // backend configuration -> compute.Backend

// xlaBackend opens (once per configuration: the plugin path and its options, BackendConfig)
// gomlx's XLA backend.
func xlaBackend(config string) (compute.Backend, error) {
	if b, ok := xlaBackends.Load(config); ok {
		return b.(compute.Backend), nil
	}
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	xla.EnableAutoInstall(false)
	b, err := xla.New(config)
	if err != nil {
		plugin, _, _ := strings.Cut(config, ",")
		return nil, fmt.Errorf("XLA backend with PJRT plugin %s: %w", plugin, err)
	}
	actual, _ := xlaBackends.LoadOrStore(config, compute.Backend(b))
	return actual.(compute.Backend), nil
}
