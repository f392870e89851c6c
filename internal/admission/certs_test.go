package admission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/internal/admission"
)

func TestSelfManagedCertificatesAreIssuedInjectedAndRenewed(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	none := admissionregistrationv1.SideEffectClassNone
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-webhooks"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "workloads.admission.catalog.plinth.dev", AdmissionReviewVersions: []string{"v1"}, SideEffects: &none,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "webhook-service"}},
			// Matches nothing, so the suite's requests never reach it.
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
		}},
	}
	if err := k8sClient.Create(ctx, vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), vwc) })

	now := time.Now()
	r := &admission.CertRotator{
		Client: k8sClient, Reader: k8sClient,
		Secret:               types.NamespacedName{Namespace: ns, Name: "webhook-server-cert"},
		WebhookConfiguration: vwc.Name,
		Hosts:                []string{"webhook-service." + ns + ".svc", "127.0.0.1"},
		Now:                  func() time.Time { return now },
	}
	if _, err := r.GetCertificate(nil); err == nil {
		t.Error("a certificate is served before one is issued")
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	secret := func() *corev1.Secret {
		var s corev1.Secret
		if err := k8sClient.Get(ctx, r.Secret, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	first := secret()
	bundle := caBundle(t, vwc.Name)
	if !bytes.Equal(bundle, first.Data["ca.crt"]) {
		t.Fatal("the caBundle is not the Secret's CA")
	}
	// A client trusting the caBundle reaches a server presenting the
	// certificate.
	handshake(t, r, bundle)

	// Nothing changes while the certificate is fresh.
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if secret().ResourceVersion != first.ResourceVersion {
		t.Error("the Secret was rewritten while its certificate was fresh")
	}
	// Someone re-applies the configuration without a caBundle: restored.
	var cur admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: vwc.Name}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Webhooks[0].ClientConfig.CABundle = nil
	if err := k8sClient.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBundle(t, vwc.Name), first.Data["ca.crt"]) {
		t.Error("the caBundle was not restored")
	}

	// Within 30 days of expiry the certificate is renewed under the same CA.
	now = now.Add(admission.DefaultCertValidity - admission.DefaultCertRenewBefore + time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := secret()
	if bytes.Equal(renewed.Data["tls.crt"], first.Data["tls.crt"]) {
		t.Error("the certificate was not renewed before its expiry")
	}
	if !bytes.Equal(renewed.Data["ca.crt"], first.Data["ca.crt"]) {
		t.Error("renewing the certificate replaced the CA")
	}
	served, err := r.GetCertificate(nil)
	if err != nil || !bytes.Equal(served.Certificate[0], pemBlock(t, renewed.Data["tls.crt"])) {
		t.Error("the renewed certificate is not served")
	}
}

func caBundle(t *testing.T, name string) []byte {
	t.Helper()
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, &v); err != nil {
		t.Fatal(err)
	}
	return v.Webhooks[0].ClientConfig.CABundle
}

// pemBlock returns the DER of the first PEM block of p.
func pemBlock(t *testing.T, p []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes
}

// handshake serves r's certificate on loopback and calls it trusting only
// bundle.
func handshake(t *testing.T, r *admission.CertRotator, bundle []byte) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatal("the caBundle holds no certificate")
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get("https://127.0.0.1:" + port)
	if err != nil {
		t.Fatalf("calling the webhook's certificate with the caBundle: %v", err)
	}
	resp.Body.Close()
}
