package check

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// world is a registry with an approved base, an app built FROM it, and an
// app built FROM a base the catalog does not have.
type world struct {
	reg                 *registrytest.Registry
	python, base        string // the catalog entry's image, and its approved digest
	appOK, appBad       string // app references
	dockerfile, catalog string // paths
}

func build(t *testing.T, base v1.Image, files map[string]string) v1.Image {
	t.Helper()
	layer, err := imagetest.Image(imagetest.ImageOptions{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := layer.Layers()
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	reg := registrytest.New(t)
	w := &world{reg: reg, python: reg.Host + "/base/python:3.13"}
	python, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"usr/bin/python3": "py"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.base, err = imagetest.PushImage(ctx, w.python, python); err != nil {
		t.Fatal(err)
	}
	other, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"usr/bin/node": "js"}})
	if err != nil {
		t.Fatal(err)
	}
	w.appOK, w.appBad = reg.Host+"/apps/shop:1", reg.Host+"/apps/cart:1"
	if _, err := imagetest.PushImage(ctx, w.appOK, build(t, python, map[string]string{"app/main.py": "print(1)"})); err != nil {
		t.Fatal(err)
	}
	if _, err := imagetest.PushImage(ctx, w.appBad, build(t, other, map[string]string{"app/main.js": "1"})); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	w.dockerfile = filepath.Join(dir, "Dockerfile")
	df := "# two stages\nARG REGISTRY=" + reg.Host + "\nFROM ${REGISTRY}/apps/shop:1 AS build\nRUN make\n" +
		"FROM build AS test\n" +
		"FROM --platform=linux/amd64 \\\n  $REGISTRY/apps/cart:1\nCOPY --from=build /out /\n"
	if err := os.WriteFile(w.dockerfile, []byte(df), 0o600); err != nil {
		t.Fatal(err)
	}
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{w.entry("platform")}}
	out, err := yaml.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	w.catalog = filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(w.catalog, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// entry is the catalog's BaseImage for the python base, as plinth records
// it.
func (w *world) entry(ns string) *catalogv1.BaseImage {
	return &catalogv1.BaseImage{
		TypeMeta:   metav1.TypeMeta{APIVersion: catalogv1.GroupVersion.String(), Kind: catalogv1.BaseImageKind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "python"},
		Spec:       catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(w.python), PolicyRef: catalogv1.LocalObjectReference{Name: "default"}},
		Status: catalogv1.BaseImageStatus{
			ResolvedDigest: w.base, ApprovedDigest: w.base,
			History: []catalogv1.DigestRecord{{Digest: w.base, FirstSeen: metav1.Now()}},
		},
	}
}

func (w *world) options() Options {
	return Options{Timeout: 30 * time.Second, Keychain: authn.NewMultiKeychain(),
		Registry: registry.Options{Transport: w.reg.Transport()}}
}

func TestCheckAgainstAnExportedCatalog(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	o := w.options()
	o.CatalogFile, o.Images = w.catalog, []string{w.appOK}
	var out bytes.Buffer
	code, err := Run(ctx, o, &out)
	if err != nil || code != ExitApproved {
		t.Fatalf("an image FROM the approved base: exit %d, %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "Approved: on platform/python ("+w.base+"), matched by LayerChain") {
		t.Errorf("the base found is not named:\n%s", out.String())
	}

	o.Images = []string{w.appBad}
	out.Reset()
	code, err = Run(ctx, o, &out)
	if err != nil || code != ExitNotApproved {
		t.Fatalf("an image FROM another base: exit %d, %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "Unapproved") || !strings.Contains(out.String(), "use instead: "+w.python+"@"+w.base) {
		t.Errorf("no approved alternative named:\n%s", out.String())
	}
}

func TestCheckADockerfileStageByStage(t *testing.T) {
	w := newWorld(t)
	o := w.options()
	o.CatalogFile, o.Dockerfile = w.catalog, w.dockerfile
	var out bytes.Buffer
	code, err := Run(context.Background(), o, &out)
	if err != nil || code != ExitNotApproved {
		t.Fatalf("exit %d, %v\n%s", code, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"stage 1 (build): FROM " + w.appOK + ": Approved",
		"stage 2 (test): FROM build: not a registry image, skipped",
		"stage 3: FROM " + w.appBad + ": Unapproved",
		"  use instead: " + w.python + "@" + w.base,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, p := range want {
		if !strings.HasPrefix(lines[i], p) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], p)
		}
	}

	o.FinalStageOnly = true
	out.Reset()
	if code, _ := Run(context.Background(), o, &out); code != ExitNotApproved || strings.Contains(out.String(), "stage 1") {
		t.Errorf("final stage only: exit %d\n%s", code, out.String())
	}
}

func TestCheckAgainstALiveCatalog(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := newWorld(t)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform"}}); err != nil {
		t.Fatal(err)
	}
	bi := w.entry("platform")
	st := bi.Status
	if err := c.Create(ctx, bi); err != nil {
		t.Fatal(err)
	}
	bi.Status = st
	if err := c.Status().Update(ctx, bi); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	o := w.options()
	o.Kubeconfig, o.Images = path, []string{w.appOK, w.appBad}
	var out bytes.Buffer
	code, err := Run(ctx, o, &out)
	if err != nil || code != ExitNotApproved {
		t.Fatalf("exit %d, %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), w.appOK+": Approved: on platform/python") ||
		!strings.Contains(out.String(), w.appBad+": Unapproved") {
		t.Errorf("verdicts:\n%s", out.String())
	}

	// Another namespace holds no catalog: nothing is approved there.
	o.Namespace, o.Images = "elsewhere", []string{w.appOK}
	out.Reset()
	if code, _ := Run(ctx, o, &out); code != ExitNotApproved {
		t.Errorf("empty catalog: exit %d\n%s", code, out.String())
	}
}

func TestCheckSaysWhatIsWrongWithItsInput(t *testing.T) {
	w := newWorld(t)
	for name, o := range map[string]Options{
		"nothing":       {CatalogFile: w.catalog},
		"no catalog":    {CatalogFile: filepath.Join(t.TempDir(), "missing.yaml"), Images: []string{w.appOK}},
		"no dockerfile": {CatalogFile: w.catalog, Dockerfile: filepath.Join(t.TempDir(), "Dockerfile")},
	} {
		if code, err := Run(context.Background(), o, &bytes.Buffer{}); code != ExitUsage || err == nil {
			t.Errorf("%s: exit %d, err %v", name, code, err)
		}
	}
	// An unreachable registry gives Unknown, within the deadline.
	o := w.options()
	o.CatalogFile, o.Images, o.Timeout = w.catalog, []string{"127.0.0.1:1/apps/shop:1"}, 5*time.Second
	var out bytes.Buffer
	code, err := Run(context.Background(), o, &out)
	if err != nil || code != ExitUnknown || !strings.Contains(out.String(), "Unknown") {
		t.Errorf("unreachable: exit %d, %v\n%s", code, err, out.String())
	}
	// A malformed reference is named.
	o.Images = []string{"Apps/Shop:1"}
	out.Reset()
	if code, _ := Run(context.Background(), o, &out); code != ExitUsage || !strings.Contains(out.String(), "invalid image reference") {
		t.Errorf("malformed: exit %d\n%s", code, out.String())
	}
}

func TestParseDockerfile(t *testing.T) {
	df := "ARG BASE=debian\nARG TAG\nFROM ${BASE}:${TAG:-12} as Build\nFROM scratch\nFROM build\nfrom $BASE\n"
	stages, err := ParseDockerfile(strings.NewReader(df), map[string]string{"BASE": "registry.example.com/base/debian"})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, s := range stages {
		got = append(got, s.Name+"="+s.Image)
	}
	want := []string{"build=registry.example.com/base/debian:12", "=", "=", "=registry.example.com/base/debian"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stages %v, want %v", got, want)
	}
	if _, err := ParseDockerfile(strings.NewReader("FROM $MISSING\n"), nil); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("unset argument: %v", err)
	}
	if _, err := ParseDockerfile(strings.NewReader("RUN true\n"), nil); err == nil {
		t.Error("a Dockerfile without FROM is refused")
	}
}
