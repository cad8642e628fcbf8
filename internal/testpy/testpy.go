package testpy

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Python is Debian's interpreter.
const Python = "/usr/bin/python3"

// Env names another interpreter to use instead (the GPU machine's, whose python3 with
// PyTorch and CUDA lives in a virtual environment).
const Env = "MEDSEQ_PYTHON"

// Require returns the interpreter ($MEDSEQ_PYTHON, else Debian's) when it can import every
// module; otherwise the test is skipped, or fails when the CI variable is set (CI must run the
// reference checks), naming the Debian package to install.
func Require(t testing.TB, aptPackage string, modules ...string) string {
	t.Helper()
	python := Python
	if p := os.Getenv(Env); p != "" {
		python = p
	}
	script := "import " + strings.Join(modules, ", ")
	if out, err := exec.Command(python, "-c", script).CombinedOutput(); err != nil {
		msg := python + " cannot import " + strings.Join(modules, ", ") + " (apt-get install -y " + aptPackage + "): " +
			strings.TrimSpace(string(out))
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set: %s", msg)
		}
		t.Skip(msg)
	}
	return python
}
