package admission_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/internal/admission"
	"github.com/plinth-dev/plinth/test/testenv"
)

// With no webhook server answering, config/webhook's failurePolicy
// (Ignore) admits Pods of enforced namespaces; Fail would refuse them.
func TestStoppedWebhookFailsOpenWithIgnore(t *testing.T) {
	env, err := testenv.StartWithWebhooks(filepath.Join(testenv.Root(), "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "stopped", Labels: map[string]string{admission.ModeLabel: "enforce"}}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "validating-webhook-configuration"}, &vwc); err != nil {
		t.Fatal(err)
	}
	if p := vwc.Webhooks[0].FailurePolicy; p == nil || *p != admissionregistrationv1.Ignore {
		t.Fatalf("config/webhook's failurePolicy is %v, want Ignore", p)
	}
	if err := c.Create(ctx, pod(ns.Name, "cart", imgs.cart)); err != nil {
		t.Errorf("with the webhook down and failurePolicy Ignore: %v", err)
	}

	fail := admissionregistrationv1.Fail
	vwc.Webhooks[0].FailurePolicy = &fail
	if err := c.Update(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		err := c.Create(ctx, pod(ns.Name, "cart-fail", imgs.cart))
		if err == nil {
			_ = c.Delete(ctx, pod(ns.Name, "cart-fail"))
			return errNotRefused
		}
		if !strings.Contains(err.Error(), "failed calling webhook") {
			t.Fatalf("with failurePolicy Fail: got %v, want a webhook call failure", err)
		}
		return nil
	})
}

type notRefused struct{}

func (notRefused) Error() string { return "a Pod was admitted with failurePolicy Fail and no webhook" }

var errNotRefused error = notRefused{}
