package install

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/plinth-dev/plinth/hack/bundle/bundlegen"
)

// TestBundleValidates runs the checks of `operator-sdk bundle validate
// --select-optional suite=operatorframework` on bundle/: the default bundle
// validators (CSV, CRDs, bundle consistency) and the optional operatorframework
// suite. That suite's "operatorhub" validator is deprecated (running it
// only adds a warning saying so); its replacements, OperatorHub v2, standard
// capabilities and standard categories, run instead, with good practices,
// deprecated APIs and the object validator. A warning fails the test as
// much as an error.
func TestBundleValidates(t *testing.T) {
	bundle, err := manifests.GetBundleFromDir(filepath.Join(root(), "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	validators := append(interfaces.Validators{}, validation.DefaultBundleValidators...)
	validators = append(validators,
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
		validation.ObjectValidator,
	)
	objs := []any{bundle}
	for _, crd := range bundle.V1CRDs {
		objs = append(objs, crd)
	}
	results := validators.Validate(objs...)
	for _, r := range results {
		for _, e := range r.Errors {
			t.Errorf("%s: error: %s", r.Name, e.Error())
		}
		for _, w := range r.Warnings {
			t.Errorf("%s: warning: %s", r.Name, w.Error())
		}
	}
	if len(results) == 0 {
		t.Fatal("no validator ran")
	}
	if bundle.CSV.Spec.Version.String() != makeVar(t, "VERSION") {
		t.Errorf("bundle version %s, Makefile VERSION %s", bundle.CSV.Spec.Version.String(), makeVar(t, "VERSION"))
	}
	if got := bundle.CSV.Spec.InstallStrategy.StrategySpec.ClusterPermissions; len(got) != 1 || !reflect.DeepEqual(got[0].Rules, generatedRole(t).Rules) {
		t.Errorf("bundle clusterPermissions differ from config/rbac/role.yaml: %+v", got)
	}
}

// TestBundleShipsCatalogRoles checks that an OLM install gets the catalog
// roles for people, with the names, aggregation labels and rules that
// config/default installs.
func TestBundleShipsCatalogRoles(t *testing.T) {
	bundle, err := manifests.GetBundleFromDir(filepath.Join(root(), "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	objs := render(t, "config/default")
	for _, name := range catalogRoles {
		want := typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", name))
		got := typed[rbacv1.ClusterRole](t, find(t, bundle.Objects, "ClusterRole", name))
		if !reflect.DeepEqual(got.Labels, want.Labels) {
			t.Errorf("bundle %s labels = %v, config/default's = %v", name, got.Labels, want.Labels)
		}
		if !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("bundle %s rules = %+v, config/default's = %+v", name, got.Rules, want.Rules)
		}
	}
}

// TestBundleUpToDate regenerates the bundle from config/ with the Makefile's
// VERSION and BUNDLE_CREATED_AT and compares it with the committed files:
// `make bundle` must have been run after the last change of config/.
func TestBundleUpToDate(t *testing.T) {
	files, err := bundlegen.Files(bundlegen.Options{
		Root:      root(),
		Version:   makeVar(t, "VERSION"),
		CreatedAt: makeVar(t, "BUNDLE_CREATED_AT"),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root(), "bundle")
	var committed []string
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		committed = append(committed, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var generated []string
	for name, want := range files {
		generated = append(generated, name)
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v (run make bundle)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("bundle/%s is out of date: run make bundle", name)
		}
	}
	sort.Strings(committed)
	sort.Strings(generated)
	if !reflect.DeepEqual(committed, generated) {
		t.Errorf("bundle/ holds %q, the generator writes %q: run make bundle", committed, generated)
	}
	got, err := os.ReadFile(filepath.Join(root(), "bundle.Dockerfile"))
	if err != nil || !bytes.Equal(got, bundlegen.Dockerfile()) {
		t.Errorf("bundle.Dockerfile is out of date (%v): run make bundle", err)
	}
}
