package admission

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Self-managed certificates: the Secret of the serving key pair and the
// webhook configuration whose caBundle plinth keeps.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,resourceNames=plinth-validating-webhook-configuration,verbs=get;update

// Defaults of the self-managed certificates.
const (
	DefaultCAValidity         = 10 * 365 * 24 * time.Hour
	DefaultCertValidity       = 365 * 24 * time.Hour
	DefaultCertRenewBefore    = 30 * 24 * time.Hour
	DefaultCertCheckInterval  = 10 * time.Minute
	caRenewBefore             = 365 * 24 * time.Hour
	certRetryAfterFailure     = 10 * time.Second
	secretKeyCA, secretKeyCAK = "ca.crt", "ca.key"
)

// CertRotator keeps the webhook's serving certificate when no
// cert-manager or OLM provides one: it keeps a CA and a serving
// certificate in a Secret, serves the certificate from memory, writes the
// CA into the caBundle of the ValidatingWebhookConfiguration, and renews
// both before they expire. Every replica runs one; they agree through the
// Secret (a lost update race re-reads it).
type CertRotator struct {
	// Client writes the Secret and the webhook configuration. Required.
	Client client.Client
	// Reader reads them without a cache (the manager's API reader).
	// Required.
	Reader client.Reader
	// Secret names the Secret of the key pair. Required.
	Secret types.NamespacedName
	// WebhookConfiguration names the ValidatingWebhookConfiguration whose
	// caBundle is kept. Required.
	WebhookConfiguration string
	// Hosts are the names (DNS names or IP addresses) the certificate is
	// valid for, such as plinth-webhook-service.plinth-system.svc.
	// Required.
	Hosts []string
	// CertValidity, RenewBefore and CheckInterval: how long a serving
	// certificate lasts, how long before its expiry it is renewed, how
	// often it and the caBundle are checked. Defaults
	// DefaultCertValidity, DefaultCertRenewBefore, DefaultCertCheckInterval.
	CertValidity, RenewBefore, CheckInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	cert atomic.Pointer[tls.Certificate]
}

// NeedLeaderElection is false: every replica serves the webhook.
func (r *CertRotator) NeedLeaderElection() bool { return false }

// Start keeps the certificate and the caBundle current until ctx ends.
func (r *CertRotator) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certs")
	for {
		wait := r.interval()
		if err := r.Ensure(ctx); err != nil {
			log.Error(err, "Keeping the webhook's serving certificate failed", "secret", r.Secret.String())
			wait = certRetryAfterFailure
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (r *CertRotator) interval() time.Duration {
	return positive(r.CheckInterval, DefaultCertCheckInterval)
}

func positive(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func (r *CertRotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// GetCertificate serves the current certificate; set it as the webhook
// server's tls.Config.GetCertificate.
func (r *CertRotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.cert.Load()
	if c == nil {
		return nil, errors.New("the webhook's serving certificate is not ready yet")
	}
	return c, nil
}

// Ready is a readiness check: it fails until a certificate is served.
func (r *CertRotator) Ready(*http.Request) error {
	if r.cert.Load() == nil {
		return errors.New("the webhook's serving certificate is not ready yet")
	}
	return nil
}

// Ensure makes sure the Secret holds a CA and a serving certificate valid
// for the hosts and not due for renewal, serves that certificate, and
// writes the CA into the webhook configuration's caBundle.
func (r *CertRotator) Ensure(ctx context.Context) error {
	return r.ensure(ctx, true)
}

func (r *CertRotator) ensure(ctx context.Context, retry bool) error {
	if r.Secret.Name == "" || r.Secret.Namespace == "" || r.WebhookConfiguration == "" || len(r.Hosts) == 0 {
		return errors.New("self-managed webhook certificates need a Secret, a webhook configuration and hosts")
	}
	var s corev1.Secret
	err := r.Reader.Get(ctx, r.Secret, &s)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading Secret %s: %w", r.Secret, err)
	}
	data, changed, err := r.renew(s.Data)
	if err != nil {
		return err
	}
	if changed {
		s.Data, s.Type = data, corev1.SecretTypeTLS
		if exists {
			err = r.Client.Update(ctx, &s)
		} else {
			s.ObjectMeta = metav1.ObjectMeta{Name: r.Secret.Name, Namespace: r.Secret.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "plinth", "app.kubernetes.io/component": "webhook"}}
			err = r.Client.Create(ctx, &s)
		}
		if retry && (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			// Another replica wrote it first: use its pair.
			return r.ensure(ctx, false)
		}
		if err != nil {
			return fmt.Errorf("writing Secret %s: %w", r.Secret, err)
		}
	}
	pair, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	r.cert.Store(&pair)
	return r.injectCABundle(ctx, data[secretKeyCA])
}

// injectCABundle writes ca into every webhook of the configuration.
func (r *CertRotator) injectCABundle(ctx context.Context, ca []byte) error {
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := r.Reader.Get(ctx, client.ObjectKey{Name: r.WebhookConfiguration}, &vwc); err != nil {
		if apierrors.IsNotFound(err) {
			ctrl.LoggerFrom(ctx).V(1).Info("The webhook configuration does not exist; its caBundle is written when it does", "webhookConfiguration", r.WebhookConfiguration)
			return nil
		}
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.WebhookConfiguration, err)
	}
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, ca) {
			vwc.Webhooks[i].ClientConfig.CABundle = ca
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := r.Client.Update(ctx, &vwc); err != nil {
		return fmt.Errorf("writing the caBundle of ValidatingWebhookConfiguration %s: %w", r.WebhookConfiguration, err)
	}
	return nil
}

// renew returns the Secret data to keep: data itself when its CA and
// certificate are valid and not due, or else data with a new CA and/or
// certificate.
func (r *CertRotator) renew(data map[string][]byte) (map[string][]byte, bool, error) {
	now := r.now()
	out := map[string][]byte{}
	for k, v := range data {
		out[k] = v
	}
	caCert, caKey, caOK := parseCA(data, now)
	changed := false
	if !caOK {
		var (
			caPEM []byte
			err   error
		)
		caCert, caKey, caPEM, err = newCA(now)
		if err != nil {
			return nil, false, err
		}
		// The bundle keeps the previous CA while it is valid, so that
		// clients trusting it keep working until the caBundle is updated.
		bundle := caPEM
		if old := firstCert(data[secretKeyCA]); old != nil && now.Before(old.NotAfter) {
			bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Raw})...)
		}
		keyDER, err := x509.MarshalECPrivateKey(caKey)
		if err != nil {
			return nil, false, err
		}
		out[secretKeyCA] = bundle
		out[secretKeyCAK] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		changed = true
	}
	if changed || !r.leafOK(data, caCert, now) {
		certPEM, keyPEM, err := r.newLeaf(caCert, caKey, now)
		if err != nil {
			return nil, false, err
		}
		out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = certPEM, keyPEM
		changed = true
	}
	return out, changed, nil
}

// parseCA reads the CA of the Secret; ok is false when it is missing,
// unreadable or due for renewal.
func parseCA(data map[string][]byte, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, bool) {
	c := firstCert(data[secretKeyCA])
	b, _ := pem.Decode(data[secretKeyCAK])
	if c == nil || b == nil || !c.IsCA {
		return nil, nil, false
	}
	k, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil || !k.PublicKey.Equal(c.PublicKey) {
		return nil, nil, false
	}
	if now.Add(caRenewBefore).After(c.NotAfter) {
		return nil, nil, false
	}
	return c, k, true
}

func firstCert(p []byte) *x509.Certificate {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// leafOK reports whether the Secret's serving certificate is signed by
// ca, matches its key, names every host, and is not due for renewal.
func (r *CertRotator) leafOK(data map[string][]byte, ca *x509.Certificate, now time.Time) bool {
	if _, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]); err != nil {
		return false
	}
	c := firstCert(data[corev1.TLSCertKey])
	if c == nil || c.CheckSignatureFrom(ca) != nil {
		return false
	}
	if now.Add(positive(r.RenewBefore, DefaultCertRenewBefore)).After(c.NotAfter) || now.Before(c.NotBefore) {
		return false
	}
	for _, h := range r.Hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "plinth-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DefaultCAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (r *CertRotator) newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: r.Hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(positive(r.CertValidity, DefaultCertValidity)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range r.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
