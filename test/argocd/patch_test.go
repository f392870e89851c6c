package argocd

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// The argocd-cm patch holds, under the keys Argo CD looks up for plinth's
// kinds, exactly the scripts tested here.
func TestArgoCDConfigMapPatch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(), "config", "argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatalf("argocd-cm-patch.yaml: %v", err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("the patch is for %s %s %s/%s, want v1 ConfigMap argocd/argocd-cm", cm.APIVersion, cm.Kind, cm.Namespace, cm.Name)
	}

	// Argo CD's key for a kind is resource.customizations.health.<group>_<kind>.
	scripts := map[string]string{
		"BaseImage":   "health-baseimage.lua",
		"ImagePolicy": "health-imagepolicy.lua",
	}
	want := map[string]string{}
	for kind, file := range scripts {
		want["resource.customizations.health."+catalogv1.GroupVersion.Group+"_"+kind] = file
	}
	if got, keys := slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, keys) {
		t.Errorf("the patch sets %q, want %q", got, keys)
	}
	for key, file := range want {
		if line, got, want := firstDifference(cm.Data[key], readScript(t, file)); line > 0 {
			t.Errorf("%s in argocd-cm-patch.yaml differs from %s at line %d: %q, want %q; copy the file into the key, indented by four spaces",
				key, file, line, got, want)
		}
	}
}

// firstDifference returns the first line (from 1) at which two texts
// differ and that line of each, or 0 when they are equal.
func firstDifference(a, b string) (int, string, string) {
	if a == b {
		return 0, "", ""
	}
	la, lb := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return i + 1, x, y
		}
	}
	return 1, a, b
}

// argocdCM is an argocd-cm as an Argo CD installation ships it, with
// settings and a health check of another kind that the patch must keep.
const argocdCM = `apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  url: https://argocd.example.com
  resource.customizations.health.example.com_Widget: |
    return {status = "Healthy"}
`

// checkPatched checks that a patched argocd-cm holds the scripts and kept
// what it had.
func checkPatched(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	if cm.Name != "argocd-cm" || cm.Namespace != "argocd" || cm.Labels["app.kubernetes.io/part-of"] != "argocd" {
		t.Errorf("patched object is %s/%s with labels %v", cm.Namespace, cm.Name, cm.Labels)
	}
	want := map[string]string{
		"url": "https://argocd.example.com",
		"resource.customizations.health.example.com_Widget":             "return {status = \"Healthy\"}\n",
		"resource.customizations.health.catalog.plinth.dev_BaseImage":   readScript(t, "health-baseimage.lua"),
		"resource.customizations.health.catalog.plinth.dev_ImagePolicy": readScript(t, "health-imagepolicy.lua"),
	}
	if !maps.Equal(cm.Data, want) {
		t.Errorf("patched data has keys %q, want %q with the scripts", slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(want)))
	}
}

// `kubectl patch configmap argocd-cm --patch-file ...` sends the file as a
// strategic merge patch, which the API server applies as here.
func TestPatchWithKubectl(t *testing.T) {
	original, err := yaml.YAMLToJSON([]byte(argocdCM))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root(), "config", "argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := strategicpatch.StrategicMergePatch(original, patch, &corev1.ConfigMap{})
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(out, &cm); err != nil {
		t.Fatal(err)
	}
	checkPatched(t, &cm)
}

// The kustomization that installs Argo CD can list the file under patches,
// as the README shows.
func TestPatchWithKustomize(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	b, err := os.ReadFile(filepath.Join(root(), "config", "argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"/argocd/install.yaml":         argocdCM,
		"/argocd/argocd-cm-patch.yaml": string(b),
		"/argocd/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: argocd
resources:
  - install.yaml
patches:
  - path: argocd-cm-patch.yaml
`,
	}
	for name, content := range files {
		if err := fs.WriteFile(name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/argocd")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources()) != 1 {
		t.Fatalf("kustomize rendered %d objects, want the one argocd-cm", len(res.Resources()))
	}
	y, err := res.Resources()[0].AsYAML()
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(y, &cm); err != nil {
		t.Fatal(err)
	}
	checkPatched(t, &cm)
}
