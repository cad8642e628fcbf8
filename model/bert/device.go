package bert

// Device selection: CPU (gomlx's pure-Go backend) by default; an NVIDIA GPU through gomlx's
// XLA backend and a CUDA PJRT plugin found on the machine. GPUs are discovered with go-nvml
// (device_nvml.go, which dlopens libnvidia-ml.so.1 at run time: nothing of NVIDIA's is needed
// to build). The XLA backend itself is cgo code that only a build with `-tags xla` includes
// (device_xla.go); the default build answers "gpu" with a clear "rebuild with -tags xla".
// Nothing is ever downloaded: GOMLX_NO_AUTO_INSTALL=1 and the plugin is always chosen here.

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/compute"
)

// GPU is what discovery learned about one NVIDIA GPU.
type GPU struct {
	Index             int    `json:"index"`
	Name              string `json:"name"`
	UUID              string `json:"uuid,omitempty"`
	MemoryBytes       uint64 `json:"memory_bytes"`
	DriverVersion     string `json:"driver_version"`
	CUDADriverVersion string `json:"cuda_driver_version,omitempty"` // e.g. "12.4"
	ComputeMajor      int    `json:"compute_major"`
	ComputeMinor      int    `json:"compute_minor"`
	BFloat16          bool   `json:"bfloat16"` // compute capability >= 8.0 (Ampere and later)
}

// Capability is the CUDA compute capability as "major.minor".
func (g GPU) Capability() string { return fmt.Sprintf("%d.%d", g.ComputeMajor, g.ComputeMinor) }

func (g GPU) String() string {
	return fmt.Sprintf("GPU %d: %s, %.1f GiB, compute capability %s, driver %s", g.Index, g.Name,
		float64(g.MemoryBytes)/(1<<30), g.Capability(), g.DriverVersion)
}

// supportsBF16 is the bfloat16 rule: compute capability 8.0 or later.
func supportsBF16(major, minor int) bool { return major >= 8 }

// ErrNoNVIDIADriver is DiscoverGPUs' answer on a machine without NVIDIA's driver library
// (libnvidia-ml.so.1) or in a build without cgo: not a failure, just "no GPU here".
var ErrNoNVIDIADriver = errors.New("no NVIDIA driver (libnvidia-ml.so.1 not found)")

// DiscoverGPUs lists the NVIDIA GPUs through NVML. Without a driver it returns no GPUs and an
// error that errors.Is ErrNoNVIDIADriver; callers treat that as "CPU only".
func DiscoverGPUs() ([]GPU, error) { return discoverGPUs() }

// Device is the chosen device and the facts behind the choice, for logs and the run manifest.
type Device struct {
	Requested string `json:"requested"`        // the --device flag: cpu, gpu or auto
	Kind      string `json:"kind"`             // cpu or gpu
	Reason    string `json:"reason,omitempty"` // why auto chose this kind, or why no GPU was found
	GPU       *GPU   `json:"gpu,omitempty"`    // the GPU used (the first one)
	GPUs      []GPU  `json:"gpus,omitempty"`   // all GPUs found
	Plugin    string `json:"pjrt_plugin,omitempty"`
	Backend   string `json:"backend"` // the gomlx backend configuration
	DType     string `json:"dtype,omitempty"`
	Attention string `json:"attention,omitempty"` // plain or fused (WithAttention)
}

// SelectDevice resolves --device (cpu, gpu or auto; "" means cpu) and --pjrt-plugin.
// auto takes the GPU when a GPU and a CUDA PJRT plugin are both found, else the CPU with the
// reason logged; gpu without either is an error naming what is missing.
func SelectDevice(flag, pluginFlag string) (Device, error) {
	gpus, gerr := []GPU(nil), error(nil)
	if flag == "gpu" || flag == "auto" {
		gpus, gerr = DiscoverGPUs()
	}
	d, err := selectDevice(flag, pluginFlag, gpus, gerr, FindPJRTPlugin)
	if err == nil && flag == "auto" {
		log.Printf("device auto: %s (%s)", d.Kind, d.Reason)
	}
	return d, err
}

func selectDevice(flag, pluginFlag string, gpus []GPU, gpuErr error,
	find func(string) (string, error)) (Device, error) {
	cpu := Device{Requested: flag, Kind: "cpu", Backend: cpuBackendConfig}
	switch flag {
	case "", "cpu":
		if flag == "" {
			cpu.Requested = "cpu"
		}
		return cpu, nil
	case "gpu", "auto":
	default:
		return Device{}, fmt.Errorf("unknown device %q (cpu, gpu, auto)", flag)
	}
	if len(gpus) == 0 {
		why := "no NVIDIA GPU found"
		if gpuErr != nil {
			why = gpuErr.Error()
		}
		if flag == "gpu" {
			return Device{}, fmt.Errorf("--device gpu: %s (use --device cpu or auto)", why)
		}
		cpu.Reason = why
		return cpu, nil
	}
	plugin, perr := find(pluginFlag)
	if perr != nil {
		if flag == "gpu" || pluginFlag != "" {
			return Device{}, fmt.Errorf("--device %s: %s found, but %w", flag, gpus[0].Name, perr)
		}
		cpu.GPUs, cpu.Reason = gpus, fmt.Sprintf("%s found, but %v", gpus[0].Name, perr)
		return cpu, nil
	}
	g := gpus[0]
	return Device{Requested: flag, Kind: "gpu", Reason: fmt.Sprintf("%s and PJRT plugin %s", g, plugin),
		GPU: &g, GPUs: gpus, Plugin: plugin, Backend: xlaBackendConfig(plugin)}, nil
}

// xlaBackendConfig is gomlx's XLA backend configuration for a plugin path: go-xla accepts an
// absolute plugin path as the plugin name (so no search and no download happens) followed by
// options; memory is allocated on demand rather than preallocated.
func xlaBackendConfig(plugin string) string { return plugin + ",preallocate=false" }

// WithDType is d set to train or score in dtype ("" is float32; "auto" is ResolveDType's
// choice), its Backend the configuration BackendFor opens for that dtype (check the pair with
// ValidateDType first).
func (d Device) WithDType(dtype string) Device {
	d.DType = ResolveDType(dtype, d)
	d.Backend = BackendConfig(d)
	return d
}

// ResolveDType is --dtype with auto resolved for the device: bfloat16 on a GPU of compute
// capability 8.0 or later, float16 (with loss scaling) on one of 7.x, float32 elsewhere (the
// CPU, whose backend has no fast half-precision arithmetic, and older GPUs); "" is float32.
func ResolveDType(dtype string, d Device) string {
	switch {
	case dtype == "":
		return "float32"
	case dtype != "auto":
		return dtype
	case d.Kind == "gpu" && d.GPU != nil && d.GPU.BFloat16:
		return "bfloat16"
	case d.Kind == "gpu" && d.GPU != nil && supportsFP16TensorCores(d.GPU.ComputeMajor):
		return "float16"
	}
	return "float32"
}

// supportsFP16TensorCores is the float16 rule: tensor cores from compute capability 7.0 (V100).
func supportsFP16TensorCores(major int) bool { return major >= 7 }

// WithAttention is d set to an --attention mode: plain, fused, or auto (fused on a GPU in
// bfloat16 or float16, where XLA lowers it to cuDNN's flash attention; plain elsewhere: on the
// CPU and in float32 the fused path would only be gomlx's decomposed graph without dropout).
// Set the dtype first. "" is auto.
func (d Device) WithAttention(mode string) (Device, error) {
	switch mode {
	case AttentionPlain, AttentionFused:
		d.Attention = mode
	case "", AttentionAuto:
		d.Attention = AttentionPlain
		if d.Kind == "gpu" && (d.DType == "bfloat16" || d.DType == "float16") {
			d.Attention = AttentionFused
		}
	default:
		return d, fmt.Errorf("unknown --attention %q (plain, fused, auto)", mode)
	}
	return d, nil
}

// BackendConfig is the backend configuration a device opens for its dtype. On a GPU, float32
// matrix products are exact float32 (go-xla's default on CUDA would be TF32, as JAX's is);
// tf32 asks for the tensor cores' TF32 mode, and so does bfloat16 for the few products it
// keeps in float32 (the classifier's).
func BackendConfig(d Device) string {
	if d.Kind != "gpu" {
		return cpuBackendConfig
	}
	tf32 := d.DType == "tf32" || d.DType == "bfloat16"
	return fmt.Sprintf("%s,tf32=%t", xlaBackendConfig(d.Plugin), tf32)
}

// DTypes are the --dtype values.
var DTypes = []string{"float32", "tf32", "bfloat16", "float16", "auto"}

// ValidateDType checks --dtype against the device: float32 anywhere; tf32 (float32 weights,
// matrix products on TF32 tensor cores) on a GPU of compute capability 8.0 or later; bfloat16 (mixed
// precision: float32 master weights and optimizer state) on a GPU of compute capability 8.0 or
// later; float16 (the same with dynamic loss scaling, for GPUs of compute capability 7.x such
// as the V100, which have float16 tensor cores but no bfloat16) on a GPU of compute capability
// 7.0 or later; bfloat16 and float16 also on the CPU when it was asked for explicitly (--device
// cpu): gomlx's Go backend computes their matrix products with float32 accumulation, correctly
// but slower than float32 (no half-precision arithmetic on the CPU), so it serves to test the
// path, and --device auto falling back to the CPU refuses them rather than run slowly; auto is
// always valid (ResolveDType).
func ValidateDType(dtype string, d Device) error {
	switch dtype {
	case "", "float32", "auto":
		return nil
	case "tf32":
		if d.Kind != "gpu" || d.GPU == nil {
			return fmt.Errorf("--dtype tf32 is the matrix mode of NVIDIA GPUs of compute capability 8.0 or later, "+
				"and --device %s chose the CPU%s: use float32", d.Requested, reasonSuffix(d))
		}
		if !d.GPU.BFloat16 {
			return fmt.Errorf("--dtype tf32: %s has compute capability %s and no TF32 (it needs 8.0 or later): "+
				"use --dtype float32", d.GPU.Name, d.GPU.Capability())
		}
		return nil
	case "bfloat16", "float16":
		return validateHalf(dtype, d)
	}
	return fmt.Errorf("unknown --dtype %q (%s)", dtype, strings.Join(DTypes, ", "))
}

// validateHalf is ValidateDType for bfloat16 and float16.
func validateHalf(dtype string, d Device) error {
	need, ok := "8.0", d.GPU != nil && d.GPU.BFloat16
	if dtype == "float16" {
		need, ok = "7.0", d.GPU != nil && supportsFP16TensorCores(d.GPU.ComputeMajor)
	}
	if d.Kind == "cpu" && (d.Requested == "" || d.Requested == "cpu") {
		return nil
	}
	if d.Kind != "gpu" || d.GPU == nil {
		return fmt.Errorf("--dtype %s needs a GPU of compute capability %s or later, "+
			"and --device %s chose the CPU (%s): use float32 or auto, "+
			"or --device cpu to run %s on the CPU anyway (slower than float32 there)",
			dtype, need, d.Requested, d.Reason, dtype)
	}
	if !ok {
		alt := "float32"
		if dtype == "bfloat16" && supportsFP16TensorCores(d.GPU.ComputeMajor) {
			alt = "float16 (loss scaling) or auto"
		}
		return fmt.Errorf("--dtype %s: %s has compute capability %s (%s needs %s or later): use --dtype %s",
			dtype, d.GPU.Name, d.GPU.Capability(), dtype, need, alt)
	}
	return nil
}

// reasonSuffix is " (reason)" when the device has one.
func reasonSuffix(d Device) string {
	if d.Reason == "" {
		return ""
	}
	return " (" + d.Reason + ")"
}

// BackendFor creates the compute backend of a selected device (BackendConfig: for its dtype).
func BackendFor(d Device) (compute.Backend, error) {
	if d.Kind == "gpu" {
		return xlaBackend(BackendConfig(d))
	}
	return cpuBackend()
}

// deviceBackend is Backend's answer for "gpu" and "auto" (plugin from the search).
func deviceBackend(flag string) (compute.Backend, error) {
	d, err := SelectDevice(flag, "")
	if err != nil {
		return nil, err
	}
	return BackendFor(d)
}

// PluginEnv is the environment variable naming a PJRT plugin file, or directories to search
// (":"-separated), as go-xla reads it.
const PluginEnv = "PJRT_PLUGIN_LIBRARY_PATH"

// FindPJRTPlugin returns the CUDA PJRT plugin to load: explicit (--pjrt-plugin) when given,
// which must exist; else the first found in $PJRT_PLUGIN_LIBRARY_PATH, gomlx's and go-xla's
// install directories (~/.local/lib/go-xla, /usr/local/lib/go-xla, /usr/local/lib/gomlx/pjrt,
// ~/.local/lib/gomlx) and every Python site-packages / dist-packages directory's
// jax_plugins/xla_cuda*/xla_cuda_plugin.so (system, /usr/local, ~/.local, $VIRTUAL_ENV,
// $CONDA_PREFIX, the environments of the python3s on $PATH, pyenv and conda installs).
// Nothing is downloaded.
func FindPJRTPlugin(explicit string) (string, error) {
	home, _ := os.UserHomeDir()
	return pluginSearch{Env: os.Getenv, Home: home}.find(explicit)
}

// pluginSearch is FindPJRTPlugin's search, with its environment, home and file-system root
// injectable for tests.
type pluginSearch struct {
	Env  func(string) string
	Home string
	Root string // prefix of the system's absolute directories ("" is /)
}

// cudaPluginNames are the file names of CUDA PJRT plugins: go-xla's installs and jax's.
var cudaPluginNames = []string{
	"pjrt_c_api_cuda*_plugin.so", "pjrt-plugin-cuda*.so", "pjrt_plugin_cuda*.so", "xla_cuda_plugin.so",
}

func (s pluginSearch) find(explicit string) (string, error) {
	if explicit != "" {
		p, err := filepath.Abs(explicit)
		if err != nil {
			return "", err
		}
		if err := regularFile(p); err != nil {
			return "", fmt.Errorf("--pjrt-plugin %s: %w", explicit, err)
		}
		return p, nil
	}
	dirs := s.dirs()
	for _, d := range dirs {
		if p := s.inDir(d); p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("no CUDA PJRT plugin found (pass --pjrt-plugin PATH, set %s, "+
		"or `pip install jax[cuda12]` for jax_plugins/xla_cuda12/xla_cuda_plugin.so; searched %d places)",
		PluginEnv, len(dirs))
}

func regularFile(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", p)
	}
	return nil
}

// inDir is a CUDA plugin directly in dir, or in dir/jax_plugins/xla_cuda*/.
func (s pluginSearch) inDir(dir string) string {
	for _, pat := range cudaPluginNames {
		if p := firstFile(filepath.Join(dir, pat)); p != "" {
			return p
		}
	}
	return firstFile(filepath.Join(dir, "jax_plugins", "xla_cuda*", "xla_cuda_plugin.so"))
}

// firstFile is the last (highest-versioned, e.g. xla_cuda13 over xla_cuda12) regular file
// matching pattern.
func firstFile(pattern string) string {
	m, _ := filepath.Glob(pattern)
	sort.Strings(m)
	for i := len(m) - 1; i >= 0; i-- {
		if regularFile(m[i]) == nil {
			return m[i]
		}
	}
	return ""
}

// dirs lists the directories to search, in order, without duplicates.
func (s pluginSearch) dirs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sys := func(p string) string { return filepath.Join(s.Root, p) }
	if v := s.Env(PluginEnv); v != "" {
		for _, p := range strings.Split(v, ":") {
			if p == "" {
				continue
			}
			if regularFile(p) == nil { // a file named directly
				add(filepath.Dir(p))
				continue
			}
			add(p)
		}
	}
	if s.Home != "" {
		add(filepath.Join(s.Home, ".local/lib/go-xla"))
		add(filepath.Join(s.Home, ".local/lib/go-xla/nvidia"))
		add(filepath.Join(s.Home, ".local/lib/gomlx/pjrt"))
		add(filepath.Join(s.Home, ".local/lib/gomlx"))
	}
	add(sys("/usr/local/lib/go-xla"))
	add(sys("/usr/local/lib/go-xla/nvidia"))
	add(sys("/usr/local/lib/gomlx/pjrt"))
	add(sys("/usr/local/lib/gomlx"))
	// Python prefixes whose lib/python3*/{site,dist}-packages may hold jax_plugins.
	var prefixes []string
	for _, e := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if v := s.Env(e); v != "" {
			prefixes = append(prefixes, v)
		}
	}
	// The environments of the python3 interpreters on $PATH (a venv's bin/ on PATH without
	// VIRTUAL_ENV set, as in container images that ship one: /opt/torch/.venv/bin).
	for _, d := range filepath.SplitList(s.Env("PATH")) {
		if d != "" && filepath.IsAbs(d) && regularFile(filepath.Join(d, "python3")) == nil {
			prefixes = append(prefixes, filepath.Dir(d))
		}
	}
	pyenv := s.Env("PYENV_ROOT")
	if pyenv == "" && s.Home != "" {
		pyenv = filepath.Join(s.Home, ".pyenv")
	}
	if pyenv != "" {
		m, _ := filepath.Glob(filepath.Join(pyenv, "versions", "*"))
		prefixes = append(prefixes, m...)
	}
	if s.Home != "" {
		prefixes = append(prefixes, filepath.Join(s.Home, ".local"))
		for _, c := range []string{"miniconda3", "anaconda3", "miniforge3", "mambaforge"} {
			prefixes = append(prefixes, filepath.Join(s.Home, c))
			m, _ := filepath.Glob(filepath.Join(s.Home, c, "envs", "*"))
			prefixes = append(prefixes, m...)
		}
	}
	prefixes = append(prefixes, sys("/usr/local"), sys("/usr"), sys("/opt/conda"))
	m, _ := filepath.Glob(sys("/opt/conda/envs/*"))
	prefixes = append(prefixes, m...)
	for _, p := range prefixes {
		for _, kind := range []string{"site-packages", "dist-packages"} {
			m, _ := filepath.Glob(filepath.Join(p, "lib", "python3*", kind))
			sort.Sort(sort.Reverse(sort.StringSlice(m))) // newest Python first
			for _, d := range m {
				add(d)
			}
		}
	}
	add(sys("/usr/lib/python3/dist-packages")) // Debian's
	return out
}
