package trivy

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// A private mirror behind TLS with a private CA and credentials serves both
// the DB and the images.
func TestPrivateMirrorWithCAAndCredentials(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithTLS(), registrytest.WithBasicAuth("scanner", "s3cret"))
	auth := &authn.Basic{Username: "scanner", Password: "s3cret"}
	push := []remote.Option{remote.WithTransport(reg.Transport()), remote.WithAuth(auth)}

	dir := t.TempDir()
	if _, err := vulndbtest.Build(dir, []vulndbtest.Advisory{muslCVE}, dbBuilt1); err != nil {
		t.Fatal(err)
	}
	dbRepo := reg.Host + "/mirror/trivy-db:2"
	if _, err := vulndbtest.Push(context.Background(), dbRepo, dir, vulndbtest.WithRemoteOptions(push...)); err != nil {
		t.Fatal(err)
	}
	img := alpine(t, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"})
	dg, err := imagetest.PushImage(context.Background(), reg.Host+"/base/alpine:3.22", img, push...)
	if err != nil {
		t.Fatal(err)
	}

	cache := t.TempDir()
	kc := staticKeychain{auth}
	db, err := NewDBManager(DBOptions{Repositories: []string{dbRepo}, CacheDir: cache, CAPool: reg.CertPool(), Keychain: kc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Update(context.Background()); err != nil {
		t.Fatalf("update from the TLS mirror: %v", err)
	}
	s, err := NewScanner(Options{DB: db, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Scan(context.Background(), scan.Request{
		Image:     mustDigest(t, reg.Host+"/base/alpine@"+dg),
		Keychain:  kc,
		Transport: reg.Transport(),
	})
	if err != nil {
		t.Fatalf("scan over TLS with credentials: %v", err)
	}
	if len(r.Findings) != 1 {
		t.Errorf("findings %+v, want the musl CVE", r.Findings)
	}

	// Without the CA the mirror is not trusted.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	untrusting, err := NewDBManager(DBOptions{Repositories: []string{dbRepo}, CacheDir: t.TempDir(), Keychain: kc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = untrusting.Close() })
	if _, err := untrusting.Update(context.Background()); err == nil {
		t.Error("update from a mirror with an untrusted certificate succeeded")
	}
}

// Run fetches the first DB at once, picks up new builds on its interval,
// and tells subscribers.
func TestRunPicksUpNewDB(t *testing.T) {
	e := newEnv(t, nil, func(o *DBOptions, _ *Options) { o.UpdateInterval = 50 * time.Millisecond })
	changes := e.db.Subscribe()
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.db.Run(ctx)

	first := waitVersion(t, changes)
	if first != e.db.Version() || !e.db.UpdatedAt().Equal(dbBuilt1) {
		t.Fatalf("first version %q, loaded %q at %v", first, e.db.Version(), e.db.UpdatedAt())
	}
	e.publishDB([]vulndbtest.Advisory{muslCVE}, dbBuilt2)
	second := waitVersion(t, changes)
	if second == first || !e.db.UpdatedAt().Equal(dbBuilt2) {
		t.Fatalf("second version %q (first %q), updated at %v", second, first, e.db.UpdatedAt())
	}
}

func waitVersion(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no DB version change within 10s")
		return ""
	}
}
