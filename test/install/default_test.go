package install

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/test/testenv"
)

const (
	namespace  = "plinth-system"
	deployment = "plinth-controller-manager"
)

// warnings collects the warnings the API server returns, such as Pod
// Security violations of a namespace labelled pod-security.kubernetes.io/warn.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

func newClient(t *testing.T, e *testenv.Environment) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// ensureNamespace creates the rendered namespace for real: a dry-run create
// of the objects inside it needs it to exist.
func ensureNamespace(t *testing.T, ctx context.Context, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	ns := find(t, objs, "Namespace", namespace).DeepCopy()
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestDefaultInstallsDryRun renders config/default and sends every object
// to the API server as a server-side dry-run: the server validates each one
// (schema, CRD structure, RBAC references, Pod Security warnings of the
// restricted namespace) and admission runs, but nothing is stored. Only the
// namespace is created for real.
func TestDefaultInstallsDryRun(t *testing.T) {
	objs := render(t, "config/default")
	e := controlPlane(t)
	c, warn := newClient(t, e)
	ctx := context30s(t)
	ensureNamespace(t, ctx, c, objs)
	warn.take()

	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		obj := o.DeepCopy()
		err := c.Create(ctx, obj, client.DryRunAll)
		if apierrors.IsAlreadyExists(err) {
			// The namespace, and the CRDs testenv installed: dry-run an
			// update of the stored object to the rendered one instead.
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(o.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
				t.Fatal(err)
			}
			obj.SetResourceVersion(cur.GetResourceVersion())
			err = c.Update(ctx, obj, client.DryRunAll)
		}
		if err != nil {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		for _, w := range warn.take() {
			t.Errorf("%s %s: warning: %s", o.GetKind(), o.GetName(), w)
		}
	}
	want := map[string]int{
		"Namespace": 1, "CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 5,
		"ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "Service": 2, "Deployment": 1,
		"ValidatingWebhookConfiguration": 1,
	}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("config/default renders %v, want %v", kinds, want)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration":
			if o.GetNamespace() != "" {
				t.Errorf("%s %s is cluster-scoped but has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		default:
			if o.GetNamespace() != namespace {
				t.Errorf("%s %s is in namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
			}
		}
		if o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetName(), "plinth-") {
			t.Errorf("%s %s lacks the plinth- name prefix", o.GetKind(), o.GetName())
		}
	}
}

// TestManagerPodPassesRestrictedPodSecurity creates, as a dry-run, a Pod
// from the Deployment's template in the namespace that enforces the
// "restricted" Pod Security Standard. A pod that is not allowed there makes
// the API server refuse it, as the same pod without its security context
// shows.
func TestManagerPodPassesRestrictedPodSecurity(t *testing.T) {
	objs := render(t, "config/default")
	e := controlPlane(t)
	c, warn := newClient(t, e)
	ctx := context30s(t)
	ensureNamespace(t, ctx, c, objs)
	if ns := find(t, objs, "Namespace", namespace); ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace %s does not enforce the restricted Pod Security Standard", namespace)
	}
	sa := find(t, objs, "ServiceAccount", deployment).DeepCopy()
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	warn.take()

	d := deploymentOf(t, objs)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plinth-pod-security", Namespace: namespace, Labels: d.Spec.Template.Labels},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	if err := c.Create(ctx, pod.DeepCopy(), client.DryRunAll); err != nil {
		t.Errorf("the manager pod is refused in a restricted namespace: %v", err)
	}
	for _, w := range warn.take() {
		t.Errorf("warning: %s", w)
	}

	unhardened := pod.DeepCopy()
	unhardened.Name = "unhardened"
	unhardened.Spec.SecurityContext = nil
	unhardened.Spec.Containers[0].SecurityContext = nil
	if err := c.Create(ctx, unhardened, client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("a pod without security context was not refused (err %v): Pod Security admission is not checking this namespace", err)
	}
}
