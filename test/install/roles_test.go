package install

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/test/testenv"
)

// aggregate fills the rules of the aggregated ClusterRole name (Kubernetes'
// view, edit or admin, which the API server creates with an aggregation rule
// and no rules) the way kube-controller-manager's clusterrole-aggregation
// controller does: the union, in the order of the roles' names, of the rules
// of every other ClusterRole that one of its selectors matches, each rule
// once. envtest runs no controller manager, so this stands in for that
// controller; the selectors are the API server's own.
func aggregate(t *testing.T, ctx context.Context, c client.Client, name string) {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &role); err != nil {
		t.Fatal(err)
	}
	if role.AggregationRule == nil || len(role.AggregationRule.ClusterRoleSelectors) == 0 {
		t.Fatalf("ClusterRole %s has no aggregation rule", name)
	}
	var rules []rbacv1.PolicyRule
	for _, s := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&s)
		if err != nil {
			t.Fatal(err)
		}
		var matched rbacv1.ClusterRoleList
		if err := c.List(ctx, &matched, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(matched.Items, func(a, b rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
		for _, m := range matched.Items {
			if m.Name == name {
				continue
			}
			for _, r := range m.Rules {
				if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(have, r) }) {
					rules = append(rules, r)
				}
			}
		}
	}
	role.Rules = rules
	if err := c.Update(ctx, &role); err != nil {
		t.Fatal(err)
	}
}

// apply creates obj, or replaces the stored one's content with it.
func apply(t *testing.T, ctx context.Context, c client.Client, obj client.Object) {
	t.Helper()
	err := c.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		cur := obj.DeepCopyObject().(client.Object)
		if err = c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err == nil {
			obj.SetResourceVersion(cur.GetResourceVersion())
			err = c.Update(ctx, obj)
		}
	}
	if err != nil {
		t.Fatalf("%T %s: %v", obj, obj.GetName(), err)
	}
}

// access is one question to the API server's authorizer: may user do verb
// on a catalog resource (with subresource, if any) in the test namespace?
type access struct {
	user, verb, resource, subresource string
	allowed                           bool
}

func (a access) String() string {
	res := a.resource
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	return fmt.Sprintf("%s %s %s", a.user, a.verb, res)
}

func (a access) review(ctx context.Context, c client.Client, namespace string) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: a.user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace:   namespace,
			Verb:        a.verb,
			Group:       "catalog.plinth.dev",
			Version:     "v1alpha1",
			Resource:    a.resource,
			Subresource: a.subresource,
		},
	}}
	if err := c.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// TestCatalogRolesAuthorize installs the catalog roles of config/default in
// a real API server (RBAC authorization), binds users to them and to
// Kubernetes' view, edit and admin roles, and asks the API server's
// authorizer (SubjectAccessReview) what each user may do: view and the
// viewer read the catalog, edit, admin and the BaseImage editor also change
// BaseImages, and only the policy admin changes ImagePolicies.
func TestCatalogRolesAuthorize(t *testing.T) {
	objs := render(t, "config/default")
	e := controlPlane(t)
	c, _ := newClient(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, name := range catalogRoles {
		u := find(t, objs, "ClusterRole", name).DeepCopy()
		role := typed[rbacv1.ClusterRole](t, u)
		apply(t, ctx, c, role)
	}
	// view is itself aggregated into edit, and edit into admin: filling them
	// in this order reaches what the controller converges to.
	for _, name := range []string{"view", "edit", "admin"} {
		aggregate(t, ctx, c, name)
	}

	const ns = "team-catalog"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	bind := func(user, role string) {
		apply(t, ctx, c, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		})
	}
	bind("view-user", "view")
	bind("edit-user", "edit")
	bind("admin-user", "admin")
	bind("viewer", viewerRole)
	bind("editor", editorRole)
	bind("security", policyAdminRole)
	// The viewer is also granted cluster-wide, as a ClusterRoleBinding.
	apply(t, ctx, c, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "plinth-test-cluster-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: viewerRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "cluster-viewer"}},
	})

	checks := []access{
		{"view-user", "list", "baseimages", "", true},
		{"view-user", "watch", "imagepolicies", "", true},
		{"view-user", "get", "baseimages", "status", true},
		{"view-user", "create", "baseimages", "", false},
		{"view-user", "update", "imagepolicies", "", false},

		{"edit-user", "create", "baseimages", "", true},
		{"edit-user", "delete", "baseimages", "", true},
		{"edit-user", "get", "imagepolicies", "status", true},
		{"edit-user", "update", "imagepolicies", "", false},
		{"edit-user", "delete", "imagepolicies", "", false},
		{"edit-user", "patch", "baseimages", "status", false},

		{"admin-user", "patch", "baseimages", "", true},
		{"admin-user", "update", "imagepolicies", "", false},
		{"admin-user", "create", "imagepolicies", "", false},

		{"viewer", "list", "baseimages", "", true},
		{"viewer", "get", "imagepolicies", "status", true},
		{"viewer", "update", "imagepolicies", "", false},
		{"viewer", "update", "baseimages", "", false},
		{"viewer", "update", "baseimages", "status", false},

		{"cluster-viewer", "list", "imagepolicies", "", true},
		{"cluster-viewer", "delete", "baseimages", "", false},

		{"editor", "create", "baseimages", "", true},
		{"editor", "list", "imagepolicies", "", true},
		{"editor", "update", "imagepolicies", "", false},
		{"editor", "update", "baseimages", "status", false},

		{"security", "update", "imagepolicies", "", true},
		{"security", "create", "imagepolicies", "", true},
		{"security", "delete", "imagepolicies", "", true},
		{"security", "update", "imagepolicies", "status", false},
		{"security", "create", "baseimages", "", false},

		{"nobody", "list", "baseimages", "", false},
	}
	// The authorizer reads roles and bindings from a cache: wait until every
	// granted access is seen, then ask the denied ones, whose users' grants
	// the cache then holds.
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range checks {
		if !a.allowed {
			continue
		}
		for {
			ok, err := a.review(ctx, c, ns)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: denied, want allowed", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, a := range checks {
		if a.allowed {
			continue
		}
		ok, err := a.review(ctx, c, ns)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if ok {
			t.Errorf("%s: allowed, want denied", a)
		}
	}

	// A namespace admin may pass on the roles aggregated into admin, but not
	// the policy admin: the API server refuses a binding that grants more
	// than its author holds.
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "admin-user"}
	asAdmin, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	grant := func(role string) error {
		return asAdmin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "granted-", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "someone"}},
		}, client.DryRunAll)
	}
	if err := grant(editorRole); err != nil {
		t.Errorf("admin-user granting %s: %v", editorRole, err)
	}
	if err := grant(policyAdminRole); !apierrors.IsForbidden(err) {
		t.Errorf("admin-user granting %s: %v, want Forbidden", policyAdminRole, err)
	}
}
