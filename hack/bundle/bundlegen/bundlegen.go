// Package bundlegen writes plinth's OLM bundle (registry+v1 format) from the
// kustomize configuration in config/: the ClusterServiceVersion, the CRDs,
// the extra manifests the operator ships, the bundle metadata and the
// scorecard configuration. The output depends only on the repository's files
// and the Options, so regenerating an unchanged repository changes nothing.
package bundlegen

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/operator-framework/api/pkg/lib/version"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/blang/semver/v4"
)

// Fixed facts about the package.
const (
	PackageName    = "plinth"
	Channel        = "candidate"
	ImageRepo      = "ghcr.io/plinth-dev/plinth"
	MinKubeVersion = "1.30.0"
	// ScorecardImage runs the scorecard's basic and OLM checks.
	ScorecardImage = "quay.io/operator-framework/scorecard-test:v1.42.0"

	deploymentName = "plinth-controller-manager"
	// webhookService is config/default's Service of the admission webhook;
	// OLM makes its own for the CSV's webhook definitions.
	webhookService = "plinth-webhook-service"
	// webhookCertsArg has the operator read the serving certificate OLM
	// mounts, instead of keeping its own.
	webhookCertsArg = "--webhook-certs=mounted"
	managerRole     = "plinth-manager-role"
)

//go:embed description.md
var description string

//go:embed icon.svg
var icon []byte

// Options are the inputs that are not files of the repository.
type Options struct {
	// Root is the repository's root directory.
	Root string
	// Version is the operator's semantic version without a leading v, e.g. 0.1.0.
	Version string
	// CreatedAt is the release's creation time in RFC 3339, written into the
	// CSV's createdAt annotation.
	CreatedAt string
}

// Files returns the bundle's files, keyed by their path relative to the
// bundle directory.
func Files(o Options) (map[string][]byte, error) {
	if _, err := semver.Parse(o.Version); err != nil {
		return nil, fmt.Errorf("version %q: %w", o.Version, err)
	}
	if _, err := time.Parse(time.RFC3339, o.CreatedAt); err != nil {
		return nil, fmt.Errorf("createdAt %q: %w", o.CreatedAt, err)
	}
	objs, err := Render(filepath.Join(o.Root, "config", "default"))
	if err != nil {
		return nil, err
	}
	samples, err := Render(filepath.Join(o.Root, "config", "samples"))
	if err != nil {
		return nil, err
	}

	files := map[string][]byte{}
	var (
		crds                []apiextensionsv1.CustomResourceDefinition
		deployment          *appsv1.Deployment
		clusterPerms, perms []operatorsv1alpha1.StrategyDeploymentPermissions
		webhooks            []operatorsv1alpha1.WebhookDescription
	)
	for _, u := range objs {
		kind, name := u.GetKind(), u.GetName()
		switch kind {
		case "CustomResourceDefinition":
			var crd apiextensionsv1.CustomResourceDefinition
			if err := convert(u.Object, &crd); err != nil {
				return nil, err
			}
			crds = append(crds, crd)
			b, err := marshal(u.Object)
			if err != nil {
				return nil, err
			}
			files["manifests/"+crd.Spec.Group+"_"+crd.Spec.Names.Plural+".yaml"] = b
		case "Deployment":
			if name != deploymentName {
				return nil, fmt.Errorf("unexpected Deployment %s", name)
			}
			deployment = &appsv1.Deployment{}
			if err := convert(u.Object, deployment); err != nil {
				return nil, err
			}
		case "ClusterRole", "Role":
			var role rbacv1.ClusterRole
			if err := convert(u.Object, &role); err != nil {
				return nil, err
			}
			if kind == "Role" {
				perms = append(perms, operatorsv1alpha1.StrategyDeploymentPermissions{Rules: role.Rules})
				continue
			}
			if name == managerRole {
				clusterPerms = append(clusterPerms, operatorsv1alpha1.StrategyDeploymentPermissions{Rules: role.Rules})
				continue
			}
			// Roles for others (the metrics reader, the catalog roles for
			// people) ship as plain manifests; OLM creates them as they are.
			if err := addManifest(files, u); err != nil {
				return nil, err
			}
		case "ValidatingWebhookConfiguration":
			var vwc admissionregistrationv1.ValidatingWebhookConfiguration
			if err := convert(u.Object, &vwc); err != nil {
				return nil, err
			}
			webhooks = append(webhooks, webhookDefinitions(&vwc)...)
		case "Service":
			if name == webhookService {
				continue
			}
			if err := addManifest(files, u); err != nil {
				return nil, err
			}
		case "Namespace", "ServiceAccount", "ClusterRoleBinding", "RoleBinding":
			// OLM creates the namespace, the deployment's service account
			// and the bindings of the CSV's permissions itself.
		default:
			return nil, fmt.Errorf("config/default renders a %s (%s) the bundle generator does not know how to ship", kind, name)
		}
	}
	if deployment == nil {
		return nil, fmt.Errorf("config/default renders no Deployment %s", deploymentName)
	}
	if len(clusterPerms) == 0 {
		return nil, fmt.Errorf("config/default renders no ClusterRole %s", managerRole)
	}
	sa := deployment.Spec.Template.Spec.ServiceAccountName
	for i := range clusterPerms {
		clusterPerms[i].ServiceAccountName = sa
	}
	for i := range perms {
		perms[i].ServiceAccountName = sa
	}
	image := ""
	for _, c := range deployment.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			image = c.Image
		}
	}
	if want := ImageRepo + ":" + o.Version; image != want {
		return nil, fmt.Errorf("config/default deploys image %q but the version is %s: set newTag in config/manager/kustomization.yaml to %s", image, o.Version, o.Version)
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].Spec.Names.Kind < crds[j].Spec.Names.Kind })

	examples, err := almExamples(samples)
	if err != nil {
		return nil, err
	}
	if len(webhooks) > 0 {
		for i := range webhooks {
			webhooks[i].DeploymentName = deployment.Name
		}
		// OLM issues, mounts and rotates the webhook's certificate.
		for i, c := range deployment.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				deployment.Spec.Template.Spec.Containers[i].Args = append(c.Args, webhookCertsArg)
			}
		}
	}
	csv := clusterServiceVersion(o, image, examples, crds, deployment, clusterPerms, perms)
	csv.Spec.WebhookDefinitions = webhooks
	b, err := marshal(csv)
	if err != nil {
		return nil, err
	}
	files["manifests/"+PackageName+".clusterserviceversion.yaml"] = b

	files["metadata/annotations.yaml"], err = marshal(map[string]any{"annotations": bundleAnnotations()})
	if err != nil {
		return nil, err
	}
	files["tests/scorecard/config.yaml"], err = marshal(scorecardConfig())
	if err != nil {
		return nil, err
	}
	return files, nil
}

// webhookDefinitions describes the webhooks of vwc for the CSV. OLM
// chooses their namespaceSelector from the OperatorGroup, so the webhook
// admits namespaces without the mode label, and its own, itself.
func webhookDefinitions(vwc *admissionregistrationv1.ValidatingWebhookConfiguration) []operatorsv1alpha1.WebhookDescription {
	out := make([]operatorsv1alpha1.WebhookDescription, 0, len(vwc.Webhooks))
	for _, w := range vwc.Webhooks {
		d := operatorsv1alpha1.WebhookDescription{
			GenerateName:            w.Name,
			Type:                    operatorsv1alpha1.ValidatingAdmissionWebhook,
			ContainerPort:           443,
			TargetPort:              &intstr.IntOrString{Type: intstr.String, StrVal: "webhook-server"},
			Rules:                   w.Rules,
			FailurePolicy:           w.FailurePolicy,
			MatchPolicy:             w.MatchPolicy,
			ObjectSelector:          w.ObjectSelector,
			SideEffects:             w.SideEffects,
			TimeoutSeconds:          w.TimeoutSeconds,
			AdmissionReviewVersions: w.AdmissionReviewVersions,
		}
		if w.ClientConfig.Service != nil {
			d.WebhookPath = w.ClientConfig.Service.Path
		}
		out = append(out, d)
	}
	return out
}

// Write replaces dir's content with the bundle's files.
func Write(dir string, files map[string][]byte) error {
	for _, sub := range []string{"manifests", "metadata", "tests"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Dockerfile returns the content of bundle.Dockerfile, which builds the
// bundle image from the repository's root.
func Dockerfile() []byte {
	var b strings.Builder
	b.WriteString("# The OLM bundle image of plinth, generated by `make bundle`.\n")
	b.WriteString("# Build it from the repository's root: make bundle-build\n")
	b.WriteString("FROM scratch\n\n")
	ann := bundleAnnotations()
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "LABEL %s=%s\n", k, ann[k])
	}
	b.WriteString("\nCOPY bundle/manifests /manifests/\n")
	b.WriteString("COPY bundle/metadata /metadata/\n")
	b.WriteString("COPY bundle/tests/scorecard /tests/scorecard/\n")
	return []byte(b.String())
}

// Render builds the kustomization in dir with the kustomize library, as
// `kubectl kustomize` does, and returns its objects in output order.
func Render(dir string) ([]*unstructured.Unstructured, error) {
	return RenderFS(filesys.MakeFsOnDisk(), dir)
}

// RenderFS builds the kustomization in dir of fs.
func RenderFS(fs filesys.FileSystem, dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	return toMaps(m)
}

// toMaps decodes the objects as the API machinery does (integers as
// int64), so they can be copied and converted to Go types.
func toMaps(m resmap.ResMap) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func addManifest(files map[string][]byte, u *unstructured.Unstructured) error {
	gv := strings.ReplaceAll(u.GetAPIVersion(), "/", "_")
	b, err := marshal(u.Object)
	if err != nil {
		return err
	}
	files["manifests/"+u.GetName()+"_"+gv+"_"+strings.ToLower(u.GetKind())+".yaml"] = b
	return nil
}

func almExamples(samples []*unstructured.Unstructured) (string, error) {
	// Policies first: a BaseImage refers to one.
	sort.SliceStable(samples, func(i, j int) bool {
		return samples[i].GetKind() == "ImagePolicy" && samples[j].GetKind() != "ImagePolicy"
	})
	objs := make([]map[string]any, len(samples))
	for i, u := range samples {
		objs[i] = u.Object
	}
	b, err := json.MarshalIndent(objs, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func clusterServiceVersion(o Options, image, examples string, crds []apiextensionsv1.CustomResourceDefinition,
	d *appsv1.Deployment, clusterPerms, perms []operatorsv1alpha1.StrategyDeploymentPermissions,
) *operatorsv1alpha1.ClusterServiceVersion {
	owned := make([]operatorsv1alpha1.CRDDescription, 0, len(crds))
	for _, crd := range crds {
		owned = append(owned, crdDescription(crd)...)
	}
	spec := d.Spec.DeepCopy()
	return &operatorsv1alpha1.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: operatorsv1alpha1.SchemeGroupVersion.String(), Kind: operatorsv1alpha1.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name: PackageName + ".v" + o.Version,
			Annotations: map[string]string{
				"alm-examples":   examples,
				"capabilities":   "Basic Install",
				"categories":     "Security",
				"containerImage": image,
				"createdAt":      o.CreatedAt,
				"description":    "Keeps a catalog of approved container base images and reports, as status conditions, whether each one is approved and whether a rebuild is due.",
				"repository":     "https://github.com/plinth-dev/plinth",
				"support":        "plinth",
				"operatorframework.io/suggested-namespace": "plinth-system",
				"operators.operatorframework.io/builder":   "plinth-bundlegen",
			},
		},
		Spec: operatorsv1alpha1.ClusterServiceVersionSpec{
			DisplayName:    "plinth",
			Description:    description,
			Version:        version.OperatorVersion{Version: semver.MustParse(o.Version)},
			Maturity:       "alpha",
			MinKubeVersion: MinKubeVersion,
			Keywords:       []string{"base images", "container images", "catalog", "vulnerabilities", "supply chain", "security"},
			Maintainers:    []operatorsv1alpha1.Maintainer{{Name: "plinth maintainers", Email: "maintainers@plinth.dev"}},
			Provider:       operatorsv1alpha1.AppLink{Name: "plinth", URL: "https://github.com/plinth-dev/plinth"},
			Links: []operatorsv1alpha1.AppLink{
				{Name: "Source code", URL: "https://github.com/plinth-dev/plinth"},
				{Name: "Installation", URL: "https://github.com/plinth-dev/plinth/blob/main/docs/install.md"},
			},
			Icon: []operatorsv1alpha1.Icon{{Data: base64.StdEncoding.EncodeToString(icon), MediaType: "image/svg+xml"}},
			InstallModes: []operatorsv1alpha1.InstallMode{
				{Type: operatorsv1alpha1.InstallModeTypeOwnNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeSingleNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeMultiNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeAllNamespaces, Supported: true},
			},
			CustomResourceDefinitions: operatorsv1alpha1.CustomResourceDefinitions{Owned: owned},
			RelatedImages:             []operatorsv1alpha1.RelatedImage{{Name: "plinth", Image: image}},
			InstallStrategy: operatorsv1alpha1.NamedInstallStrategy{
				StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
				StrategySpec: operatorsv1alpha1.StrategyDetailsDeployment{
					DeploymentSpecs: []operatorsv1alpha1.StrategyDeploymentSpec{{
						Name:  d.Name,
						Label: d.Labels,
						Spec:  *spec,
					}},
					ClusterPermissions: clusterPerms,
					Permissions:        perms,
				},
			},
		},
	}
}

// crdDescription describes every served version of crd, with a descriptor
// for each top-level field of spec and status.
func crdDescription(crd apiextensionsv1.CustomResourceDefinition) []operatorsv1alpha1.CRDDescription {
	var out []operatorsv1alpha1.CRDDescription
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		root := v.Schema.OpenAPIV3Schema
		d := operatorsv1alpha1.CRDDescription{
			Name:        crd.Name,
			Version:     v.Name,
			Kind:        crd.Spec.Names.Kind,
			DisplayName: humanize(crd.Spec.Names.Kind, true),
			Description: firstSentence(root.Description),
			Resources:   childResources[crd.Spec.Names.Kind],
		}
		if s, ok := root.Properties["spec"]; ok {
			for _, f := range fields(s) {
				d.SpecDescriptors = append(d.SpecDescriptors, operatorsv1alpha1.SpecDescriptor{
					Path: f.path, DisplayName: f.displayName, Description: f.description, XDescriptors: specXDescriptors(f),
				})
			}
		}
		if s, ok := root.Properties["status"]; ok {
			for _, f := range fields(s) {
				d.StatusDescriptors = append(d.StatusDescriptors, operatorsv1alpha1.StatusDescriptor{
					Path: f.path, DisplayName: f.displayName, Description: f.description, XDescriptors: statusXDescriptors(f),
				})
			}
		}
		out = append(out, d)
	}
	return out
}

type field struct {
	path, name, displayName, description string
	schema                               apiextensionsv1.JSONSchemaProps
}

// fields lists the top-level properties of s in name order. A reference to
// an object by name (an object whose only property is name) is described
// by its name field, which the console can link to the object.
func fields(s apiextensionsv1.JSONSchemaProps) []field {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]field, 0, len(names))
	for _, n := range names {
		p := s.Properties[n]
		f := field{path: n, name: n, displayName: humanize(n, false), description: firstSentence(p.Description), schema: p}
		if nameProp, ok := p.Properties["name"]; ok && len(p.Properties) == 1 {
			f.path = n + ".name"
			f.schema = nameProp
		}
		out = append(out, f)
	}
	return out
}

// childResources lists, per kind, the objects plinth makes about an
// instance: the Events it records on BaseImages.
var childResources = map[string][]operatorsv1alpha1.APIResourceReference{
	"BaseImage": {{Kind: "Event", Version: "v1"}},
}

// Descriptors the console renders as links to the objects they name.
var referenceXDescriptors = map[string]string{
	"policyRef":          "urn:alm:descriptor:io.kubernetes:catalog.plinth.dev:v1alpha1:ImagePolicy",
	"pullSecretRef":      "urn:alm:descriptor:io.kubernetes:Secret",
	"serviceAccountName": "urn:alm:descriptor:io.kubernetes:ServiceAccount",
}

func specXDescriptors(f field) []string {
	if x, ok := referenceXDescriptors[f.name]; ok {
		return []string{x}
	}
	switch f.schema.Type {
	case "boolean":
		return []string{"urn:alm:descriptor:com.tectonic.ui:booleanSwitch"}
	case "integer", "number":
		return []string{"urn:alm:descriptor:com.tectonic.ui:number"}
	case "string":
		return []string{"urn:alm:descriptor:com.tectonic.ui:text"}
	}
	return nil
}

func statusXDescriptors(f field) []string {
	if f.name == "conditions" {
		return []string{"urn:alm:descriptor:io.kubernetes.conditions"}
	}
	switch f.schema.Type {
	case "string", "integer", "number", "boolean":
		return []string{"urn:alm:descriptor:text"}
	}
	return nil
}

// humanize turns a camelCase name into words: "rescanInterval" becomes
// "Rescan interval", or "Rescan Interval" with title set.
func humanize(name string, title bool) string {
	var words []string
	start := 0
	for i := 1; i < len(name); i++ {
		if name[i] >= 'A' && name[i] <= 'Z' && !(name[i-1] >= 'A' && name[i-1] <= 'Z') {
			words = append(words, name[start:i])
			start = i
		}
	}
	words = append(words, name[start:])
	// policyRef is shown as "Policy": the console links it to the object.
	if len(words) > 1 && words[len(words)-1] == "Ref" {
		words = words[:len(words)-1]
	}
	for i, w := range words {
		upper := strings.ToUpper(w) == w
		switch {
		case i == 0 || title:
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		case !upper:
			words[i] = strings.ToLower(w)
		}
	}
	return strings.Join(words, " ")
}

// firstSentence returns the first sentence of a field's documentation, on
// one line. A sentence ends with a full stop followed by a capital letter,
// so "e.g. registry.example.com" does not end one.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && s[i+2] >= 'A' && s[i+2] <= 'Z' &&
			!strings.HasSuffix(s[:i], "e.g") && !strings.HasSuffix(s[:i], "i.e") {
			return s[:i+1]
		}
	}
	return s
}

func bundleAnnotations() map[string]string {
	return map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         PackageName,
		"operators.operatorframework.io.bundle.channels.v1":        Channel,
		"operators.operatorframework.io.bundle.channel.default.v1": Channel,
		"operators.operatorframework.io.test.mediatype.v1":         "scorecard+v1",
		"operators.operatorframework.io.test.config.v1":            "tests/scorecard/",
	}
}

func scorecardConfig() map[string]any {
	test := func(suite, name string) map[string]any {
		return map[string]any{
			"entrypoint": []string{"scorecard-test", name},
			"image":      ScorecardImage,
			"labels":     map[string]string{"suite": suite, "test": name + "-test"},
		}
	}
	return map[string]any{
		"apiVersion": "scorecard.operatorframework.io/v1alpha3",
		"kind":       "Configuration",
		"metadata":   map[string]any{"name": "config"},
		"stages": []map[string]any{{
			"parallel": true,
			"tests": []map[string]any{
				test("basic", "basic-check-spec"),
				test("olm", "olm-bundle-validation"),
				test("olm", "olm-crds-have-validation"),
				test("olm", "olm-crds-have-resources"),
				test("olm", "olm-spec-descriptors"),
				test("olm", "olm-status-descriptors"),
			},
		}},
	}
}

// marshal writes v as YAML with sorted keys, leaving out null values (such
// as the creationTimestamp of an object that was never stored) and the
// status of the CSV, which OLM owns.
func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if obj, ok := m.(map[string]any); ok {
		if k, _ := obj["kind"].(string); k == operatorsv1alpha1.ClusterServiceVersionKind {
			delete(obj, "status")
		}
	}
	return yaml.Marshal(prune(m))
}

func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			t[k] = prune(e)
		}
	case []any:
		for i, e := range t {
			t[i] = prune(e)
		}
	}
	return v
}

func convert(obj map[string]any, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(obj, into)
}
