package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image, and who runs it.
const (
	BinaryPath  = "/usr/local/bin/medseq"
	CAPath      = "/etc/ssl/certs/ca-certificates.crt"
	UID         = 65532 // the non-root user, "nonroot", as distroless images number it
	UserName    = "nonroot"
	GRPCPort    = 8081 // KServe's gRPC port for a ServingRuntime container
	MetricsPort = 9090
)

// Spec is what an image is built from.
type Spec struct {
	Binary   string    // a static medseq (CGO_ENABLED=0)
	CAFile   string    // PEM CA certificates (the build machine's bundle)
	Created  time.Time // every timestamp in the image: a fixed one makes the image reproducible
	Version  string    // org.opencontainers.image.version, and the tag
	Revision string    // org.opencontainers.image.revision (the commit)
	Source   string    // org.opencontainers.image.source
	Repo     string    // the repository of the tag in the tarball (medseq-serve)
}

// entry is one file or folder of the layer.
type entry struct {
	path     string // without a leading slash; folders end in /
	mode     int64
	uid, gid int
	body     []byte
}

// ErrNotStatic is returned for a binary that needs a dynamic loader or shared libraries: the
// image has neither.
var ErrNotStatic = errors.New("not a static binary")

// checkBinary refuses what would not run in the image: not an ELF executable for Linux, or
// one that is dynamically linked. It returns the image architecture of the binary.
func checkBinary(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("binary %s: %w: it needs a dynamic loader; build it with CGO_ENABLED=0 (make image does)",
				path, ErrNotStatic)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return "", fmt.Errorf("binary %s: %w: it links %v", path, ErrNotStatic, libs)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("binary %s: ELF type %v is not an executable", path, f.Type)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("binary %s: machine %v: not amd64 or arm64", path, f.Machine)
}

// readCAs reads a PEM bundle and checks that it holds certificates, and only those.
func readCAs(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA certificates %s: block %d is a %s, not a CERTIFICATE", path, n+1, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("CA certificates %s: certificate %d: %w", path, n+1, err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA certificates %s: no PEM certificate", path)
	}
	return b, nil
}

// entries lists the layer: the binary, the CA certificates, /etc/passwd and /etc/group with
// root and the non-root user, that user's home and /tmp, and the folders above them.
func entries(binary, cas []byte) []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n",
		UserName, UID, UID, UserName, UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, UID)
	files := []entry{
		{path: BinaryPath[1:], mode: 0o755, body: binary},
		{path: CAPath[1:], mode: 0o644, body: cas},
		{path: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{path: "etc/group", mode: 0o644, body: []byte(group)},
		{path: "home/" + UserName + "/", mode: 0o700, uid: UID, gid: UID},
		{path: "tmp/", mode: 0o1777},
	}
	seen := map[string]bool{}
	var out []entry
	for _, f := range files {
		for d := path.Dir(strings.TrimSuffix(f.path, "/")); d != "."; d = path.Dir(d) {
			if !seen[d+"/"] {
				seen[d+"/"] = true
				out = append(out, entry{path: d + "/", mode: 0o755})
			}
		}
		out = append(out, f)
		seen[f.path] = true
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// layerTar writes the entries as an uncompressed tar, every timestamp at created, owners by
// number only: the same inputs give the same bytes.
func layerTar(es []entry, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: created, Format: tar.FormatPAX}
		if e.path[len(e.path)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build makes the image: one layer (entries), OCI media types, and a config that runs
// `medseq serve` as the non-root user.
func Build(s Spec) (v1.Image, error) {
	arch, err := checkBinary(s.Binary)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	cas, err := readCAs(s.CAFile)
	if err != nil {
		return nil, err
	}
	raw, err := layerTar(entries(bin, cas), s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
		Created:   v1.Time{Time: s.Created},
		CreatedBy: "medseq internal/imagebuild: " + BinaryPath + ", CA certificates, passwd and group",
		Comment:   "the pure-Go medseq (CGO_ENABLED=0)",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created, cf.Config = arch, "linux", v1.Time{Time: s.Created}, config(s)
	return mutate.ConfigFile(img, cf)
}

// config is the image's run configuration.
func config(s Spec) v1.Config {
	return v1.Config{
		User:       strconv.Itoa(UID) + ":" + strconv.Itoa(UID),
		Entrypoint: []string{BinaryPath, "serve"},
		// The default arguments: one model version mounted at /mnt/models, as KServe's storage
		// initializer lays it out; a ServingRuntime or Deployment gives its own.
		Cmd: []string{"--model-dir", "/mnt/models", "--model-name", "model", "--grpc-port", strconv.Itoa(GRPCPort),
			"--metrics-addr", ":" + strconv.Itoa(MetricsPort)},
		Env:        []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CAPath},
		WorkingDir: "/home/" + UserName,
		ExposedPorts: map[string]struct{}{
			strconv.Itoa(GRPCPort) + "/tcp":    {},
			strconv.Itoa(MetricsPort) + "/tcp": {},
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "medseq-serve",
			"org.opencontainers.image.description": "medseq serve: clinical sequence models over gRPC (medseq.v1, Open Inference Protocol v2, grpc.health.v1)",
			"org.opencontainers.image.version":     s.Version,
			"org.opencontainers.image.revision":    s.Revision,
			"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.source":      s.Source,
		},
	}
}

// Tag is the image's tag in the tarball, REPO:VERSION.
func (s Spec) Tag() (name.Tag, error) {
	tag, err := name.NewTag(s.Repo + ":" + s.Version)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image tag %s:%s: %w", s.Repo, s.Version, err)
	}
	return tag, nil
}

// Write writes img as an image archive, through a temporary file renamed into place so out
// is never half-written. The archive is what `docker save` writes since Docker 25: an OCI
// image layout (oci-layout, index.json, blobs/sha256/) with docker's manifest.json beside it,
// so docker load, podman load, skopeo (oci-archive:), crane push and kind load image-archive
// all read it. Its entries are in a fixed order with fixed times: the same image, the same
// bytes.
func Write(img v1.Image, s Spec, out string) error {
	tag, err := s.Tag()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeArchive(tmp, img, tag, s.Created); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// archiveFile is one entry of the archive: its bytes, or a layer to stream.
type archiveFile struct {
	name  string
	body  []byte
	layer v1.Layer
}

// writeArchive writes the OCI layout and docker's manifest.json of img to w.
func writeArchive(w io.Writer, img v1.Image, tag name.Tag, created time.Time) error {
	files, err := archiveFiles(img, tag)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: created,
			Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeArchiveFile(tw, f, created); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return tw.Close()
}

// archiveFiles lists the archive's files: the blobs (config, layers, manifest), then
// oci-layout, index.json and manifest.json.
func archiveFiles(img v1.Image, tag name.Tag) ([]archiveFile, error) {
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	files := []archiveFile{{name: blob(cfgName), body: cfg}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	docker := tarball.Descriptor{Config: blob(cfgName), RepoTags: []string{tag.String()}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		files = append(files, archiveFile{name: blob(d), layer: l})
		docker.Layers = append(docker.Layers, blob(d))
	}
	man, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return nil, err
	}
	desc.ArtifactType = "" // an image, not an artifact
	desc.Annotations = map[string]string{
		"io.containerd.image.name":          imageName(tag),
		"org.opencontainers.image.ref.name": tag.TagStr(),
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{*desc}})
	if err != nil {
		return nil, err
	}
	dm, err := json.Marshal(tarball.Manifest{docker})
	if err != nil {
		return nil, err
	}
	return append(files, archiveFile{name: blob(desc.Digest), body: man},
		archiveFile{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		archiveFile{name: "index.json", body: index}, archiveFile{name: "manifest.json", body: dm}), nil
}

// imageName is the tag's full name as docker save writes it (docker.io/library/NAME:TAG for
// Docker Hub's names).
func imageName(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

// writeArchiveFile writes one file of the archive, streaming a layer's compressed bytes.
func writeArchiveFile(tw *tar.Writer, f archiveFile, created time.Time) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: created,
		Format: tar.FormatPAX}
	if f.layer == nil {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(f.body)
		return err
	}
	var err error
	if h.Size, err = f.layer.Size(); err != nil {
		return err
	}
	rc, err := f.layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, rc)
	if err == nil && n != h.Size {
		err = fmt.Errorf("layer is %d bytes, its descriptor says %d", n, h.Size)
	}
	return err
}
