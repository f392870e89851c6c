// Package install checks what a user installs: the kustomize configuration
// in config/ and the OLM bundle in bundle/. Rendering uses the kustomize
// library, as `kubectl kustomize` does; install checks run against a real
// API server (test/testenv).
package install

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/hack/bundle/bundlegen"
	"github.com/plinth-dev/plinth/test/testenv"
)

var (
	envOnce sync.Once
	env     *testenv.Environment
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

// controlPlane starts the shared API server on first use.
func controlPlane(t *testing.T) *testenv.Environment {
	t.Helper()
	envOnce.Do(func() { env, envErr = testenv.Start() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

func context30s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func root() string { return testenv.Root() }

// render builds a kustomization of the repository, e.g. "config/default".
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := bundlegen.Render(filepath.Join(root(), filepath.FromSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// find returns the one rendered object of kind and name.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if found != nil {
				t.Fatalf("%s %s rendered twice", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("%s %s not rendered", kind, name)
	}
	return found
}

// typed converts a rendered object into a Go type.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, v, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return v
}

// makeVar returns the default of a `NAME ?= value` variable of the Makefile,
// the place `make bundle` takes it from.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*\?=\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("Makefile sets no %s", name)
	}
	return string(m[1])
}

var _ client.Object = &unstructured.Unstructured{}
