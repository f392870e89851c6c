package install

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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
// operator's service account, and the other roles (for Prometheus and for
// people) are not bound by the installation; the one for Prometheus only
// reads /metrics.
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
			if n := o.GetName(); n != "plinth-manager-role" && n != "plinth-metrics-reader" && !slices.Contains(catalogRoles, n) {
				t.Errorf("unexpected %s %s: every permission comes from the markers", o.GetKind(), n)
			}
		case "RoleBinding", "ClusterRoleBinding":
			bindings++
			// The ClusterRole, and the Role of the self-managed webhook
			// certificates' Secret in plinth's namespace.
			b := typed[rbacv1.ClusterRoleBinding](t, o)
			if b.RoleRef.Kind != strings.TrimSuffix(o.GetKind(), "Binding") || b.RoleRef.Name != "plinth-manager-role" {
				t.Errorf("%s %s grants %s %s; only plinth-manager-role is bound", o.GetKind(), o.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
			}
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}}
			if !reflect.DeepEqual(b.Subjects, want) {
				t.Errorf("%s %s subjects = %+v, want %+v", o.GetKind(), o.GetName(), b.Subjects, want)
			}
		}
	}
	if bindings != 2 {
		t.Errorf("%d bindings rendered, want 2", bindings)
	}
}

// The ClusterRoles for people that config/default installs, by their
// installed names (config/default prefixes every name with plinth-).
const (
	viewerRole      = "plinth-catalog-viewer"
	editorRole      = "plinth-baseimage-editor"
	policyAdminRole = "plinth-policy-admin"
)

var catalogRoles = []string{viewerRole, editorRole, policyAdminRole}

// Labels by which Kubernetes' clusterrole-aggregation controller adds a
// role's rules to the built-in view, edit and admin roles.
const (
	aggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
	aggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
)

// TestCatalogRolesAggregation checks where each catalog role is aggregated:
// the viewer into view (and, as Kubernetes' own read rules are, into edit
// and admin), the BaseImage editor into edit and admin, and the policy
// admin nowhere, so that only an explicit binding grants it. It also checks
// that no catalog role may write a status, which only plinth writes.
func TestCatalogRolesAggregation(t *testing.T) {
	objs := render(t, "config/default")
	want := map[string][]string{
		viewerRole:      {aggregateToAdmin, aggregateToEdit, aggregateToView},
		editorRole:      {aggregateToAdmin, aggregateToEdit},
		policyAdminRole: nil,
	}
	for _, name := range catalogRoles {
		role := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", name))
		var got []string
		for k, v := range role.Labels {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
				if v != "true" {
					t.Errorf("%s: label %s=%q, want \"true\"", name, k, v)
				}
				got = append(got, k)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want[name]) {
			t.Errorf("%s is aggregated by %q, want %q", name, got, want[name])
		}
		if role.AggregationRule != nil {
			t.Errorf("%s has an aggregation rule; its rules are its own", name)
		}
		for _, r := range role.Rules {
			if !slices.Equal(r.APIGroups, []string{"catalog.plinth.dev"}) {
				t.Errorf("%s grants API groups %q, want only catalog.plinth.dev", name, r.APIGroups)
			}
			for _, res := range r.Resources {
				if strings.HasSuffix(res, "/status") && !slices.Equal(r.Verbs, []string{"get"}) {
					t.Errorf("%s grants %q on %s; status is read-only for people", name, r.Verbs, res)
				}
			}
			if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
				t.Errorf("%s grants a wildcard: %+v", name, r)
			}
		}
	}
}
