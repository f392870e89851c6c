package verification

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/sign"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// recent is a creation time well within any maxAge.
var recent = time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)

// publisher is a loopback registry an image publisher pushes to and signs
// in.
type publisher struct {
	t   *testing.T
	reg *registrytest.Registry
}

func newPublisher(t *testing.T) *publisher {
	t.Helper()
	return &publisher{t: t, reg: registrytest.New(t)}
}

func (p *publisher) remoteOptions() []remote.Option {
	return []remote.Option{remote.WithTransport(p.reg.Transport()), remote.WithAuth(authn.Anonymous)}
}

// push pushes a small image, distinct per content, to repo:tag and returns
// the tag reference and the digest reference.
func (p *publisher) push(repoTag, content string) (string, name.Digest) {
	p.t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"etc/motd": content}})
	if err != nil {
		p.t.Fatal(err)
	}
	ref := p.reg.Host + "/" + repoTag
	dgst, err := imagetest.PushImage(context.Background(), ref, img, p.remoteOptions()...)
	if err != nil {
		p.t.Fatalf("pushing %s: %v", ref, err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		p.t.Fatal(err)
	}
	d, err := name.NewDigest(tag.Context().Name() + "@" + dgst)
	if err != nil {
		p.t.Fatal(err)
	}
	return ref, d
}

// sign attaches a cosign signature by signer to image, in the layout cosign
// sign writes (simple-signing payload, base64 signature annotation, and the
// certificate and chain of a keyless signature), with no
// transparency-log entry.
func (p *publisher) sign(image name.Digest, signer signature.Signer, certPEM, chainPEM []byte) {
	p.t.Helper()
	pl, err := (&payload.Cosign{Image: image}).MarshalJSON()
	if err != nil {
		p.t.Fatal(err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		p.t.Fatal(err)
	}
	var opts []static.Option
	if certPEM != nil {
		opts = append(opts, static.WithCertChain(certPEM, chainPEM))
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		p.t.Fatal(err)
	}
	ro := ociremote.WithRemoteOptions(p.remoteOptions()...)
	se, err := ociremote.SignedEntity(image, ro)
	if err != nil {
		p.t.Fatal(err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(image.Context(), se, ro); err != nil {
		p.t.Fatal(err)
	}
}

// keyPair is an ECDSA P-256 key pair as cosign generate-key-pair makes.
type keyPair struct {
	signer signature.Signer
	pem    string
	fp     string
}

func newKeyPair(t *testing.T) keyPair {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadECDSASigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp, err := sign.Fingerprint(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{signer: s, pem: string(pemKey), fp: fp}
}

// certAuthority is a private certificate authority issuing Fulcio-style
// code-signing certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCertAuthority(t *testing.T) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "plinth test signing CA", Organization: []string{"plinth test"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: cert, key: key}
}

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// issue returns a signer whose certificate names subject (an e-mail
// address) and OIDC issuer as Fulcio's do, with the certificate and chain
// PEM to attach to its signatures.
func (ca *certAuthority) issue(t *testing.T, subject, issuer string) (signature.Signer, []byte, []byte) {
	t.Helper()
	return ca.issueAt(t, subject, issuer, time.Now().Add(-time.Hour))
}

// issueAt is issue with a certificate issued (valid from) at notBefore and
// valid until an hour from now.
func (ca *certAuthority) issueAt(t *testing.T, subject, issuer string, notBefore time.Time) (signature.Signer, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := asn1.MarshalWithParams(issuer, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		NotBefore:       notBefore,
		NotAfter:        time.Now().Add(time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses:  []string{subject},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV1, Value: []byte(issuer)}, {Id: oidIssuerV2, Value: v2}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, err := cryptoutils.MarshalCertificateToPEM(ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadECDSASigner(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return s, certPEM, chainPEM
}

// trustedRoot returns a Sigstore trusted_root.json holding ca as its only
// certificate authority, and no logs.
func (ca *certAuthority) trustedRoot(t *testing.T) string {
	t.Helper()
	return ca.trustedRootUntil(t, time.Time{})
}

// trustedRootUntil is trustedRoot with the authority valid until end (its
// validFor end; zero for none).
func (ca *certAuthority) trustedRootUntil(t *testing.T, end time.Time) string {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{
			Root:                ca.cert,
			ValidityPeriodStart: ca.cert.NotBefore,
			ValidityPeriodEnd:   end,
			URI:                 "https://ca.invalid",
		}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// createPolicy creates an ImagePolicy.
func createPolicy(t *testing.T, ns, name string, spec catalogv1.ImagePolicySpec) *catalogv1.ImagePolicy {
	t.Helper()
	p := &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), p); err != nil {
		t.Fatalf("creating ImagePolicy: %v", err)
	}
	return p
}

// createBaseImage creates a BaseImage of ref under policy and returns its
// key.
func createBaseImage(t *testing.T, ns, name, ref, policy string) client.ObjectKey {
	t.Helper()
	b := &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: catalogv1.BaseImageSpec{
			Image:     catalogv1.ImageReference(ref),
			PolicyRef: catalogv1.LocalObjectReference{Name: policy},
		},
	}
	if err := k8sClient.Create(context.Background(), b); err != nil {
		t.Fatalf("creating BaseImage: %v", err)
	}
	return client.ObjectKeyFromObject(b)
}

// keysPolicy trusts the given PEM keys, signatures without a
// transparency-log entry included.
func keysPolicy(mode catalogv1.VerificationMode, pems ...string) catalogv1.ImagePolicySpec {
	v := &catalogv1.VerificationPolicy{Mode: mode, IgnoreTlog: true}
	for _, p := range pems {
		v.Keys = append(v.Keys, catalogv1.TrustedKey{PEM: p})
	}
	return catalogv1.ImagePolicySpec{Verification: v}
}
