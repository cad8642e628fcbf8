package main

import (
	"archive/tar"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var created = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// goBuild builds a package with CGO_ENABLED=0 (a static binary) into dir.
func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// staticHello is a small static program that prints its arguments and user id: a stand-in
// for medseq where only the image is under test.
func staticHello(t *testing.T) string {
	dir := t.TempDir()
	src := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(\"hello\", os.Args[1:]) }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "hello", ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hello: %v\n%s", err, b)
	}
	return filepath.Join(dir, "hello")
}

// testCAs writes a PEM bundle of two self-signed CA certificates.
func testCAs(t *testing.T) string {
	var buf bytes.Buffer
	for i := range 2 {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: created, NotAfter: created.Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// layerFile is a file or folder of the layer as read back.
type layerFile struct {
	mode     int64
	uid, gid int
	dir      bool
	body     []byte
}

// readLayer reads the image's one layer, checking every entry's time.
func readLayer(t *testing.T, img v1.Image, created time.Time) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(created) {
			t.Errorf("%s: time %v, want %v", h.Name, h.ModTime, created)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = layerFile{mode: h.Mode, uid: h.Uid, gid: h.Gid, dir: h.Typeflag == tar.TypeDir, body: body}
	}
}

func testSpec(t *testing.T, binary string) Spec {
	return Spec{Binary: binary, CAFile: testCAs(t), Created: created, Version: "v1.2.3", Revision: "abc123",
		Source: "https://example.org/medseq", Repo: "medseq-serve"}
}

// TestImage builds an image around a static program and reads it back as docker load and an
// OCI layout reader would: one layer holding exactly the binary, the CA certificates, passwd,
// group, the user's home and /tmp; a config that runs `serve` as user 65532; and the binary
// taken from the layer runs.
func TestImage(t *testing.T) {
	s := testSpec(t, staticHello(t))
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := run([]string{"--binary", s.Binary, "--ca", s.CAFile, "--out", out, "--version", s.Version,
		"--revision", s.Revision, "--source", s.Source, "--created", created.Format(time.RFC3339)}, io.Discard,
		io.Discard); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatalf("docker's manifest.json: %v", err)
	}
	checkConfig(t, img, s)
	files := readLayer(t, img, s.Created)
	checkFiles(t, files, readFile(t, s.Binary), readFile(t, s.CAFile))
	checkLayout(t, out, s.Version, img)
	bin := filepath.Join(t.TempDir(), "medseq")
	if err := os.WriteFile(bin, files[BinaryPath[1:]].body, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(bin, "serve", "--x").CombinedOutput()
	if err != nil || string(got) != "hello [serve --x]\n" {
		t.Errorf("the layer's binary: %q, %v", got, err)
	}
}

// checkConfig checks the image's media types and run configuration.
func checkConfig(t *testing.T, img v1.Image, s Spec) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Equal(s.Created) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/medseq", "serve"}) {
		t.Errorf("user %q entrypoint %q", c.User, c.Entrypoint)
	}
	if want := []string{"--model-dir", "/mnt/models", "--model-name", "model", "--grpc-port", "8081", "--metrics-addr",
		":9090"}; !slices.Equal(c.Cmd, want) {
		t.Errorf("cmd %q, want %q", c.Cmd, want)
	}
	_, grpc := c.ExposedPorts["8081/tcp"]
	_, metrics := c.ExposedPorts["9090/tcp"]
	if len(c.ExposedPorts) != 2 || !grpc || !metrics {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	for k, v := range map[string]string{"version": s.Version, "revision": s.Revision, "source": s.Source,
		"created": s.Created.Format(time.RFC3339), "title": "medseq-serve"} {
		if got := c.Labels["org.opencontainers.image."+k]; got != v {
			t.Errorf("label %s: %q, want %q", k, got, v)
		}
	}
	if len(cf.History) != 1 || !cf.History[0].Created.Equal(s.Created) {
		t.Errorf("history %+v", cf.History)
	}
}

// checkFiles checks that the layer holds exactly what it should, owned and moded as it should.
func checkFiles(t *testing.T, files map[string]layerFile, bin, cas []byte) {
	t.Helper()
	want := map[string]layerFile{
		"etc/": {mode: 0o755, dir: true}, "etc/ssl/": {mode: 0o755, dir: true}, "etc/ssl/certs/": {mode: 0o755, dir: true},
		"etc/ssl/certs/ca-certificates.crt": {mode: 0o644, body: cas},
		"etc/passwd": {mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		"etc/group": {mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		"home/":     {mode: 0o755, dir: true}, "home/nonroot/": {mode: 0o700, uid: 65532, gid: 65532, dir: true},
		"tmp/": {mode: 0o1777, dir: true},
		"usr/": {mode: 0o755, dir: true}, "usr/local/": {mode: 0o755, dir: true}, "usr/local/bin/": {mode: 0o755, dir: true},
		"usr/local/bin/medseq": {mode: 0o755, body: bin},
	}
	for name, w := range want {
		g, ok := files[name]
		switch {
		case !ok:
			t.Errorf("layer lacks %s", name)
		case g.mode != w.mode || g.uid != w.uid || g.gid != w.gid || g.dir != w.dir || !bytes.Equal(g.body, w.body):
			t.Errorf("%s: mode %o uid %d gid %d dir %v, %d bytes; want %o %d %d %v, %d bytes", name, g.mode, g.uid, g.gid,
				g.dir, len(g.body), w.mode, w.uid, w.gid, w.dir, len(w.body))
		}
	}
	for name := range files {
		if _, ok := want[name]; !ok {
			t.Errorf("layer holds %s, which it should not", name)
		}
	}
}

// checkLayout reads the archive as an OCI image layout: the one image of its index, tagged
// with its version, has OCI media types and the config and layer docker's manifest.json
// names (docker read).
func checkLayout(t *testing.T, archive, version string, docker v1.Image) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"oci-layout", "index.json", "manifest.json"} {
		if !slices.Contains(names, n) {
			t.Errorf("archive lacks %s: %v", n, names)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index: %+v, %v; want one image", im, err)
	}
	d := im.Manifests[0]
	if d.MediaType != types.OCIManifestSchema1 || d.Annotations["org.opencontainers.image.ref.name"] != version ||
		d.Annotations["io.containerd.image.name"] != "docker.io/library/medseq-serve:"+version {
		t.Errorf("index names %s %s %v; want an OCI manifest tagged %s", d.MediaType, d.Digest, d.Annotations, version)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := docker.Manifest()
	if m.Config.MediaType != types.OCIConfigJSON || m.Config.Digest != dm.Config.Digest || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != types.OCILayer || m.Layers[0].Digest != dm.Layers[0].Digest {
		t.Errorf("OCI manifest %+v; docker's %+v", m, dm)
	}
	if got, _ := img.Digest(); got != d.Digest {
		t.Errorf("the manifest blob hashes to %s, the index says %s", got, d.Digest)
	}
	if err := validateLayers(img); err != nil {
		t.Errorf("OCI layout image: %v", err)
	}
}

// validateLayers checks that each layer's bytes hash to its digest and diff id.
func validateLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if d, _ := l.Digest(); h != d {
			return errors.New("a layer's bytes do not hash to its digest")
		}
	}
	return nil
}

// TestReproducible: the same inputs give the same archive, byte for byte; another time gives
// another image.
func TestReproducible(t *testing.T) {
	s := testSpec(t, staticHello(t))
	dir := t.TempDir()
	write := func(name string, s Spec) (string, v1.Hash) {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := Write(img, s, p); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return p, d
	}
	a, da := write("a.tar", s)
	b, db := write("b.tar", s)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if da != db || !bytes.Equal(ba, bb) {
		t.Errorf("two builds differ: %s %s", da, db)
	}
	s.Created = s.Created.Add(time.Second)
	if _, dc := write("c.tar", s); dc == da {
		t.Error("another creation time gives the same image")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("%d files where 3 archives were written: a temporary file was left", len(ents))
	}
}

// TestRefused: what would not run in the image, and bad flags, are refused naming the cause,
// before anything is written.
func TestRefused(t *testing.T) {
	hello := staticHello(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "script")
	os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755)
	key := filepath.Join(dir, "key.pem")
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0o644)
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, nil, 0o644)
	ca := testCAs(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"not ELF", []string{"--binary", text, "--ca", ca}, "bad magic"},
		{"missing", []string{"--binary", filepath.Join(dir, "nope"), "--ca", ca}, "no such file"},
		{"private key as CA", []string{"--binary", hello, "--ca", key}, "not a CERTIFICATE"},
		{"no CA", []string{"--binary", hello, "--ca", empty}, "no PEM certificate"},
		{"bad tag", []string{"--binary", hello, "--ca", ca, "--version", "not a tag"}, "image tag"},
		{"bad time", []string{"--binary", hello, "--ca", ca, "--created", "yesterday"}, "--created"},
		{"argument", []string{"--binary", hello, "--ca", ca, "extra"}, "unexpected argument"},
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if real, err := filepath.EvalSymlinks(sh); err == nil && isDynamic(real) {
			cases = append(cases, struct {
				name string
				args []string
				want string
			}{"dynamic", []string{"--binary", real, "--ca", ca}, "CGO_ENABLED=0"})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image.tar")
			err := run(append(tc.args, "--out", out), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an image was written: %v", err)
			}
		})
	}
}

// isDynamic reports whether an executable has a dynamic loader (the shell usually has).
func isDynamic(path string) bool {
	_, err := checkBinary(path)
	return errors.Is(err, ErrNotStatic)
}

// TestImageRunsMedseq builds the real serving binary (CGO_ENABLED=0; MEDSEQ_STATIC_BINARY
// names one already built) into an image and runs the binary taken from its layer: it is
// the pure-Go static build, and `serve` in single-model mode starts and refuses a folder
// without a model. scripts/image-check.sh serves models with it.
func TestImageRunsMedseq(t *testing.T) {
	if testing.Short() {
		t.Skip("builds medseq without cgo")
	}
	bin := os.Getenv("MEDSEQ_STATIC_BINARY")
	if bin == "" {
		bin = goBuild(t, t.TempDir(), "github.com/medseq/medseq/cmd/medseq")
	}
	s := testSpec(t, bin)
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	files := readLayer(t, img, s.Created)
	checkFiles(t, files, readFile(t, s.Binary), readFile(t, s.CAFile))
	checkServingBinary(t, files[BinaryPath[1:]].body)
}

// TestBuiltImage validates the image `make image` wrote (MEDSEQ_IMAGE, built from
// MEDSEQ_STATIC_BINARY): read as docker load and an OCI layout reader would, one layer with
// exactly the static medseq, the build machine's CA certificates, passwd and group; a config
// that runs `medseq serve` as 65532; and the binary from the layer is the serving build.
func TestBuiltImage(t *testing.T) {
	archive := os.Getenv("MEDSEQ_IMAGE")
	if archive == "" {
		t.Skip("MEDSEQ_IMAGE names no image (make image sets it)")
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := cf.Config.Labels
	checkConfig(t, img, Spec{Version: l["org.opencontainers.image.version"], Revision: l["org.opencontainers.image.revision"],
		Source: l["org.opencontainers.image.source"], Created: cf.Created.Time})
	if l["org.opencontainers.image.version"] == "" || l["org.opencontainers.image.revision"] == "" {
		t.Errorf("labels %v: no version or revision", l)
	}
	files := readLayer(t, img, cf.Created.Time)
	bin := files[BinaryPath[1:]].body
	if p := os.Getenv("MEDSEQ_STATIC_BINARY"); p != "" {
		bin = readFile(t, p)
	}
	checkFiles(t, files, bin, files[CAPath[1:]].body)
	if _, err := readCAs(writeTemp(t, files[CAPath[1:]].body)); err != nil {
		t.Error(err)
	}
	checkLayout(t, archive, l["org.opencontainers.image.version"], img)
	checkServingBinary(t, files[BinaryPath[1:]].body)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkServingBinary runs a medseq taken from an image layer: it is the pure-Go static build,
// and `serve` in single-model mode starts and refuses a folder without a model.
func checkServingBinary(t *testing.T, bin []byte) {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "medseq")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version", "--json").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	var v struct {
		Build struct {
			Kind    string `json:"kind"`
			Static  bool   `json:"static"`
			XGBoost bool   `json:"train_xgboost"`
		} `json:"build"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Build.Kind != "pure-go" || !v.Build.Static || v.Build.XGBoost {
		t.Errorf("version --json: %+v, %v\n%s", v.Build, err, out)
	}
	empty := t.TempDir()
	msg, err := exec.Command(exe, "serve", "--model-dir", empty, "--model-name", "m", "--addr", "127.0.0.1:0",
		"--metrics-addr", "").CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "no manifest.json") {
		t.Errorf("serve on a folder without a model: %v\n%s", err, msg)
	}
}
