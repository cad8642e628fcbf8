package bert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func touch(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("\x7fELF fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFindPJRTPluginSearch(t *testing.T) {
	root, home := t.TempDir(), t.TempDir()
	s := pluginSearch{Env: envOf(nil), Home: home, Root: root}
	if p, err := s.find(""); err == nil || !strings.Contains(err.Error(), "no CUDA PJRT plugin found") {
		t.Fatalf("empty tree: got %q, %v", p, err)
	}

	// Debian's dist-packages: jax's CUDA plugin.
	deb := touch(t, filepath.Join(root, "usr/lib/python3/dist-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"))
	if p, err := s.find(""); err != nil || p != deb {
		t.Fatalf("dist-packages: got %q, %v; want %s", p, err, deb)
	}
	// A directory is not a plugin.
	if err := os.MkdirAll(filepath.Join(root,
		"usr/local/lib/python3.11/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.find(""); p != deb {
		t.Fatalf("a directory named like the plugin was taken: %q", p)
	}
	// /usr/local's site-packages comes before /usr's; the newest Python and CUDA first.
	loc := touch(t, filepath.Join(root,
		"usr/local/lib/python3.12/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"))
	touch(t, filepath.Join(root, "usr/local/lib/python3.10/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"))
	if p, _ := s.find(""); p != loc {
		t.Fatalf("/usr/local: got %q, want %s", p, loc)
	}
	loc13 := touch(t, filepath.Join(root,
		"usr/local/lib/python3.12/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so"))
	if p, _ := s.find(""); p != loc13 {
		t.Fatalf("cuda13 over cuda12: got %q, want %s", p, loc13)
	}
	// pyenv and the user's site-packages come before the system's.
	py := touch(t, filepath.Join(home,
		".pyenv/versions/3.11.9/lib/python3.11/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"))
	if p, _ := s.find(""); p != py {
		t.Fatalf("pyenv: got %q, want %s", p, py)
	}
	venv := t.TempDir()
	vp := touch(t, filepath.Join(venv, "lib/python3.12/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"))
	s.Env = envOf(map[string]string{"VIRTUAL_ENV": venv})
	if p, _ := s.find(""); p != vp {
		t.Fatalf("virtualenv: got %q, want %s", p, vp)
	}
	// A venv whose bin/ is on PATH without VIRTUAL_ENV (a container image's Python).
	img := t.TempDir()
	touch(t, filepath.Join(img, "bin/python3"))
	ip := touch(t, filepath.Join(img, "lib/python3.12/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so"))
	s.Env = envOf(map[string]string{"PATH": "relative/bin:" + filepath.Join(img, "bin") + ":/nonexistent/bin"})
	if p, _ := s.find(""); p != ip {
		t.Fatalf("python3 on PATH: got %q, want %s", p, ip)
	}
	s.Env = envOf(map[string]string{"VIRTUAL_ENV": venv})
	// gomlx's own install directories come before Python's.
	gx := touch(t, filepath.Join(root, "usr/local/lib/go-xla/pjrt_c_api_cuda_plugin.so"))
	if p, _ := s.find(""); p != gx {
		t.Fatalf("/usr/local/lib/go-xla: got %q, want %s", p, gx)
	}
	hx := touch(t, filepath.Join(home, ".local/lib/gomlx/pjrt/pjrt_c_api_cuda_plugin.so"))
	if p, _ := s.find(""); p != hx {
		t.Fatalf("~/.local/lib/gomlx/pjrt: got %q, want %s", p, hx)
	}
	// A CPU plugin is not a CUDA plugin.
	cpuDir := t.TempDir()
	touch(t, filepath.Join(cpuDir, "pjrt_c_api_cpu_plugin.so"))
	s.Env = envOf(map[string]string{PluginEnv: cpuDir})
	if p, _ := s.find(""); p != hx {
		t.Fatalf("CPU plugin taken: %q", p)
	}
	// $PJRT_PLUGIN_LIBRARY_PATH comes first: a directory or a file.
	envDir := t.TempDir()
	ep := touch(t, filepath.Join(envDir, "pjrt_c_api_cuda_plugin.so"))
	s.Env = envOf(map[string]string{PluginEnv: cpuDir + ":" + envDir})
	if p, _ := s.find(""); p != ep {
		t.Fatalf("$%s dir: got %q, want %s", PluginEnv, p, ep)
	}
	jp := touch(t, filepath.Join(t.TempDir(), "xla_cuda_plugin.so"))
	s.Env = envOf(map[string]string{PluginEnv: jp})
	if p, _ := s.find(""); p != jp {
		t.Fatalf("$%s file: got %q, want %s", PluginEnv, p, jp)
	}
	// --pjrt-plugin wins, and must exist.
	ex := touch(t, filepath.Join(t.TempDir(), "my.so"))
	if p, err := s.find(ex); err != nil || p != ex {
		t.Fatalf("explicit: got %q, %v", p, err)
	}
	if _, err := s.find(filepath.Join(root, "missing.so")); err == nil ||
		!strings.Contains(err.Error(), "--pjrt-plugin") {
		t.Fatalf("explicit missing plugin: %v", err)
	}
	if _, err := s.find(root); err == nil || !strings.Contains(err.Error(), "not a file") {
		t.Fatalf("explicit directory: %v", err)
	}
}

func TestFindPJRTPluginRealSearchNoDownload(t *testing.T) {
	// On this machine there is usually no CUDA plugin: the search must answer either way, and
	// never download (it only globs).
	p, err := FindPJRTPlugin("")
	t.Logf("FindPJRTPlugin: %q, %v", p, err)
	if err == nil && p == "" {
		t.Fatal("no error and no plugin")
	}
}

var (
	a100 = GPU{Index: 0, Name: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30, DriverVersion: "550.54",
		ComputeMajor: 8, ComputeMinor: 0, BFloat16: true}
	v100 = GPU{Index: 0, Name: "Tesla V100-SXM2-16GB", MemoryBytes: 16 << 30, DriverVersion: "535.1",
		ComputeMajor: 7, ComputeMinor: 0, BFloat16: false}
)

func TestSelectDevice(t *testing.T) {
	found := func(string) (string, error) { return "/x/xla_cuda_plugin.so", nil }
	missing := func(string) (string, error) { return "", errors.New("no CUDA PJRT plugin found") }
	noDriver := ErrNoNVIDIADriver

	for _, flag := range []string{"", "cpu"} {
		d, err := selectDevice(flag, "", []GPU{a100}, nil, found)
		if err != nil || d.Kind != "cpu" || d.Requested != "cpu" || d.Backend != cpuBackendConfig {
			t.Fatalf("%q: %+v, %v", flag, d, err)
		}
	}
	if _, err := selectDevice("tpu", "", nil, nil, found); err == nil ||
		!strings.Contains(err.Error(), "unknown device") {
		t.Fatalf("tpu: %v", err)
	}

	// auto: GPU and plugin -> gpu; else cpu with the reason.
	d, err := selectDevice("auto", "", []GPU{a100}, nil, found)
	if err != nil || d.Kind != "gpu" || d.GPU == nil || d.GPU.Name != a100.Name ||
		d.Plugin != "/x/xla_cuda_plugin.so" || !strings.HasPrefix(d.Backend, "/x/xla_cuda_plugin.so") {
		t.Fatalf("auto with GPU and plugin: %+v, %v", d, err)
	}
	d, err = selectDevice("auto", "", nil, noDriver, found)
	if err != nil || d.Kind != "cpu" || !strings.Contains(d.Reason, "no NVIDIA driver") {
		t.Fatalf("auto without driver: %+v, %v", d, err)
	}
	d, err = selectDevice("auto", "", []GPU{a100}, nil, missing)
	if err != nil || d.Kind != "cpu" || !strings.Contains(d.Reason, "A100") ||
		!strings.Contains(d.Reason, "no CUDA PJRT plugin") {
		t.Fatalf("auto without plugin: %+v, %v", d, err)
	}
	// auto with an explicit plugin that is missing is an error, not a silent CPU run.
	if _, err := selectDevice("auto", "/nope.so", []GPU{a100}, nil, missing); err == nil {
		t.Fatal("auto with a missing --pjrt-plugin: no error")
	}

	// gpu: an error naming what is missing.
	if _, err := selectDevice("gpu", "", nil, noDriver, found); err == nil ||
		!strings.Contains(err.Error(), "no NVIDIA driver") {
		t.Fatalf("gpu without driver: %v", err)
	}
	if _, err := selectDevice("gpu", "", nil, nil, found); err == nil ||
		!strings.Contains(err.Error(), "no NVIDIA GPU") {
		t.Fatalf("gpu without GPUs: %v", err)
	}
	if _, err := selectDevice("gpu", "", []GPU{a100}, nil, missing); err == nil ||
		!strings.Contains(err.Error(), "no CUDA PJRT plugin") {
		t.Fatalf("gpu without plugin: %v", err)
	}
	d, err = selectDevice("gpu", "", []GPU{v100, a100}, nil, found)
	if err != nil || d.Kind != "gpu" || d.GPU.Name != v100.Name || len(d.GPUs) != 2 {
		t.Fatalf("gpu: %+v, %v", d, err)
	}
}

// p100 is a GPU without float16 tensor cores.
var p100 = GPU{Name: "Tesla P100", ComputeMajor: 6, ComputeMinor: 0}

// TestResolveDTypeAndAttention: --dtype auto and --attention auto follow the device.
func TestResolveDTypeAndAttention(t *testing.T) {
	for _, c := range []struct {
		d                 Device
		dtype, want, attn string
	}{
		{Device{Kind: "cpu"}, "auto", "float32", AttentionPlain},
		{Device{Kind: "gpu", GPU: &a100, Plugin: "/p.so"}, "auto", "bfloat16", AttentionFused},
		{Device{Kind: "gpu", GPU: &v100, Plugin: "/p.so"}, "auto", "float16", AttentionFused},
		{Device{Kind: "gpu", GPU: &p100, Plugin: "/p.so"}, "auto", "float32", AttentionPlain},
		{Device{Kind: "gpu", GPU: &a100, Plugin: "/p.so"}, "tf32", "tf32", AttentionPlain},
		{Device{Kind: "cpu"}, "bfloat16", "bfloat16", AttentionPlain},
		{Device{Kind: "cpu"}, "", "float32", AttentionPlain},
	} {
		d := c.d.WithDType(c.dtype)
		if d.DType != c.want {
			t.Errorf("%s %v with --dtype %q: %s, want %s", c.d.Kind, c.d.GPU, c.dtype, d.DType, c.want)
		}
		if wantTF32 := c.want == "bfloat16" || c.want == "tf32"; d.Kind == "gpu" &&
			strings.HasSuffix(d.Backend, "tf32=true") != wantTF32 {
			t.Errorf("%s: backend %q", c.want, d.Backend)
		}
		got, err := d.WithAttention("auto")
		if err != nil || got.Attention != c.attn {
			t.Errorf("%s %s --attention auto: %q, %v; want %s", d.Kind, d.DType, got.Attention, err, c.attn)
		}
		for _, m := range []string{AttentionPlain, AttentionFused} {
			if got, err := d.WithAttention(m); err != nil || got.Attention != m {
				t.Errorf("--attention %s: %q, %v", m, got.Attention, err)
			}
		}
	}
	if _, err := (Device{Kind: "cpu"}).WithAttention("flash"); err == nil ||
		!strings.Contains(err.Error(), "--attention") {
		t.Errorf("--attention flash: %v", err)
	}
}

func TestValidateDType(t *testing.T) {
	cpu := Device{Kind: "cpu"}
	gpuA := Device{Kind: "gpu", GPU: &a100}
	gpuV := Device{Kind: "gpu", GPU: &v100}
	for _, c := range []struct {
		dtype string
		d     Device
		want  string // "" for ok, else a substring of the error
	}{
		{"", cpu, ""}, {"float32", cpu, ""}, {"float32", gpuV, ""}, {"float32", gpuA, ""},
		{"bfloat16", gpuA, ""},
		{"bfloat16", cpu, ""}, // explicit --device cpu: gomlx's Go backend computes bfloat16
		{"bfloat16", Device{Requested: "cpu", Kind: "cpu"}, ""},
		{"bfloat16", Device{Requested: "auto", Kind: "cpu", Reason: "no NVIDIA driver"}, "needs a GPU"},
		{"bfloat16", gpuV, "capability 7.0"},
		{"bfloat16", gpuV, "float16 (loss scaling) or auto"},
		{"float16", gpuV, ""}, {"float16", gpuA, ""}, {"float16", cpu, ""},
		{"float16", Device{Kind: "gpu", GPU: &p100}, "capability 6.0"},
		{"float16", Device{Requested: "auto", Kind: "cpu", Reason: "no NVIDIA driver"},
			"needs a GPU of compute capability 7.0"},
		{"auto", cpu, ""}, {"auto", gpuV, ""}, {"auto", gpuA, ""},
		{"float64", cpu, "unknown --dtype"},
		{"tf32", gpuA, ""},
		{"tf32", gpuV, "capability 7.0"},
		{"tf32", cpu, "chose the CPU"},
		{"tf32", Device{Requested: "auto", Kind: "cpu", Reason: "no NVIDIA driver"}, "no NVIDIA driver"},
	} {
		err := ValidateDType(c.dtype, c.d)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("ValidateDType(%q, %s): %v, want %q", c.dtype, c.d.Kind, err, c.want)
		}
	}
	// The backend configuration follows the dtype: exact float32 on a GPU unless tf32 (or
	// bfloat16, whose float32 gradient products take TF32) is asked for.
	for _, c := range []struct {
		d    Device
		want string
	}{
		{Device{Kind: "cpu", DType: "float32"}, cpuBackendConfig},
		{Device{Kind: "gpu", Plugin: "/p.so", DType: "float32"}, "/p.so,preallocate=false,tf32=false"},
		{Device{Kind: "gpu", Plugin: "/p.so"}, "/p.so,preallocate=false,tf32=false"},
		{Device{Kind: "gpu", Plugin: "/p.so", DType: "tf32"}, "/p.so,preallocate=false,tf32=true"},
		{Device{Kind: "gpu", Plugin: "/p.so", DType: "bfloat16"}, "/p.so,preallocate=false,tf32=true"},
	} {
		if got := BackendConfig(c.d); got != c.want {
			t.Errorf("BackendConfig(%+v) = %q, want %q", c.d, got, c.want)
		}
	}
	if !supportsBF16(8, 0) || !supportsBF16(9, 0) || supportsBF16(7, 5) || supportsBF16(7, 0) {
		t.Fatal("bfloat16 rule: capability >= 8.0")
	}
}

// TestDiscoverGPUsWithoutDriver: on a machine without NVIDIA's driver (as CI's), discovery
// answers "no NVIDIA driver" cleanly, auto falls back to the CPU, and gpu says why it cannot.
func TestDiscoverGPUsWithoutDriver(t *testing.T) {
	gpus, err := DiscoverGPUs()
	if len(gpus) > 0 {
		for _, g := range gpus {
			t.Logf("found %s (bfloat16 %v)", g, g.BFloat16)
		}
		t.Skip("this machine has NVIDIA GPUs")
	}
	if !errors.Is(err, ErrNoNVIDIADriver) {
		t.Fatalf("no GPUs: want ErrNoNVIDIADriver, got %v", err)
	}
	t.Logf("DiscoverGPUs: %v", err)
	d, err := SelectDevice("auto", "")
	if err != nil || d.Kind != "cpu" || d.Reason == "" {
		t.Fatalf("auto: %+v, %v", d, err)
	}
	if _, err := SelectDevice("gpu", ""); err == nil || !strings.Contains(err.Error(), "no NVIDIA driver") {
		t.Fatalf("gpu: %v", err)
	}
	if _, err := Backend("gpu"); err == nil {
		t.Fatal("Backend(gpu) without a GPU: no error")
	}
	if be, err := Backend("auto"); err != nil || be == nil {
		t.Fatalf("Backend(auto) without a GPU: %v", err)
	}
}

// TestGPUBackendWithoutXLA: the default build has no XLA backend and says how to get it.
func TestGPUBackendWithoutXLA(t *testing.T) {
	if XLABuilt {
		t.Skip("built with -tags xla")
	}
	_, err := BackendFor(Device{Kind: "gpu", Plugin: "/x/xla_cuda_plugin.so"})
	if err == nil || !strings.Contains(err.Error(), "rebuild with -tags xla") {
		t.Fatalf("got %v", err)
	}
}
