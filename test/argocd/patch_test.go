package argocd

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
		if got := cm.Data[key]; got != readScript(t, file) {
			t.Errorf("%s in argocd-cm-patch.yaml differs from %s; copy the file into the key, indented by four spaces:\n%s", key, file, got)
		}
	}
}
