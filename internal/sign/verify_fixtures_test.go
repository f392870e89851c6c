package sign

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
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync"
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

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// verifyEnv is a loopback registry plus what tests need to reach it.
type verifyEnv struct {
	t   testing.TB
	reg *registrytest.Registry
}

// newVerifyEnv starts a loopback registry and makes sure nothing in the
// test reaches any other host: cosign's TUF cache points at a temporary
// directory and http.DefaultTransport refuses non-loopback addresses.
func newVerifyEnv(t testing.TB, opts ...registrytest.Option) *verifyEnv {
	t.Helper()
	offline(t)
	return &verifyEnv{t: t, reg: registrytest.New(t, opts...)}
}

// offlineMu serialises the swap of http.DefaultTransport.
var offlineMu sync.Mutex

func offline(t testing.TB) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		tt.Setenv("TUF_ROOT", t.TempDir())
	}
	offlineMu.Lock()
	defer offlineMu.Unlock()
	old := http.DefaultTransport
	guarded := old.(*http.Transport).Clone()
	dial := (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	guarded.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Errorf("connection to a non-loopback address %q", addr)
			return nil, errors.New("non-loopback connection refused in tests")
		}
		return dial(ctx, network, addr)
	}
	http.DefaultTransport = guarded
	t.Cleanup(func() {
		offlineMu.Lock()
		defer offlineMu.Unlock()
		http.DefaultTransport = old
	})
}

// registry is how Verify reaches the test registry.
func (e *verifyEnv) registry() Registry {
	return Registry{Transport: e.reg.Transport()}
}

func (e *verifyEnv) remoteOptions() []remote.Option {
	return []remote.Option{remote.WithTransport(e.reg.Transport()), remote.WithAuth(authn.Anonymous)}
}

// push writes a small image, distinct per seed, to repo and returns its
// digest reference.
func (e *verifyEnv) push(repo, seed string) name.Digest {
	e.t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"etc/seed": seed}})
	if err != nil {
		e.t.Fatal(err)
	}
	dgst, err := imagetest.PushImage(context.Background(), e.reg.Host+"/"+repo+":latest", img, e.remoteOptions()...)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := name.NewDigest(e.reg.Host + "/" + repo + "@" + dgst)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// sign attaches a cosign signature by signer to image, in the same layout
// cosign sign writes (simple-signing payload, base64 signature annotation,
// certificate and chain annotations for keyless signatures), without a
// transparency-log entry. The payload names claimed, which is image unless
// a test wants a signature for another digest.
func (e *verifyEnv) sign(image, claimed name.Digest, signer signature.Signer, certPEM, chainPEM []byte) {
	e.t.Helper()
	pl, err := (&payload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := signer.SignMessage(bytes.NewReader(pl))
	if err != nil {
		e.t.Fatal(err)
	}
	var opts []static.Option
	if certPEM != nil {
		opts = append(opts, static.WithCertChain(certPEM, chainPEM))
	}
	sig, err := static.NewSignature(pl, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ro := ociremote.WithRemoteOptions(e.remoteOptions()...)
	se, err := ociremote.SignedEntity(image, ro)
	if err != nil {
		e.t.Fatal(err)
	}
	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(image.Context(), se, ro); err != nil {
		e.t.Fatal(err)
	}
}

// verifyKey is an ECDSA P-256 key pair as cosign generate-key-pair makes.
type verifyKey struct {
	signer signature.SignerVerifier
	pem    []byte
	fp     string
}

func newVerifyKey(t testing.TB) verifyKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp, err := Fingerprint(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return verifyKey{signer: sv, pem: pemKey, fp: fp}
}

// verifyCA is a private certificate authority issuing Fulcio-style
// code-signing certificates.
type verifyCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newVerifyCA(t testing.TB) *verifyCA {
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
	return &verifyCA{cert: cert, key: key}
}

var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// issue returns a signer whose certificate names subject (an email
// address) and OIDC issuer the way Fulcio's do, with the certificate and
// chain PEM to attach to signatures.
func (ca *verifyCA) issue(t testing.TB, subject, issuer string) (signature.Signer, []byte, []byte) {
	t.Helper()
	return ca.issueAt(t, subject, issuer, time.Now().Add(-time.Hour))
}

// issueAt is issue with a certificate issued (valid from) at notBefore and
// valid for two hours.
func (ca *verifyCA) issueAt(t testing.TB, subject, issuer string, notBefore time.Time) (signature.Signer, []byte, []byte) {
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
		NotAfter:        notBefore.Add(2 * time.Hour),
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
// certificate authority and no logs.
func (ca *verifyCA) trustedRoot(t testing.TB) []byte {
	t.Helper()
	return trustedRootOf(t, ca.authority(time.Time{}))
}

// authority is ca as a certificate authority of a trusted root, valid
// until end (zero: with no end).
func (ca *verifyCA) authority(end time.Time) root.CertificateAuthority {
	return &root.FulcioCertificateAuthority{
		Root:                ca.cert,
		ValidityPeriodStart: ca.cert.NotBefore,
		ValidityPeriodEnd:   end,
		URI:                 "https://ca.invalid",
	}
}

// trustedRootOf returns a Sigstore trusted_root.json holding the given
// certificate authorities and no logs.
func trustedRootOf(t testing.TB, cas ...root.CertificateAuthority) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigTagPath is the registry path of image's cosign signature manifest.
func sigTagPath(image name.Digest) string {
	h := image.DigestStr()
	return fmt.Sprintf("/v2/%s/manifests/sha256-%s.sig", image.Context().RepositoryStr(), h[len("sha256:"):])
}
