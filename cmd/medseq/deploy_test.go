package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// deployDir holds the Kubernetes and KServe manifests (deploy/).
const deployDir = "../../deploy"

// newObject is the typed object a manifest of apiVersion and kind decodes into: Kubernetes'
// own API types, and the KServe mirrors of deploy_kserve_test.go.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "serving.kserve.io/v1alpha1 ServingRuntime":
		return &servingRuntime{}, nil
	case "serving.kserve.io/v1beta1 InferenceService":
		return &inferenceService{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: not a kind deploy/ is checked for", apiVersion, kind)
}

// decodeManifest decodes one YAML document strictly: an unknown or misspelt field, or a
// duplicate one, is an error.
func decodeManifest(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		return nil, err
	}
	if err := unmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// unmarshalStrict decodes YAML as the API server decodes a request: into JSON (a duplicate
// key is an error), then into the typed object matching field names case-sensitively, an
// unknown or duplicate field an error. (encoding/json, under sigs.k8s.io/yaml's
// UnmarshalStrict, would take readOnlyRootFileSystem for readOnlyRootFilesystem.)
func unmarshalStrict(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// splitDocuments splits a YAML stream at its "---" lines, dropping empty documents.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
		}
	}
	return out
}

// deployObjects decodes every manifest under deploy/, by file.
func deployObjects(t *testing.T) map[string][]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	out := map[string][]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(deployDir, f)
		for i, doc := range splitDocuments(b) {
			obj, err := decodeManifest(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", rel, i+1, err)
				continue
			}
			out[rel] = append(out[rel], obj)
		}
	}
	return out
}

// objectsOf collects the decoded objects of one type.
func objectsOf[T any](objs map[string][]any) map[string]T {
	out := map[string]T{}
	for file, list := range objs {
		for i, o := range list {
			if v, ok := o.(T); ok {
				out[fmt.Sprintf("%s#%d", file, i+1)] = v
			}
		}
	}
	return out
}

// TestDeployManifestsStrict: a misspelt field in a Kubernetes or a KServe manifest fails to
// decode (the check below would catch it in deploy/).
func TestDeployManifestsStrict(t *testing.T) {
	for file, edit := range map[string][2]string{
		"kubernetes/deployment.yaml":   {"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		"kubernetes/hpa.yaml":          {"averageUtilization:", "averageUtilisation:"},
		"kserve/inferenceservice.yaml": {"storageUri:", "storageURI:"},
		"kserve/servingruntime.yaml":   {"protocolVersions:", "protocolVersion:"},
		"train/job-train-xgboost.yaml": {"backoffLimit: 1", "backoffLimit: 1\n  backoffLimit: 2"},
	} {
		b, err := os.ReadFile(filepath.Join(deployDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(edit[0])) {
			t.Fatalf("%s has no %q to misspell", file, edit[0])
		}
		if _, err := decodeManifest(bytes.Replace(b, []byte(edit[0]), []byte(edit[1]), 1)); err == nil {
			t.Errorf("%s with %q for %q decodes", file, edit[1], edit[0])
		}
	}
}

// TestDeployManifests decodes every manifest under deploy/ strictly into its API type and
// checks what the types cannot: each container is medseq, non-root on a read-only root with
// no capabilities and bounded resources; its arguments parse with medseq's own flags; the
// gRPC port is the one the probes (gRPC) and Services use, and is named; the objects refer
// to each other by the names they have.
func TestDeployManifests(t *testing.T) {
	objs := deployObjects(t)
	deps := objectsOf[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	for name, d := range deps {
		checkPodSpec(t, name, &d.Spec.Template.Spec)
		checkServeContainer(t, name, d.Spec.Template.Spec.Containers[0], "grpc", "")
		checkWorkload(t, objs, name, d)
	}
	srs, isvcs := objectsOf[*servingRuntime](objs), objectsOf[*inferenceService](objs)
	if len(srs) != 1 || len(isvcs) != 1 {
		t.Fatalf("%d ServingRuntimes and %d InferenceServices, want 1 and 1", len(srs), len(isvcs))
	}
	for name, sr := range srs {
		for isvcName, isvc := range isvcs {
			checkKServe(t, name+" and "+isvcName, sr, isvc)
		}
	}
	jobs := objectsOf[*batchv1.Job](objs)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(jobs))
	}
	for name, j := range jobs {
		checkPodSpec(t, name, &j.Spec.Template.Spec)
		checkTrainJob(t, objs, name, j)
	}
}

// checkPodSpec checks a pod's security, resources and volumes.
func checkPodSpec(t *testing.T, where string, ps *corev1.PodSpec) {
	t.Helper()
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: the pod does not set runAsNonRoot", where)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("%s: the pod mounts a service account token it never uses", where)
	}
	for _, c := range ps.Containers {
		checkContainer(t, where, c, ps.Volumes)
	}
}

// checkContainer checks one container: a medseq image, no privilege, a read-only root, no
// capabilities, requests and a memory limit, named ports, mounts of declared volumes.
func checkContainer(t *testing.T, where string, c corev1.Container, volumes []corev1.Volume) {
	t.Helper()
	where += " container " + c.Name
	if !strings.Contains(c.Image, "/medseq") || !strings.Contains(c.Image, ":") {
		t.Errorf("%s: image %q is not a tagged medseq image", where, c.Image)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", where)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem not read-only", where)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: privilege escalation allowed", where)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want all dropped", where, sc.Capabilities)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v: want CPU and memory requests and a memory limit", where, r)
	}
	for _, p := range c.Ports {
		if p.Name == "" {
			t.Errorf("%s: port %d has no name", where, p.ContainerPort)
		}
	}
	for _, m := range c.VolumeMounts {
		if !slices.ContainsFunc(volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("%s: mounts volume %s, which the pod does not declare", where, m.Name)
		}
	}
}

// checkServeContainer checks a `medseq serve` container: its arguments parse with serve's
// flags (name replaces KServe's {{.Name}}), it listens for gRPC on the port named grpcPort and
// serves metrics on the port named metrics, and its probes ask grpc.health.v1 on that port.
func checkServeContainer(t *testing.T, where string, c corev1.Container, grpcPort, name string) {
	t.Helper()
	where += " container " + c.Name
	if !slices.Equal(c.Command, []string{"/usr/local/bin/medseq", "serve"}) || !strings.Contains(c.Image, "medseq-serve:") {
		t.Errorf("%s: command %q image %q: want medseq serve from the serving image", where, c.Command, c.Image)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = strings.ReplaceAll(a, "{{.Name}}", name)
	}
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	o, _, err := serveFlags(e, args)
	if err == nil {
		err = checkServeFlags(o)
	}
	if err != nil {
		t.Fatalf("%s: medseq serve %q: %v", where, args, err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if g := portOf(t, o.Addr); g != ports[grpcPort] {
		t.Errorf("%s: serves gRPC on %s, the port named %s is %d", where, o.Addr, grpcPort, ports[grpcPort])
	}
	if m := portOf(t, o.MetricsAddr); m != ports["metrics"] {
		t.Errorf("%s: serves metrics on %s, the port named metrics is %d", where, o.MetricsAddr, ports["metrics"])
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe,
		"startup": c.StartupProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != ports[grpcPort] || (p.GRPC.Service != nil && *p.GRPC.Service != "") {
			t.Errorf("%s: %s probe %+v: want grpc.health.v1 (the server's overall health) on port %d", where, kind, p,
				ports[grpcPort])
		}
	}
	if name != "" && (o.ModelName != name || o.Models != "/mnt/models") {
		t.Errorf("%s: serves %q from %q, want %q from /mnt/models (single-model mode)", where, o.ModelName, o.Models, name)
	}
}

// portOf is the port of a HOST:PORT listen address.
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("listen address %q: %v %v", addr, err, err2)
	}
	return int32(n)
}

// checkWorkload checks what refers to the Deployment: Services select its pods and target
// its named ports, the HPA scales it, the PDB selects its pods, its claims exist.
func checkWorkload(t *testing.T, objs map[string][]any, where string, d *appsv1.Deployment) {
	t.Helper()
	labels := d.Spec.Template.Labels
	sel, err := metav1.LabelSelectorAsMap(d.Spec.Selector)
	if err != nil || !subset(sel, labels) {
		t.Errorf("%s: selector %v does not select its pods %v", where, d.Spec.Selector, labels)
	}
	c := d.Spec.Template.Spec.Containers[0]
	for name, s := range objectsOf[*corev1.Service](objs) {
		if !subset(s.Spec.Selector, labels) {
			t.Errorf("%s: selector %v does not select %s's pods", name, s.Spec.Selector, d.Name)
		}
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.StrVal }) {
				t.Errorf("%s: port %s targets %q, which the container does not name", name, p.Name, p.TargetPort.String())
			}
		}
	}
	hpas := objectsOf[*autoscalingv2.HorizontalPodAutoscaler](objs)
	for name, h := range hpas {
		if r := h.Spec.ScaleTargetRef; r.Kind != "Deployment" || r.Name != d.Name || r.APIVersion != "apps/v1" {
			t.Errorf("%s: scales %+v, not Deployment %s", name, r, d.Name)
		}
	}
	for name, p := range objectsOf[*policyv1.PodDisruptionBudget](objs) {
		if m, err := metav1.LabelSelectorAsMap(p.Spec.Selector); err != nil || !subset(m, labels) {
			t.Errorf("%s: selector %v does not select %s's pods", name, p.Spec.Selector, d.Name)
		}
	}
	if len(hpas) != 1 || len(objectsOf[*corev1.Service](objs)) != 1 {
		t.Errorf("%d HorizontalPodAutoscalers and %d Services, want one of each", len(hpas), len(objectsOf[*corev1.Service](objs)))
	}
	checkClaims(t, objs, where, d.Spec.Template.Spec.Volumes)
}

// checkClaims checks that every claim a pod mounts is one deploy/ defines.
func checkClaims(t *testing.T, objs map[string][]any, where string, volumes []corev1.Volume) {
	t.Helper()
	claims := map[string]bool{}
	for _, c := range objectsOf[*corev1.PersistentVolumeClaim](objs) {
		claims[c.Name] = true
	}
	for _, v := range volumes {
		if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] {
			t.Errorf("%s: volume %s claims %s, which deploy/ does not define", where, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkKServe checks the ServingRuntime and the InferenceService together: the runtime is
// KServe's single-model gRPC-v2 runtime for the medseq format, with its container named
// kserve-container and its gRPC port h2c; the InferenceService asks for it, the format and
// the protocol, and names a model version's storage.
func checkKServe(t *testing.T, where string, sr *servingRuntime, isvc *inferenceService) {
	t.Helper()
	s := sr.Spec
	if len(s.Containers) != 1 || s.Containers[0].Name != "kserve-container" {
		t.Fatalf("%s: containers %d, the first named %q: KServe wants kserve-container", where, len(s.Containers),
			s.Containers[0].Name)
	}
	c := s.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: the runtime's container does not set runAsNonRoot (a ServingRuntime has no pod securityContext)", where)
	}
	checkContainer(t, where, c, s.Volumes)
	checkServeContainer(t, where, c, "h2c", isvc.Name)
	if !slices.Equal(s.ProtocolVersions, []string{"grpc-v2"}) || s.MultiModel == nil || *s.MultiModel {
		t.Errorf("%s: protocols %v multiModel %v: want grpc-v2, single-model", where, s.ProtocolVersions, s.MultiModel)
	}
	m := isvc.Spec.Predictor.Model
	switch {
	case m == nil:
		t.Fatalf("%s: the InferenceService has no predictor model", where)
	case m.Runtime == nil || *m.Runtime != sr.Name:
		t.Errorf("%s: the InferenceService's runtime is %q, not %s", where, deref(m.Runtime), sr.Name)
	case !slices.ContainsFunc(s.SupportedModelFormats, func(f supportedModelFormat) bool {
		return f.Name == m.ModelFormat.Name && (m.ModelFormat.Version == nil || f.Version != nil && *f.Version == *m.ModelFormat.Version)
	}):
		t.Errorf("%s: model format %+v is not one the runtime supports (%+v)", where, m.ModelFormat, s.SupportedModelFormats)
	case m.ProtocolVersion == nil || !slices.Contains(s.ProtocolVersions, *m.ProtocolVersion):
		t.Errorf("%s: protocol %q is not one the runtime speaks", where, deref(m.ProtocolVersion))
	case m.StorageURI == nil || !strings.Contains(*m.StorageURI, "://"):
		t.Errorf("%s: storageUri %q: want a URI of one model version folder", where, deref(m.StorageURI))
	case m.Resources.Limits.Memory().IsZero():
		t.Errorf("%s: the InferenceService sets no memory limit", where)
	}
}

// checkTrainJob checks the train Job: `medseq train xgboost` whose flags parse, reading
// --meds iceberg:CATALOG/NAMESPACE with a catalog config file mounted from the Secret that
// deploy/ defines, which names that catalog.
func checkTrainJob(t *testing.T, objs map[string][]any, where string, j *batchv1.Job) {
	t.Helper()
	ps := j.Spec.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever && ps.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("%s: restart policy %q", where, ps.RestartPolicy)
	}
	c := ps.Containers[0]
	if !slices.Equal(c.Command, []string{"/usr/local/bin/medseq"}) || len(c.Args) < 2 ||
		!slices.Equal(c.Args[:2], []string{"train", "xgboost"}) {
		t.Fatalf("%s: command %q args %q: want medseq train xgboost", where, c.Command, c.Args)
	}
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	cfg, err := xgboostFlags(e, c.Args[2:])
	if err != nil {
		t.Fatalf("%s: medseq train xgboost %q: %v", where, c.Args[2:], err)
	}
	catalog, ns, ok := strings.Cut(strings.TrimPrefix(cfg.MEDS, "iceberg:"), "/")
	if !strings.HasPrefix(cfg.MEDS, "iceberg:") || !ok || catalog == "" || ns == "" {
		t.Fatalf("%s: --meds %q: want iceberg:CATALOG/NAMESPACE", where, cfg.MEDS)
	}
	var cfgPath string
	for _, ev := range c.Env {
		if ev.Name == "MEDSEQ_ICEBERG_CONFIG" {
			cfgPath = ev.Value
		}
	}
	secret := mountedSecret(t, where, ps, c, cfgPath)
	var catalogs struct {
		Catalogs map[string]map[string]string `json:"catalogs"`
	}
	for name, s := range objectsOf[*corev1.Secret](objs) {
		if s.Name != secret {
			continue
		}
		if err := unmarshalStrict([]byte(s.StringData[filepath.Base(cfgPath)]), &catalogs); err != nil {
			t.Fatalf("%s: %s: %v", name, filepath.Base(cfgPath), err)
		}
	}
	if catalogs.Catalogs[catalog] == nil {
		t.Errorf("%s: --meds names catalog %s; the Secret %s's config has %v", where, catalog, secret, catalogs.Catalogs)
	}
	checkClaims(t, objs, where, ps.Volumes)
}

// mountedSecret is the Secret mounted at the folder of path (the catalog config file).
func mountedSecret(t *testing.T, where string, ps corev1.PodSpec, c corev1.Container, path string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != filepath.Dir(path) {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				if !m.ReadOnly {
					t.Errorf("%s: the Secret %s is mounted writable", where, v.Secret.SecretName)
				}
				return v.Secret.SecretName
			}
		}
	}
	t.Fatalf("%s: $MEDSEQ_ICEBERG_CONFIG %q is not in a mounted Secret", where, path)
	return ""
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}
