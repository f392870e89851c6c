package sign

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plinth-dev/plinth/test/tufrepo"
)

// publicRootEnv is a TUF repository on loopback whose trusted_root.json
// lists a test certificate authority, and a clock for PublicRoot.
type publicRootEnv struct {
	repo     *tufrepo.Repo
	ca       *verifyCA
	rootJSON []byte
	clock    *verifyClock
}

func newPublicRootEnv(t *testing.T) *publicRootEnv {
	t.Helper()
	offline(t)
	ca := newVerifyCA(t)
	rootJSON := ca.trustedRoot(t)
	return &publicRootEnv{
		repo:     tufrepo.New(t, map[string][]byte{"trusted_root.json": rootJSON}),
		ca:       ca,
		rootJSON: rootJSON,
		clock:    &verifyClock{now: time.Now()},
	}
}

func (e *publicRootEnv) publicRoot(t *testing.T, cacheDir string) *PublicRoot {
	t.Helper()
	p, err := NewPublicRoot(PublicRootOptions{Mirror: e.repo.URL, Root: e.repo.Root, CacheDir: cacheDir, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The trusted root comes from the TUF repository, verified, and serves
// keyless verification with no trusted root of its own; it is fetched
// again only when it is due.
func TestPublicRootFetchesTheTrustedRootWithTUF(t *testing.T) {
	e := newPublicRootEnv(t)
	p := e.publicRoot(t, t.TempDir())
	got, err := p.TrustedRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, e.rootJSON) {
		t.Fatalf("trusted root %s, want the repository's target", got)
	}

	// A keyless signature from the authority that root lists verifies.
	v := newVerifyEnv(t)
	img := v.push("base/public", "a")
	signer, cert, chain := e.ca.issue(t, verifySubject, verifyIssuer)
	v.sign(img, img, signer, cert, chain)
	trust := Trust{Identities: []Identity{{Issuer: verifyIssuer, Subject: verifySubject}}, TrustedRoot: got, IgnoreTlog: true, IgnoreSCT: true}
	wantOutcome(t, mustVerify(t, NewVerifier(VerifierOptions{}), img, trust, v.registry()), OutcomeVerified)

	n := e.repo.Requests()
	if _, err := p.TrustedRoot(context.Background()); err != nil || e.repo.Requests() != n {
		t.Errorf("a fresh trusted root was fetched again (%d requests, error %v)", e.repo.Requests()-n, err)
	}
	e.clock.Advance(25 * time.Hour)
	if _, err := p.TrustedRoot(context.Background()); err != nil || e.repo.Requests() == n {
		t.Errorf("a day-old trusted root was not refreshed (error %v)", err)
	}
}

// A mirror that cannot be reached gives an error that wraps
// ErrPublicRootUnavailable, and is left alone for a while; once a root was
// fetched, a failed refresh keeps it; a restart finds it in the cache.
func TestPublicRootWhenTheMirrorIsDown(t *testing.T) {
	e := newPublicRootEnv(t)
	e.repo.SetDown(true)
	cache := t.TempDir()
	p := e.publicRoot(t, cache)
	if _, err := p.TrustedRoot(context.Background()); !errors.Is(err, ErrPublicRootUnavailable) {
		t.Fatalf("error %v, want ErrPublicRootUnavailable", err)
	}
	n := e.repo.Requests()
	if _, err := p.TrustedRoot(context.Background()); !errors.Is(err, ErrPublicRootUnavailable) || e.repo.Requests() != n {
		t.Errorf("asked the mirror again at once (%d requests, error %v)", e.repo.Requests()-n, err)
	}

	e.repo.SetDown(false)
	e.clock.Advance(2 * time.Minute)
	got, err := p.TrustedRoot(context.Background())
	if err != nil || !bytes.Equal(got, e.rootJSON) {
		t.Fatalf("after the mirror came back: %v", err)
	}

	e.repo.SetDown(true)
	e.clock.Advance(25 * time.Hour)
	if got, err := p.TrustedRoot(context.Background()); err != nil || !bytes.Equal(got, e.rootJSON) {
		t.Errorf("a failed refresh lost the last trusted root: %v", err)
	}
	restarted := e.publicRoot(t, cache)
	if got, err := restarted.TrustedRoot(context.Background()); err != nil || !bytes.Equal(got, e.rootJSON) {
		t.Errorf("a restart with the mirror down did not use the cache: %v", err)
	}
}

// A target that does not match the signed metadata is refused.
func TestPublicRootRefusesATamperedTarget(t *testing.T) {
	e := newPublicRootEnv(t)
	e.repo.SetTampered(true)
	if _, err := e.publicRoot(t, "").TrustedRoot(context.Background()); !errors.Is(err, ErrPublicRootUnavailable) {
		t.Fatalf("error %v, want ErrPublicRootUnavailable", err)
	}
	e.repo.SetTampered(false)
	if got, err := e.publicRoot(t, "").TrustedRoot(context.Background()); err != nil || !bytes.Equal(got, e.rootJSON) {
		t.Fatalf("the untampered target, without a cache: %v", err)
	}
}

// A repository signed by another TUF root is refused.
func TestPublicRootRefusesAnotherTUFRoot(t *testing.T) {
	e := newPublicRootEnv(t)
	other := tufrepo.New(t, map[string][]byte{"trusted_root.json": e.rootJSON})
	p, err := NewPublicRoot(PublicRootOptions{Mirror: e.repo.URL, Root: other.Root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.TrustedRoot(context.Background()); !errors.Is(err, ErrPublicRootUnavailable) {
		t.Fatalf("error %v, want ErrPublicRootUnavailable", err)
	}
}

func TestPublicRootOfflineAndBadOptions(t *testing.T) {
	p, err := NewPublicRoot(PublicRootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.TrustedRoot(context.Background()); !errors.Is(err, ErrPublicRootOffline) {
		t.Errorf("offline: error %v, want ErrPublicRootOffline", err)
	}
	for _, o := range []PublicRootOptions{
		{Mirror: "tuf-repo-cdn.sigstore.dev"},
		{Mirror: "ftp://mirror.example"},
		{Mirror: DefaultTUFMirror, Root: []byte("not json")},
	} {
		if _, err := NewPublicRoot(o); err == nil {
			t.Errorf("NewPublicRoot(%+v) accepted", o)
		}
	}
}
