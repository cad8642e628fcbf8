//go:build !(xla && cgo)

package bert

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
)

// XLABuilt says whether this build includes the XLA backend.
const XLABuilt = false

// ErrNoXLA is the answer of a build without the XLA backend to a GPU request.
var ErrNoXLA = fmt.Errorf("built without XLA support: rebuild with -tags xla (and cgo) to use the GPU")

func xlaBackend(config string) (compute.Backend, error) {
	plugin, _, _ := strings.Cut(config, ",")
	return nil, fmt.Errorf("PJRT plugin %s: %w", plugin, ErrNoXLA)
}
