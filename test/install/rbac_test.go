package install

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// generatedRole reads config/rbac/role.yaml, which controller-gen writes
// from the +kubebuilder:rbac markers.
func generatedRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return &r
}

// TestRBACIsWhatTheMarkersGenerate checks that the installed permissions are
// exactly those of the markers: the operator's ClusterRole has the rules of
// the generated role and nothing else, the only binding grants it to the
// operator's service account, and the one other role (for Prometheus) is
// not bound by the installation and only reads /metrics.
func TestRBACIsWhatTheMarkersGenerate(t *testing.T) {
	objs := render(t, "config/default")
	manager := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "plinth-manager-role"))
	if want := generatedRole(t).Rules; !reflect.DeepEqual(manager.Rules, want) {
		t.Errorf("plinth-manager-role rules differ from config/rbac/role.yaml:\n got %+v\nwant %+v", manager.Rules, want)
	}

	reader := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "plinth-metrics-reader"))
	wantReader := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(reader.Rules, wantReader) {
		t.Errorf("plinth-metrics-reader rules = %+v, want %+v", reader.Rules, wantReader)
	}

	sa := deploymentOf(t, objs).Spec.Template.Spec.ServiceAccountName
	var bindings int
	for _, o := range objs {
		switch o.GetKind() {
		case "Role", "ClusterRole":
			if n := o.GetName(); n != "plinth-manager-role" && n != "plinth-metrics-reader" {
				t.Errorf("unexpected %s %s: every permission comes from the markers", o.GetKind(), n)
			}
		case "RoleBinding", "ClusterRoleBinding":
			bindings++
			b := typed[rbacv1.ClusterRoleBinding](t, o)
			if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != "plinth-manager-role" {
				t.Errorf("%s %s grants %s %s; only plinth-manager-role is bound", o.GetKind(), o.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
			}
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
			if !reflect.DeepEqual(b.Subjects, want) {
				t.Errorf("%s %s subjects = %+v, want %+v", o.GetKind(), o.GetName(), b.Subjects, want)
			}
		}
	}
	if bindings != 1 {
		t.Errorf("%d bindings rendered, want 1", bindings)
	}
}
