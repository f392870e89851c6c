package sign

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// publishEnv is a loopback registry that counts the requests that change
// it (PUT, POST, PATCH, DELETE), and can refuse them.
type publishEnv struct {
	t      testing.TB
	reg    *registrytest.Registry
	writes atomic.Int64
	deny   atomic.Bool
}

func newPublishEnv(t testing.TB) *publishEnv {
	t.Helper()
	e := &publishEnv{t: t}
	e.reg = registrytest.New(t, registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
				e.writes.Add(1)
				if e.deny.Load() {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusForbidden)
					_, _ = fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"push denied"}]}`)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}))
	return e
}

func (e *publishEnv) registry() Registry {
	return Registry{Transport: e.reg.Transport(), Keychain: authn.NewMultiKeychain()}
}

func (e *publishEnv) remoteOptions() []remote.Option {
	return []remote.Option{remote.WithTransport(e.reg.Transport())}
}

// push pushes a small image made from seed and returns its digest.
func (e *publishEnv) push(repo, seed string) name.Digest {
	e.t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"etc/seed": seed}})
	if err != nil {
		e.t.Fatal(err)
	}
	ref := e.reg.Host + "/" + repo
	dgst, err := imagetest.PushImage(context.Background(), ref+":latest", img, e.remoteOptions()...)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := name.NewDigest(ref + "@" + dgst)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *publishEnv) ociOptions() []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(e.remoteOptions()...)}
}

// attestationTypes counts image's attestations by predicate type.
func (e *publishEnv) attestationTypes(image name.Digest) map[string]int {
	e.t.Helper()
	list := e.attestations(image)
	out := map[string]int{}
	for _, att := range list {
		ann, err := att.Annotations()
		if err != nil {
			e.t.Fatal(err)
		}
		out[ann[annotationPredicateType]]++
	}
	return out
}

func (e *publishEnv) attestations(image name.Digest) []oci.Signature {
	e.t.Helper()
	atts, err := ociremote.SignedUnknown(image, e.ociOptions()...).Attestations()
	if err != nil {
		e.t.Fatal(err)
	}
	list, err := atts.Get()
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func (e *publishEnv) signatures(image name.Digest) int {
	e.t.Helper()
	sigs, err := ociremote.SignedUnknown(image, e.ociOptions()...).Signatures()
	if err != nil {
		e.t.Fatal(err)
	}
	list, err := sigs.Get()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

// verifier loads a public key the way "cosign verify --key" does.
func verifier(t testing.TB, pubPEM []byte) signature.Verifier {
	t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkOpts verifies with pubPEM offline: no transparency log.
func (e *publishEnv) checkOpts(t testing.TB, pubPEM []byte) *cosign.CheckOpts {
	return &cosign.CheckOpts{
		SigVerifier:        verifier(t, pubPEM),
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		RegistryClientOpts: e.ociOptions(),
	}
}

var judged = time.Date(2026, 8, 14, 9, 0, 0, 0, time.UTC)

const testSBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"type":"library","name":"musl","version":"1.2.5-r10","purl":"pkg:apk/alpine/musl@1.2.5-r10"}]}`

func testPublication(validUntil time.Time) Publication {
	return Publication{
		Approval: Approval{
			Policy:           "base-images",
			PolicyGeneration: 3,
			Verdict:          VerdictApproved,
			VulnDBVersion:    "2026-08-13T06:12:44Z",
			Exceptions:       []AppliedException{{ID: "CVE-2026-0002", Expires: judged.Add(30 * 24 * time.Hour)}},
			ApprovedAt:       judged,
			ValidUntil:       validUntil,
		},
		Scanner: Scanner{Name: "trivy", Version: "0.74.0", DBVersion: "2026-08-13T06:12:44Z"},
		Findings: []Finding{
			{ID: "CVE-2026-0002", Severity: "HIGH", Package: "musl", Installed: "1.2.5-r10", Fixed: "1.2.5-r11"},
			{ID: "CVE-2026-0001", Severity: "LOW", Package: "busybox", Installed: "1.37.0-r18"},
		},
		ScannedAt: judged.Add(-time.Minute),
		SBOM:      []byte(testSBOM),
	}
}

// writeAttestations replaces image's attestations with atts.
func (e *publishEnv) writeAttestations(image name.Digest, atts ...oci.Signature) {
	e.t.Helper()
	list, err := mutate.AppendSignatures(empty.Signatures(), false, atts...)
	if err != nil {
		e.t.Fatal(err)
	}
	se := ociremote.SignedUnknown(image, e.ociOptions()...)
	if err := ociremote.WriteAttestations(image.Repository, withAttestations{se, list}, e.ociOptions()...); err != nil {
		e.t.Fatal(err)
	}
}

func targetRepository(t testing.TB, repo string) ociremote.Option {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	return ociremote.WithTargetRepository(r)
}
