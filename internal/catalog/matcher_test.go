package catalog_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// fixture is a registry holding a catalog base in two versions, an
// unrelated base, and apps built on them.
type fixture struct {
	reg        *registrytest.Registry
	client     *registry.Client
	python     string // repository of the catalog base
	oldBase    string // an older digest of the python entry
	newBase    string // its approved digest
	otherBase  string // a base not in the catalog
	goBase     string // approved digest of a second entry
	appNew     string // app FROM newBase
	appOld     string // app FROM oldBase
	appOther   string // app FROM otherBase
	appAnnot   string // app whose annotation names newBase, with unrelated layers
	appForeign string // app whose annotation names a base not in the catalog
	appIndex   string // index whose arm64 image is FROM newBase
}

func image(t *testing.T, files map[string]string, arch string) v1.Image {
	t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Files: files, Architecture: arch})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// from builds an app image on base by appending layers, as docker build does.
func from(t *testing.T, base v1.Image, content ...string) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, c := range content {
		layers = append(layers, static.NewLayer([]byte(c), types.OCILayer))
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	d, err := imagetest.PushImage(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg := registrytest.New(t)
	f := &fixture{reg: reg, python: reg.Host + "/base/python"}
	f.client = registry.New(registry.Options{Transport: reg.Transport(), RetryBackoff: 10 * time.Millisecond})

	old := image(t, map[string]string{"/etc/os-release": "ID=alpine\nVERSION_ID=3.21.0\n"}, "")
	newer := from(t, image(t, map[string]string{"/etc/os-release": "ID=alpine\nVERSION_ID=3.22.0\n"}, ""), "python 3.13.1")
	older := from(t, old, "python 3.13.0")
	other := image(t, map[string]string{"/etc/os-release": "ID=debian\n"}, "")
	gobase := image(t, map[string]string{"/usr/local/go/VERSION": "go1.26"}, "")

	f.oldBase = push(t, f.python+":old", older)
	f.newBase = push(t, f.python+":3.13", newer)
	f.otherBase = push(t, reg.Host+"/vendor/python:3.13", other)
	f.goBase = push(t, reg.Host+"/base/golang:1.26", gobase)
	f.appNew = push(t, reg.Host+"/apps/web:new", from(t, newer, "app", "config"))
	f.appOld = push(t, reg.Host+"/apps/web:old", from(t, older, "app", "config"))
	f.appOther = push(t, reg.Host+"/apps/web:other", from(t, other, "app"))
	f.appAnnot = push(t, reg.Host+"/apps/web:annot", mutate.Annotations(from(t, other, "annotated"),
		map[string]string{imagetest.AnnotationBaseDigest: f.newBase, imagetest.AnnotationBaseName: f.python + ":3.13"}).(v1.Image))
	f.appForeign = push(t, reg.Host+"/apps/web:foreign", mutate.Annotations(from(t, other, "foreign"),
		map[string]string{imagetest.AnnotationBaseDigest: f.otherBase, imagetest.AnnotationBaseName: reg.Host + "/vendor/python:3.13"}).(v1.Image))

	amd := image(t, map[string]string{"/app": "amd64 build"}, "amd64")
	arm := from(t, newerArm(t), "arm app")
	idx, err := imagetest.Index([]v1.Image{amd, arm}, true)
	if err != nil {
		t.Fatal(err)
	}
	f.appIndex, err = imagetest.PushIndex(context.Background(), reg.Host+"/apps/multi:1", idx)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newerArm is an arm64 base pushed as a second catalog entry's digest.
func newerArm(t *testing.T) v1.Image {
	return image(t, map[string]string{"/etc/os-release": "ID=alpine\nARCH=arm64\n"}, "arm64")
}

func baseImage(ns, n, img, approved, resolved string, history ...string) catalogv1.BaseImage {
	bi := catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}
	bi.Spec.Image = catalogv1.ImageReference(img)
	bi.Status.ApprovedDigest = approved
	bi.Status.ResolvedDigest = resolved
	for _, h := range history {
		bi.Status.History = append(bi.Status.History, catalogv1.DigestRecord{Digest: h})
	}
	return bi
}

// catalog returns the fixture's catalog: python (approved newBase, history
// oldBase), golang (approved), and the arm64 base of the index app.
func (f *fixture) catalog(t *testing.T) []catalogv1.BaseImage {
	armDigest := push(t, f.reg.Host+"/base/alpine-arm:3.22", newerArm(t))
	return []catalogv1.BaseImage{
		baseImage("platform", "python", f.python+":3.13", f.newBase, f.newBase, f.newBase, f.oldBase),
		baseImage("platform", "golang", f.reg.Host+"/base/golang:1.26", f.goBase, f.goBase, f.goBase),
		baseImage("platform", "alpine-arm", f.reg.Host+"/base/alpine-arm:3.22", armDigest, armDigest),
	}
}

func (f *fixture) matcher(t *testing.T, ix *catalog.Index, o catalog.Options) *catalog.Matcher {
	t.Helper()
	if o.Client == nil {
		o.Client = f.client
	}
	m, err := catalog.NewMatcher(ix, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func match(t *testing.T, m *catalog.Matcher, image, digest string) catalog.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := m.Match(ctx, image, digest)
	if err != nil {
		t.Fatalf("Match(%s): %v", image, err)
	}
	return res
}

var python = ktypes.NamespacedName{Namespace: "platform", Name: "python"}

func TestMatchClassifiesImages(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})
	h := f.reg.Host

	tests := []struct {
		name   string
		image  string
		class  catalog.Class
		method catalog.Method
		entry  ktypes.NamespacedName
		base   string
		alts   bool
	}{
		{"approved digest", f.python + "@" + f.newBase, catalog.Approved, catalog.MethodDigest, python, f.newBase, false},
		{"history digest", f.python + "@" + f.oldBase, catalog.Superseded, catalog.MethodDigest, python, f.oldBase, true},
		{"tag of the approved digest", f.python + ":3.13", catalog.Approved, catalog.MethodDigest, python, f.newBase, false},
		{"FROM the approved base", h + "/apps/web:new", catalog.Approved, catalog.MethodLayerChain, python, f.newBase, false},
		{"FROM an older digest", h + "/apps/web@" + f.appOld, catalog.Superseded, catalog.MethodLayerChain, python, f.oldBase, true},
		{"FROM an unrelated base", h + "/apps/web@" + f.appOther, catalog.Unapproved, "", ktypes.NamespacedName{}, "", true},
		{"base annotation", h + "/apps/web@" + f.appAnnot, catalog.Approved, catalog.MethodAnnotation, python, f.newBase, false},
		{"annotation of a base not in the catalog", h + "/apps/web@" + f.appForeign, catalog.Unapproved, catalog.MethodAnnotation, ktypes.NamespacedName{}, f.otherBase, true},
		{"index with one platform FROM a catalog base", h + "/apps/multi:1", catalog.Approved, catalog.MethodLayerChain, ktypes.NamespacedName{Namespace: "platform", Name: "alpine-arm"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := match(t, m, tt.image, "")
			if res.Class != tt.class || res.Method != tt.method || res.BaseImage != tt.entry {
				t.Fatalf("got %s by %q on %s (%s), want %s by %q on %s", res.Class, res.Method, res.BaseImage, res.Reason, tt.class, tt.method, tt.entry)
			}
			if tt.base != "" && res.BaseDigest != tt.base {
				t.Errorf("base digest %s, want %s", res.BaseDigest, tt.base)
			}
			if tt.alts != (len(res.Alternatives) > 0) {
				t.Errorf("alternatives %v, want some: %v", res.Alternatives, tt.alts)
			}
			if res.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestMatchAlternativesPreferTheSameBase(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})

	// An app on vendor/python is offered base/python first.
	res := match(t, m, f.reg.Host+"/apps/web@"+f.appForeign, "")
	if len(res.Alternatives) == 0 || res.Alternatives[0].BaseImage != python {
		t.Fatalf("alternatives %+v, want python first", res.Alternatives)
	}
	if got, want := res.Alternatives[0].Reference, f.python+":3.13@"+f.newBase; got != want {
		t.Errorf("reference %s, want %s", got, want)
	}
	if len(res.Alternatives) != 3 {
		t.Errorf("%d alternatives, want the 3 approved entries", len(res.Alternatives))
	}
	// A superseded digest is offered its own entry's approved digest.
	res = match(t, m, f.reg.Host+"/apps/web:old", "")
	if res.Alternatives[0].BaseImage != python {
		t.Errorf("alternatives %+v, want python first", res.Alternatives)
	}
}

func TestMatchAnnotatedDigestUnknownToTheCatalog(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	// The catalog has not recorded newBase yet: only the older digest.
	ix.Update([]catalogv1.BaseImage{baseImage("platform", "python", f.python+":3.13", f.oldBase, f.oldBase, f.oldBase)})
	res := match(t, f.matcher(t, ix, catalog.Options{}), f.reg.Host+"/apps/web@"+f.appAnnot, "")
	if res.Class != catalog.Unapproved || res.Method != catalog.MethodAnnotation || res.BaseDigest != f.newBase {
		t.Fatalf("got %s by %q on %s, want Unapproved by Annotation on %s", res.Class, res.Method, res.BaseDigest, f.newBase)
	}
	if !strings.Contains(res.Reason, python.String()) || res.BaseName != f.python+":3.13" {
		t.Errorf("reason %q, base name %q: want the entry of the annotated repository named", res.Reason, res.BaseName)
	}
}

func TestMatchLongestChainWins(t *testing.T) {
	f := newFixture(t)
	// python is built on alpine: an app on python starts with both chains.
	alpine := push(t, f.reg.Host+"/base/alpine:3.22", image(t, map[string]string{"/etc/os-release": "ID=alpine\nVERSION_ID=3.22.0\n"}, ""))
	bis := append(f.catalog(t), baseImage("platform", "alpine", f.reg.Host+"/base/alpine:3.22", alpine, alpine))
	ix := catalog.NewIndex()
	ix.Update(bis)
	m := f.matcher(t, ix, catalog.Options{})
	if res := match(t, m, f.reg.Host+"/apps/web:new", ""); res.BaseImage != python || res.BaseDigest != f.newBase {
		t.Errorf("app on python matched %s@%s, want python, the longer chain", res.BaseImage, res.BaseDigest)
	}
	app := push(t, f.reg.Host+"/apps/web:on-alpine", from(t, image(t, map[string]string{"/etc/os-release": "ID=alpine\nVERSION_ID=3.22.0\n"}, ""), "app"))
	if res := match(t, m, f.reg.Host+"/apps/web@"+app, ""); res.BaseImage.Name != "alpine" || res.Method != catalog.MethodLayerChain {
		t.Errorf("app on alpine matched %s by %s, want alpine by LayerChain", res.BaseImage, res.Method)
	}
}

func TestMatchAtMostFiveAlternatives(t *testing.T) {
	f := newFixture(t)
	var bis []catalogv1.BaseImage
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		bis = append(bis, baseImage("ns", n, f.reg.Host+"/base/"+n+":1", f.goBase, f.goBase))
	}
	ix := catalog.NewIndex()
	ix.Update(bis)
	res := match(t, f.matcher(t, ix, catalog.Options{}), f.reg.Host+"/apps/web@"+f.appOther, "")
	if res.Class != catalog.Unapproved || len(res.Alternatives) != catalog.MaxAlternatives {
		t.Fatalf("got %s with %d alternatives, want Unapproved with %d", res.Class, len(res.Alternatives), catalog.MaxAlternatives)
	}
}

func TestMatchResolvedDigestNotApprovedIsSuperseded(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	// The tag moved to newBase, which is not approved; oldBase still is.
	ix.Update([]catalogv1.BaseImage{baseImage("platform", "python", f.python+":3.13", f.oldBase, f.newBase, f.newBase, f.oldBase)})
	m := f.matcher(t, ix, catalog.Options{})
	res := match(t, m, f.reg.Host+"/apps/web:new", "")
	if res.Class != catalog.Superseded || res.BaseDigest != f.newBase {
		t.Fatalf("got %s on %s (%s), want Superseded on the resolved digest", res.Class, res.BaseDigest, res.Reason)
	}
	if !strings.Contains(res.Reason, "not approved") {
		t.Errorf("reason %q does not say the digest is not approved", res.Reason)
	}
	res = match(t, m, f.reg.Host+"/apps/web:old", "")
	if res.Class != catalog.Approved {
		t.Fatalf("got %s, want Approved on the approved older digest", res.Class)
	}
}

func TestMatchSeenDigestCostsNoRequest(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})
	image := f.reg.Host + "/apps/web@" + f.appNew
	first := match(t, m, image, "")
	if f.reg.Requests() == 0 {
		t.Fatal("the first match read nothing from the registry")
	}
	f.reg.ResetCounts()
	for range 3 {
		if res := match(t, m, image, ""); res.Class != first.Class || res.Method != first.Method {
			t.Fatalf("got %s by %s, then %s by %s", first.Class, first.Method, res.Class, res.Method)
		}
	}
	if n := f.reg.Requests(); n != 0 {
		t.Errorf("repeated matches of a seen digest made %d registry requests, want 0", n)
	}
}

func TestMatchCatalogDigestCostsNoRequest(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	f.reg.ResetCounts()
	res := match(t, f.matcher(t, ix, catalog.Options{}), "ignored.example.com/x/y:z", f.newBase)
	if res.Class != catalog.Approved || res.Method != catalog.MethodDigest {
		t.Fatalf("got %s by %s", res.Class, res.Method)
	}
	if n := f.reg.Requests(); n != 0 {
		t.Errorf("matching a catalog digest made %d registry requests, want 0", n)
	}
}

func TestMatchConcurrentNewDigestReadsOnce(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})
	match(t, m, f.reg.Host+"/apps/web@"+f.appOther, "") // reads the catalog's chains
	f.reg.ResetCounts()

	image := f.reg.Host + "/apps/web@" + f.appNew
	var wg sync.WaitGroup
	results := make([]catalog.Result, 200)
	for i := range results {
		wg.Go(func() { results[i] = match(t, m, image, "") })
	}
	wg.Wait()
	for i, r := range results {
		if r.Class != catalog.Approved {
			t.Fatalf("match %d: %s (%s)", i, r.Class, r.Reason)
		}
	}
	if n := f.reg.TotalManifestRequests(); n != 1 {
		t.Errorf("200 concurrent matches made %d manifest requests, want 1", n)
	}
}

func TestMatchTagResolvedOncePerTTL(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m := f.matcher(t, ix, catalog.Options{TagTTL: time.Minute, Now: clock})
	image := f.reg.Host + "/apps/web:new"
	match(t, m, image, "")
	f.reg.ResetCounts()
	match(t, m, image, "")
	if n := f.reg.Requests(); n != 0 {
		t.Errorf("a tag within its TTL made %d requests, want 0", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	match(t, m, image, "")
	if n := f.reg.ManifestRequests("apps/web"); n != 1 {
		t.Errorf("a tag past its TTL made %d manifest requests, want 1 (HEAD)", n)
	}
}

func TestMatchUnreachableRegistryIsUnknownByDeadline(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})

	// A registry that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, image := range []string{ln.Addr().String() + "/apps/web:1", ln.Addr().String() + "/apps/web@" + f.appNew} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		res, err := m.Match(ctx, image, "")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if res.Class != catalog.Unknown {
			t.Errorf("%s: got %s, want Unknown", image, res.Class)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: answered after %s, past the deadline", image, took)
		}
	}
}

func TestMatchUnreadableCatalogDigestIsUnknown(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})
	f.reg.FailWith("/v2/base/golang/manifests/", http.StatusInternalServerError, -1)
	res := match(t, m, f.reg.Host+"/apps/web@"+f.appOther, "")
	if res.Class != catalog.Unknown {
		t.Fatalf("got %s (%s), want Unknown while a catalog digest cannot be read", res.Class, res.Reason)
	}
	// An image on a readable base is still matched.
	if res := match(t, m, f.reg.Host+"/apps/web@"+f.appNew, ""); res.Class != catalog.Approved {
		t.Errorf("got %s, want Approved", res.Class)
	}
}

func TestMatchHistoryDigestGoneFromRegistry(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	gone := "sha256:" + strings.Repeat("ab", 32)
	ix.Update([]catalogv1.BaseImage{baseImage("platform", "python", f.python+":3.13", f.newBase, f.newBase, f.newBase, gone)})
	res := match(t, f.matcher(t, ix, catalog.Options{}), f.reg.Host+"/apps/web@"+f.appOther, "")
	if res.Class != catalog.Unapproved {
		t.Fatalf("got %s (%s), want Unapproved: a deleted history digest has no layers", res.Class, res.Reason)
	}
}

func TestMatchReferences(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	m := f.matcher(t, ix, catalog.Options{})
	ctx := context.Background()

	// A tag and a digest together: the digest counts.
	res, err := m.Match(ctx, f.python+":old@"+f.newBase, "")
	if err != nil || res.Class != catalog.Approved {
		t.Errorf("tag+digest: got %s, %v; want Approved", res.Class, err)
	}
	// A host written in capitals names the same catalog repository.
	if _, err := catalog.ParseImage("REGISTRY.example.com:5000/base/python:3.13"); err != nil {
		t.Errorf("upper-case host refused: %v", err)
	}
	for _, tt := range []struct{ image, digest, want string }{
		{"registry.example.com/Base/Python:3.13", "", "lower case"},
		{"", "", "empty"},
		{"registry.example.com/base/python:3.13", "sha256:nothex", "invalid digest"},
		{f.python + "@" + f.newBase, f.oldBase, "contradicts"},
	} {
		res, err := m.Match(ctx, tt.image, tt.digest)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Match(%q, %q): error %v, want one saying %q", tt.image, tt.digest, err, tt.want)
		}
		if res.Class != catalog.Unknown {
			t.Errorf("Match(%q, %q): class %s, want Unknown", tt.image, tt.digest, res.Class)
		}
	}
}

func TestIndexUpdateDelete(t *testing.T) {
	f := newFixture(t)
	ix := catalog.NewIndex()
	ix.Update(f.catalog(t))
	if e, d := ix.Len(); e != 3 || d != 4 {
		t.Fatalf("Len() = %d entries, %d digests; want 3, 4", e, d)
	}
	m := f.matcher(t, ix, catalog.Options{})
	if res := match(t, m, f.reg.Host+"/apps/web:new", ""); res.Class != catalog.Approved {
		t.Fatalf("got %s", res.Class)
	}
	ix.Delete(python)
	if res := match(t, m, f.reg.Host+"/apps/web:new", ""); res.Class != catalog.Unapproved {
		t.Fatalf("after Delete: got %s, want Unapproved", res.Class)
	}
	bi := baseImage("platform", "python", f.python+":3.13", f.newBase, f.newBase)
	ix.Upsert(&bi)
	if res := match(t, m, f.reg.Host+"/apps/web:new", ""); res.Class != catalog.Approved {
		t.Fatalf("after Upsert: got %s, want Approved", res.Class)
	}
	ix.Update(nil)
	if e, _ := ix.Len(); e != 0 {
		t.Fatalf("after Update(nil): %d entries", e)
	}
}

func TestIndexChangesOnlyWithItsDigests(t *testing.T) {
	ix := catalog.NewIndex()
	d1 := "sha256:" + strings.Repeat("1", 64)
	d2 := "sha256:" + strings.Repeat("2", 64)
	bi := baseImage("platform", "python", "example.com/base/python:3.13", d1, d1)
	changed, gen := ix.Changed(), ix.Generation()
	ix.Upsert(&bi)
	select {
	case <-changed:
	default:
		t.Fatal("adding an entry did not signal a change")
	}
	if ix.Generation() == gen {
		t.Fatal("adding an entry left the generation as it was")
	}

	// A status write that leaves the digests alone is no change.
	changed, gen = ix.Changed(), ix.Generation()
	same := bi.DeepCopy()
	same.Status.LastHandledReconcileAt = "now"
	ix.Upsert(same)
	select {
	case <-changed:
		t.Fatal("an entry with the same digests signalled a change")
	default:
	}
	if ix.Generation() != gen {
		t.Fatal("an entry with the same digests moved the generation")
	}

	// A new approved digest is one.
	newer := baseImage("platform", "python", "example.com/base/python:3.13", d2, d2, d2, d1)
	ix.Upsert(&newer)
	select {
	case <-changed:
	default:
		t.Fatal("a new approved digest did not signal a change")
	}
	if ix.Generation() == gen {
		t.Fatal("a new approved digest left the generation as it was")
	}
}
