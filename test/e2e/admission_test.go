package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plinth-dev/plinth/test/testenv"
)

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The operator binary keeps the webhook's certificate itself: it issues
// one into a Secret of its namespace and writes the CA into the webhook
// configuration, which the API server then trusts to call it.
func TestOperatorServesTheWebhookWithSelfManagedCertificates(t *testing.T) {
	operator := build(t, "PLINTH_BINARY", ".", "plinth")
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc, err := env.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "plinth-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"catalog.plinth.dev/admission": "enforce"}}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}

	// config/webhook's configuration, called by URL on loopback, without a
	// caBundle, failing closed so that only a trusted answer admits.
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.Unmarshal(raw, &vwc); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	vwc.Name = "plinth-validating-webhook-configuration"
	fail := admissionregistrationv1.Fail
	for i := range vwc.Webhooks {
		url := "https://127.0.0.1:" + strconv.Itoa(port) + *vwc.Webhooks[i].ClientConfig.Service.Path
		vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
		vwc.Webhooks[i].FailurePolicy = &fail
	}
	if err := c.Create(ctx, &vwc); err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	cmd := exec.Command(operator, "--scan=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--admission-webhook", "--webhook-certs=self-managed", "--webhook-host=127.0.0.1",
		"--webhook-port="+strconv.Itoa(port), "--webhook-cert-hosts=127.0.0.1", "--admission-unknown=deny")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE=plinth-system")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	waitFor(t, time.Minute, "the caBundle and the Secret", func() bool {
		var cur admissionregistrationv1.ValidatingWebhookConfiguration
		var s corev1.Secret
		return c.Get(ctx, client.ObjectKey{Name: vwc.Name}, &cur) == nil && len(cur.Webhooks[0].ClientConfig.CABundle) > 0 &&
			c.Get(ctx, client.ObjectKey{Namespace: "plinth-system", Name: "plinth-webhook-server-cert"}, &s) == nil
	}, out.String)

	// An image no registry answers for is Unknown, and denied with
	// --admission-unknown=deny: the answer came from plinth, over TLS the
	// API server trusted.
	image := "127.0.0.1:" + strconv.Itoa(freePort(t)) + "/apps/shop:1"
	var lastErr error
	waitFor(t, time.Minute, "a denial from the webhook", func() bool {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "shop"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: image}}}}
		lastErr = c.Create(ctx, p)
		return lastErr != nil && strings.Contains(lastErr.Error(), "denied the request") &&
			strings.Contains(lastErr.Error(), "could not be checked against the catalog")
	}, func() string { return "last error: " + errString(lastErr) + "\n" + out.String() })
}
