package install

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/plinth-dev/plinth/hack/bundle/bundlegen"
)

// The optional components need CRDs (monitoring.coreos.com,
// cert-manager.io) that the test API server does not have, so these tests
// only render them and check how their objects fit together; they do not
// send them to an API server.

// renderWith renders an overlay of config/default with the given
// components, the way docs/install.md tells users to, in an in-memory copy
// of config/.
func renderWith(t *testing.T, components ...string) []*unstructured.Unstructured {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	src := filepath.Join(root(), "config")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return mem.WriteFile(filepath.Join("/config", rel), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../config/default\ncomponents:\n"
	for _, c := range components {
		k += "  - ../config/" + c + "\n"
	}
	if err := mem.WriteFile("/overlay/kustomization.yaml", []byte(k)); err != nil {
		t.Fatal(err)
	}
	out, err := bundlegen.RenderFS(mem, "/overlay")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func str(t *testing.T, u *unstructured.Unstructured, path ...string) string {
	t.Helper()
	s, _, err := unstructured.NestedString(u.Object, path...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func endpoint(t *testing.T, monitor *unstructured.Unstructured) map[string]any {
	t.Helper()
	eps, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(eps))
	}
	return eps[0].(map[string]any)
}

// TestPrometheusComponent checks that the ServiceMonitor selects the
// metrics Service, scrapes its HTTPS port with the scraper's token, and,
// without cert-manager, skips verification of the operator's self-signed
// certificate.
func TestPrometheusComponent(t *testing.T) {
	objs := renderWith(t, "prometheus")
	svc := typed[corev1.Service](t, find(t, objs, "Service", "plinth-metrics-service"))
	monitor := find(t, objs, "ServiceMonitor", "plinth-controller-manager-metrics-monitor")
	if monitor.GetNamespace() != namespace {
		t.Errorf("ServiceMonitor in namespace %q, want %s", monitor.GetNamespace(), namespace)
	}
	sel, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	if len(sel) == 0 {
		t.Fatal("ServiceMonitor selects nothing")
	}
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %q", k, v, svc.Labels[k])
		}
	}
	ep := endpoint(t, monitor)
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep["port"] && p.Port == 8443 }) {
		t.Errorf("ServiceMonitor scrapes port %v, not the Service's 8443", ep["port"])
	}
	if ep["scheme"] != "https" || ep["path"] != "/metrics" {
		t.Errorf("ServiceMonitor scrapes %v %v, want https /metrics", ep["scheme"], ep["path"])
	}
	if !strings.HasSuffix(ep["bearerTokenFile"].(string), "/serviceaccount/token") {
		t.Errorf("ServiceMonitor sends no service account token: %v", ep["bearerTokenFile"])
	}
	if tls := ep["tlsConfig"].(map[string]any); tls["insecureSkipVerify"] != true {
		t.Errorf("without cert-manager the self-signed certificate cannot be verified; tlsConfig = %v", tls)
	}
}

// TestCertManagerComponent checks that the issued certificate names the
// metrics Service, that the operator is given its Secret through
// --metrics-cert-dir, and that the ServiceMonitor verifies it.
func TestCertManagerComponent(t *testing.T) {
	objs := renderWith(t, "prometheus", "certmanager")
	cert := find(t, objs, "Certificate", "plinth-metrics-certs")
	issuer := find(t, objs, "Issuer", str(t, cert, "spec", "issuerRef", "name"))
	if cert.GetNamespace() != namespace || issuer.GetNamespace() != namespace {
		t.Errorf("Certificate in %q and Issuer in %q, want %s", cert.GetNamespace(), issuer.GetNamespace(), namespace)
	}
	svc := find(t, objs, "Service", "plinth-metrics-service")
	host := svc.GetName() + "." + svc.GetNamespace() + ".svc"
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Contains(dnsNames, host) {
		t.Errorf("Certificate dnsNames %q lack %s", dnsNames, host)
	}
	secret := str(t, cert, "spec", "secretName")

	d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", deployment))
	c := managerContainer(t, d)
	var dir string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--metrics-cert-dir="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatalf("args %q lack --metrics-cert-dir", c.Args)
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if i < 0 {
		t.Fatalf("nothing is mounted at %s", dir)
	}
	vi := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[i].Name })
	if vi < 0 || d.Spec.Template.Spec.Volumes[vi].Secret == nil || d.Spec.Template.Spec.Volumes[vi].Secret.SecretName != secret {
		t.Fatalf("%s is not the certificate's Secret %s", dir, secret)
	}
	keys := map[string]bool{}
	for _, it := range d.Spec.Template.Spec.Volumes[vi].Secret.Items {
		keys[it.Path] = true
	}
	if len(keys) > 0 && (!keys["tls.crt"] || !keys["tls.key"]) {
		t.Errorf("the mounted Secret lacks tls.crt or tls.key: %v", keys)
	}

	tls := endpoint(t, find(t, objs, "ServiceMonitor", "plinth-controller-manager-metrics-monitor"))["tlsConfig"].(map[string]any)
	if tls["insecureSkipVerify"] != false || tls["serverName"] != host {
		t.Errorf("ServiceMonitor does not verify %s: tlsConfig = %v", host, tls)
	}
	ca, _, _ := unstructured.NestedStringMap(tls, "ca", "secret")
	if ca["name"] != secret || ca["key"] != "ca.crt" {
		t.Errorf("ServiceMonitor trusts %v, want ca.crt of %s", ca, secret)
	}

	// Without the ServiceMonitor the component still renders.
	if objs := renderWith(t, "certmanager"); slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "ServiceMonitor" }) {
		t.Error("config/certmanager alone renders a ServiceMonitor")
	}
}
