package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"

	registrytest "github.com/plinth-dev/plinth/test/registry"
)

const (
	verifyIssuer  = "https://issuer.example"
	verifySubject = "release@example.com"
)

func mustVerify(t *testing.T, v *Verifier, image name.Digest, trust Trust, reg Registry) Result {
	t.Helper()
	r, err := v.Verify(context.Background(), image, trust, reg)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func wantOutcome(t *testing.T, r Result, want Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %s (%q), want %s", r.Outcome, r.Message, want)
	}
	if strings.Contains(r.Message, "127.0.0.1") || strings.Contains(r.Message, "http") && !strings.Contains(r.Message, verifyIssuer) {
		t.Errorf("message names a registry or URL: %q", r.Message)
	}
}

func TestVerifyUnsignedImageIsSignatureMissing(t *testing.T) {
	e := newVerifyEnv(t)
	img := e.push("base/unsigned", "a")
	key := newVerifyKey(t)

	r := mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{key.pem}, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeSignatureMissing)
	if r.Signer != "" {
		t.Errorf("Signer = %q on a missing signature", r.Signer)
	}
}

func TestVerifyWithKeys(t *testing.T) {
	e := newVerifyEnv(t)
	img := e.push("base/keyed", "a")
	a, b := newVerifyKey(t), newVerifyKey(t)
	e.sign(img, img, a.signer, nil, nil)

	for _, tc := range []struct {
		name       string
		keys       [][]byte
		want       Outcome
		wantSigner string
		wantInMsg  string
	}{
		{"the signing key", [][]byte{a.pem}, OutcomeVerified, a.fp, "signed by key " + a.fp},
		{"another key", [][]byte{b.pem}, OutcomeSignatureInvalid, "", b.fp},
		{"any one of several keys", [][]byte{b.pem, a.pem}, OutcomeVerified, a.fp, a.fp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: tc.keys, IgnoreTlog: true}, e.registry())
			wantOutcome(t, r, tc.want)
			if r.Signer != tc.wantSigner {
				t.Errorf("Signer = %q, want %q", r.Signer, tc.wantSigner)
			}
			if !strings.Contains(r.Message, tc.wantInMsg) {
				t.Errorf("message %q does not name %q", r.Message, tc.wantInMsg)
			}
		})
	}
}

func TestVerifyChecksThatThePayloadNamesTheImage(t *testing.T) {
	e := newVerifyEnv(t)
	img := e.push("base/copied", "a")
	other := e.push("base/copied", "b")
	a := newVerifyKey(t)
	// A valid signature by a trusted key, but over a payload naming another
	// digest, stored as this image's signature.
	e.sign(img, other, a.signer, nil, nil)

	r := mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeSignatureInvalid)
}

func TestVerifyRequiresTlogEntryUnlessIgnored(t *testing.T) {
	e := newVerifyEnv(t)
	img := e.push("base/tlog", "a")
	a := newVerifyKey(t)
	e.sign(img, img, a.signer, nil, nil)
	rootJSON := newVerifyCA(t).trustedRoot(t)

	r := mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{a.pem}, TrustedRoot: rootJSON}, e.registry())
	wantOutcome(t, r, OutcomeSignatureInvalid)

	r = mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{a.pem}, TrustedRoot: rootJSON, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeVerified)
}

func TestVerifyKeyless(t *testing.T) {
	e := newVerifyEnv(t)
	ca := newVerifyCA(t)
	rootJSON := ca.trustedRoot(t)

	img := e.push("base/keyless", "a")
	signer, certPEM, chainPEM := ca.issue(t, verifySubject, verifyIssuer)
	e.sign(img, img, signer, certPEM, chainPEM)

	foreign := e.push("base/keyless", "b")
	fsigner, fcert, fchain := newVerifyCA(t).issue(t, verifySubject, verifyIssuer)
	e.sign(foreign, foreign, fsigner, fcert, fchain)

	identity := verifySubject + " from " + verifyIssuer
	for _, tc := range []struct {
		name       string
		image      name.Digest
		ids        []Identity
		ignoreSCT  bool
		want       Outcome
		wantSigner string
		wantInMsg  string
	}{
		{"matching identity", img, []Identity{{Issuer: verifyIssuer, Subject: verifySubject}}, true, OutcomeVerified, identity, identity},
		{"matching regular expressions", img, []Identity{{IssuerRegExp: `^https://issuer\.example$`, SubjectRegExp: `@example\.com$`}}, true, OutcomeVerified, identity, identity},
		{"one of several identities", img, []Identity{{Issuer: verifyIssuer, Subject: "other@example.com"}, {Issuer: verifyIssuer, Subject: verifySubject}}, true, OutcomeVerified, identity, identity},
		{"other subject", img, []Identity{{Issuer: verifyIssuer, Subject: "other@example.com"}}, true, OutcomeUntrustedIdentity, "", identity},
		{"other issuer", img, []Identity{{Issuer: "https://other.example", Subject: verifySubject}}, true, OutcomeUntrustedIdentity, "", identity},
		{"certificate from another authority", foreign, []Identity{{Issuer: verifyIssuer, Subject: verifySubject}}, true, OutcomeSignatureInvalid, "", "trusted identities"},
		{"no certificate timestamp when required", img, []Identity{{Issuer: verifyIssuer, Subject: verifySubject}}, false, OutcomeSignatureInvalid, "", "trusted identities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trust := Trust{Identities: tc.ids, TrustedRoot: rootJSON, IgnoreTlog: true, IgnoreSCT: tc.ignoreSCT}
			r := mustVerify(t, NewVerifier(VerifierOptions{}), tc.image, trust, e.registry())
			wantOutcome(t, r, tc.want)
			if r.Signer != tc.wantSigner {
				t.Errorf("Signer = %q, want %q", r.Signer, tc.wantSigner)
			}
			if !strings.Contains(r.Message, tc.wantInMsg) {
				t.Errorf("message %q does not name %q", r.Message, tc.wantInMsg)
			}
		})
	}
}

func TestVerifyKeysAndIdentitiesTogether(t *testing.T) {
	e := newVerifyEnv(t)
	ca := newVerifyCA(t)
	a := newVerifyKey(t)
	img := e.push("base/both", "a")
	signer, certPEM, chainPEM := ca.issue(t, verifySubject, verifyIssuer)
	e.sign(img, img, signer, certPEM, chainPEM)

	trust := Trust{
		Keys:        [][]byte{a.pem},
		Identities:  []Identity{{Issuer: verifyIssuer, Subject: verifySubject}},
		TrustedRoot: ca.trustedRoot(t),
		IgnoreTlog:  true, IgnoreSCT: true,
	}
	r := mustVerify(t, NewVerifier(VerifierOptions{}), img, trust, e.registry())
	wantOutcome(t, r, OutcomeVerified)
}

// verifyClock is a settable clock.
type verifyClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *verifyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *verifyClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestVerifyCachesVerdicts(t *testing.T) {
	e := newVerifyEnv(t)
	a, b := newVerifyKey(t), newVerifyKey(t)
	signed := e.push("base/cached", "a")
	e.sign(signed, signed, a.signer, nil, nil)
	unsigned := e.push("base/cached", "b")

	clock := &verifyClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := NewVerifier(VerifierOptions{Now: clock.Now, VerifiedTTL: time.Hour, UnverifiedTTL: time.Minute})
	trustA := Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}

	first := mustVerify(t, v, signed, trustA, e.registry())
	wantOutcome(t, first, OutcomeVerified)
	if e.reg.Requests() == 0 {
		t.Fatal("the first verification made no registry request")
	}

	e.reg.ResetCounts()
	again := mustVerify(t, v, signed, trustA, e.registry())
	if again != first {
		t.Errorf("cached verdict %+v differs from %+v", again, first)
	}
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("a cached verification made %d registry requests, want 0", n)
	}

	// Other trust, other verdict: not served from the cache.
	r := mustVerify(t, v, signed, Trust{Keys: [][]byte{b.pem}, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeSignatureInvalid)
	if e.reg.Requests() == 0 {
		t.Error("a verification under another trust was served from the cache")
	}

	// A missing signature is reread after UnverifiedTTL: the publisher may
	// have signed meanwhile.
	wantOutcome(t, mustVerify(t, v, unsigned, trustA, e.registry()), OutcomeSignatureMissing)
	e.sign(unsigned, unsigned, a.signer, nil, nil)
	e.reg.ResetCounts()
	wantOutcome(t, mustVerify(t, v, unsigned, trustA, e.registry()), OutcomeSignatureMissing)
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("a cached missing signature made %d registry requests, want 0", n)
	}
	clock.Advance(time.Minute)
	wantOutcome(t, mustVerify(t, v, unsigned, trustA, e.registry()), OutcomeVerified)

	// A verified verdict lasts VerifiedTTL.
	e.reg.ResetCounts()
	clock.Advance(59 * time.Minute)
	mustVerify(t, v, signed, trustA, e.registry())
	if n := e.reg.Requests(); n == 0 {
		t.Error("a verified verdict was reused after VerifiedTTL")
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	e := newVerifyEnv(t)
	a := newVerifyKey(t)
	trust := Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}
	v := NewVerifier(VerifierOptions{CacheSize: 2})
	var images []name.Digest
	for i := range 3 {
		images = append(images, e.push("base/bounded", fmt.Sprint(i)))
	}
	for _, img := range images {
		mustVerify(t, v, img, trust, e.registry())
	}
	if n := v.cache.len(); n != 2 {
		t.Fatalf("cache holds %d verdicts, want 2", n)
	}
	e.reg.ResetCounts()
	mustVerify(t, v, images[2], trust, e.registry())
	if n := e.reg.Requests(); n != 0 {
		t.Errorf("the most recent verdict was evicted (%d requests)", n)
	}
	mustVerify(t, v, images[0], trust, e.registry())
	if n := e.reg.Requests(); n == 0 {
		t.Error("the oldest verdict was kept beyond the cache size")
	}
}

func TestVerifyRegistryFailureIsAnErrorAndNotCached(t *testing.T) {
	e := newVerifyEnv(t)
	a := newVerifyKey(t)
	img := e.push("base/flaky", "a")
	e.sign(img, img, a.signer, nil, nil)
	trust := Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}
	v := NewVerifier(VerifierOptions{})

	for _, tc := range []struct {
		name, prefix string
		status       int
	}{
		{"signature manifest 503", sigTagPath(img), http.StatusServiceUnavailable},
		{"signature blob 500", "/v2/base/flaky/blobs/", http.StatusInternalServerError},
		{"signature manifest 401", sigTagPath(img), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.reg.FailWith(tc.prefix, tc.status, -1)
			r, err := v.Verify(context.Background(), img, trust, e.registry())
			e.reg.ClearFaults()
			if err == nil {
				t.Fatalf("Verify gave %+v, want an error", r)
			}
			if errors.Is(err, ErrInvalidTrust) {
				t.Errorf("a registry failure is reported as invalid trust: %v", err)
			}
			wantOutcome(t, mustVerify(t, v, img, trust, e.registry()), OutcomeVerified)
			v.cache = newResultCache(4096)
		})
	}
}

func TestVerifyRefusesUnusableTrustBeforeReadingTheRegistry(t *testing.T) {
	e := newVerifyEnv(t)
	img := e.push("base/trust", "a")
	a := newVerifyKey(t)
	rootJSON := newVerifyCA(t).trustedRoot(t)
	id := Identity{Issuer: verifyIssuer, Subject: verifySubject}

	for _, tc := range []struct {
		name   string
		trust  Trust
		noRoot bool
	}{
		{"nothing trusted", Trust{IgnoreTlog: true}, false},
		{"not a PEM key", Trust{Keys: [][]byte{[]byte("ssh-ed25519 AAAA")}, IgnoreTlog: true}, false},
		{"identities without a trusted root", Trust{Identities: []Identity{id}, IgnoreTlog: true, IgnoreSCT: true}, true},
		{"transparency log without a trusted root", Trust{Keys: [][]byte{a.pem}}, true},
		{"not a trusted root", Trust{Keys: [][]byte{a.pem}, TrustedRoot: []byte(`{"mediaType":"nope"}`)}, false},
		{"identity without subject", Trust{Identities: []Identity{{Issuer: verifyIssuer}}, TrustedRoot: rootJSON, IgnoreTlog: true}, false},
		{"identity without issuer", Trust{Identities: []Identity{{Subject: verifySubject}}, TrustedRoot: rootJSON, IgnoreTlog: true}, false},
		{"bad regular expression", Trust{Identities: []Identity{{Issuer: verifyIssuer, SubjectRegExp: "("}}, TrustedRoot: rootJSON, IgnoreTlog: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.reg.ResetCounts()
			_, err := NewVerifier(VerifierOptions{}).Verify(context.Background(), img, tc.trust, e.registry())
			if !errors.Is(err, ErrInvalidTrust) {
				t.Fatalf("error %v, want one wrapping ErrInvalidTrust", err)
			}
			if errors.Is(err, ErrNoTrustedRoot) != tc.noRoot {
				t.Errorf("errors.Is(%v, ErrNoTrustedRoot) = %v", err, !tc.noRoot)
			}
			if tc.trust.Validate() == nil {
				t.Error("Validate accepts the trust Verify refuses")
			}
			if n := e.reg.Requests(); n != 0 {
				t.Errorf("%d registry requests for an unusable trust", n)
			}
		})
	}
}

// servingSignatureManifest answers requests for cosign signature manifests
// with body, whatever was pushed.
func servingSignatureManifest(body []byte) registrytest.Option {
	return registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, ".sig") && strings.Contains(req.URL.Path, "/manifests/") {
				w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				if req.Method == http.MethodGet {
					_, _ = w.Write(body)
				}
				return
			}
			next.ServeHTTP(w, req)
		})
	})
}

// manifestWithLayers is an OCI manifest with n signature layers whose blobs
// do not exist.
func manifestWithLayers(n int, annotated bool) []byte {
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: string(types.OCIManifestSchema1)}
	m.Config = desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: "sha256:" + strings.Repeat("0", 64), Size: 2}
	for i := range n {
		d := desc{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: fmt.Sprintf("sha256:%064x", i+1), Size: 250}
		if annotated {
			d.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="}
		}
		m.Layers = append(m.Layers, d)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVerifyMalformedSignatureManifestIsInvalid(t *testing.T) {
	a := newVerifyKey(t)
	trust := Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}
	huge := manifestWithLayers(1, true)
	huge = append(huge[:len(huge)-1], []byte(`,"padding":"`+strings.Repeat("x", 4<<20)+`"}`)...)
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte("{this is not a manifest")},
		{"truncated JSON", manifestWithLayers(2, true)[:100]},
		{"wrong shape", []byte(`{"schemaVersion":2,"layers":"none"}`)},
		{"layers without blobs", manifestWithLayers(2, true)},
		{"layers without signature annotations", manifestWithLayers(2, false)},
		{"oversized layer", bytesReplace(manifestWithLayers(1, true), `"size":250`, `"size":1073741824`)},
		{"more signatures than checked", manifestWithLayers(maxSignatures+1, true)},
		{"more layers than cosign reads", manifestWithLayers(1001, true)},
		{"large manifest", huge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newVerifyEnv(t, servingSignatureManifest(tc.body))
			img := e.push("base/malformed", "a")
			r := mustVerify(t, NewVerifier(VerifierOptions{}), img, trust, e.registry())
			wantOutcome(t, r, OutcomeSignatureInvalid)
		})
	}
}

func bytesReplace(b []byte, old, new string) []byte {
	return []byte(strings.Replace(string(b), old, new, 1))
}

func TestTrustHash(t *testing.T) {
	a, b := newVerifyKey(t), newVerifyKey(t)
	id1 := Identity{Issuer: verifyIssuer, Subject: verifySubject}
	id2 := Identity{Issuer: verifyIssuer, SubjectRegExp: ".*"}
	base := Trust{Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`), IgnoreTlog: true}
	h := base.Hash()
	if !strings.HasPrefix(h, "sha256:") {
		t.Fatalf("Hash() = %q", h)
	}

	same := map[string]Trust{
		"keys reordered":       {Keys: [][]byte{b.pem, a.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"identities reordered": {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id2, id1}, TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"key repeated":         {Keys: [][]byte{a.pem, b.pem, a.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"PEM laid out otherwise": {Keys: [][]byte{append([]byte("\n"), a.pem...), b.pem}, Identities: []Identity{id1, id2},
			TrustedRoot: []byte(`{}`), IgnoreTlog: true},
	}
	for name, tr := range same {
		if got := tr.Hash(); got != h {
			t.Errorf("%s: hash changed", name)
		}
	}
	different := map[string]Trust{
		"a key less":       {Keys: [][]byte{a.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"an identity less": {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1}, TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"exact subject as regexp": {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{{Issuer: verifyIssuer, SubjectRegExp: verifySubject}, id2},
			TrustedRoot: []byte(`{}`), IgnoreTlog: true},
		"other root":   {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{ }`), IgnoreTlog: true},
		"no root":      {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1, id2}, IgnoreTlog: true},
		"tlog checked": {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`)},
		"SCT ignored":  {Keys: [][]byte{a.pem, b.pem}, Identities: []Identity{id1, id2}, TrustedRoot: []byte(`{}`), IgnoreTlog: true, IgnoreSCT: true},
	}
	for name, tr := range different {
		if tr.Hash() == h {
			t.Errorf("%s: hash unchanged", name)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	e := newVerifyEnv(b)
	k := newVerifyKey(b)
	img := e.push("base/bench", "a")
	e.sign(img, img, k.signer, nil, nil)
	trust := Trust{Keys: [][]byte{k.pem}, IgnoreTlog: true}
	v := NewVerifier(VerifierOptions{})
	if _, err := v.Verify(context.Background(), img, trust, e.registry()); err != nil {
		b.Fatal(err)
	}
	reg := e.registry()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), img, trust, reg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCold(b *testing.B) {
	e := newVerifyEnv(b)
	k := newVerifyKey(b)
	img := e.push("base/bench", "a")
	e.sign(img, img, k.signer, nil, nil)
	trust := Trust{Keys: [][]byte{k.pem}, IgnoreTlog: true}
	reg := e.registry()
	b.ResetTimer()
	for b.Loop() {
		r, err := NewVerifier(VerifierOptions{}).Verify(context.Background(), img, trust, reg)
		if err != nil || r.Outcome != OutcomeVerified {
			b.Fatal(r, err)
		}
	}
}

func TestVerifyMessagesAreStable(t *testing.T) {
	e := newVerifyEnv(t)
	ca := newVerifyCA(t)
	a, b := newVerifyKey(t), newVerifyKey(t)
	keyed := e.push("base/stable", "a")
	e.sign(keyed, keyed, a.signer, nil, nil)
	keyless := e.push("base/stable", "b")
	signer, certPEM, chainPEM := ca.issue(t, verifySubject, verifyIssuer)
	e.sign(keyless, keyless, signer, certPEM, chainPEM)
	rootJSON := ca.trustedRoot(t)

	for _, tc := range []struct {
		image name.Digest
		trust Trust
	}{
		{keyed, Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}},
		{keyed, Trust{Keys: [][]byte{b.pem}, IgnoreTlog: true}},
		{keyless, Trust{Identities: []Identity{{Issuer: verifyIssuer, Subject: "x@example.com"}}, TrustedRoot: rootJSON, IgnoreTlog: true, IgnoreSCT: true}},
	} {
		first := mustVerify(t, NewVerifier(VerifierOptions{}), tc.image, tc.trust, e.registry())
		second := mustVerify(t, NewVerifier(VerifierOptions{}), tc.image, tc.trust, e.registry())
		if first != second {
			t.Errorf("two verifications differ: %+v and %+v", first, second)
		}
	}
}

func TestVerifyConcurrentCallsShareOneCheck(t *testing.T) {
	// The first read of a signature manifest waits until released, so that
	// the other callers arrive while the first check is under way.
	release := make(chan struct{})
	var armed atomic.Bool
	var first sync.Once
	gate := registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if armed.Load() && strings.HasSuffix(req.URL.Path, ".sig") && req.Method == http.MethodGet {
				first.Do(func() { <-release })
			}
			next.ServeHTTP(w, req)
		})
	})
	e := newVerifyEnv(t, gate)
	a := newVerifyKey(t)
	img := e.push("base/concurrent", "a")
	e.sign(img, img, a.signer, nil, nil)
	trust := Trust{Keys: [][]byte{a.pem}, IgnoreTlog: true}
	e.reg.ResetCounts()
	armed.Store(true)

	v := NewVerifier(VerifierOptions{})
	var wg sync.WaitGroup
	results := make([]Result, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = v.Verify(context.Background(), img, trust, e.registry())
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i].Outcome != OutcomeVerified {
			t.Errorf("call %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if n := e.reg.ManifestRequests("base/concurrent"); n != 1 {
		t.Errorf("8 concurrent verifications read the signature manifest %d times, want 1", n)
	}
}
