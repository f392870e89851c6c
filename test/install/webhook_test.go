package install

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/plinth-dev/plinth/internal/admission"
)

const webhookConfiguration = "plinth-validating-webhook-configuration"

// lastFlag returns the value of the last --name=value of args, the one the
// operator uses, or "".
func lastFlag(args []string, name string) string {
	v := ""
	for _, a := range args {
		if a == "--"+name {
			v = "true"
		} else if s, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = s
		}
	}
	return v
}

// containerPort returns the port of c named name, or 0.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestDefaultServesTheWebhook checks that config/default enables the
// webhook in the operator with self-managed certificates, reaches it
// through its Service, and never sends plinth's own namespace or
// kube-system to it, nor namespaces that did not opt in.
func TestDefaultServesTheWebhook(t *testing.T) {
	objs := render(t, "config/default")
	c := managerContainer(t, deploymentOf(t, objs))
	if lastFlag(c.Args, "admission-webhook") != "true" || lastFlag(c.Args, "webhook-certs") != "self-managed" {
		t.Errorf("args %q do not serve the webhook with self-managed certificates", c.Args)
	}
	vwc := typed[admissionregistrationv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", webhookConfiguration))
	svc := typed[corev1.Service](t, find(t, objs, "Service", "plinth-webhook-service"))
	if containerPort(c, svc.Spec.Ports[0].TargetPort.StrVal) != 9443 {
		t.Errorf("the webhook Service targets port %v, which the manager does not serve on 9443", svc.Spec.Ports[0].TargetPort)
	}
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(vwc.Webhooks))
	}
	w := vwc.Webhooks[0]
	ref := w.ClientConfig.Service
	if ref == nil || ref.Name != svc.Name || ref.Namespace != namespace || ref.Path == nil || *ref.Path != admission.Path {
		t.Errorf("the webhook calls %+v, want Service %s/%s at %s", ref, namespace, svc.Name, admission.Path)
	}
	var enrolled, excluded []string
	for _, e := range w.NamespaceSelector.MatchExpressions {
		switch {
		case e.Key == admission.ModeLabel && e.Operator == "In":
			enrolled = e.Values
		case e.Key == corev1.LabelMetadataName && e.Operator == "NotIn":
			excluded = e.Values
		}
	}
	for _, m := range admission.Modes {
		if !slices.Contains(enrolled, string(m)) {
			t.Errorf("namespaces in mode %s are not sent to the webhook: %v", m, enrolled)
		}
	}
	for _, ns := range []string{namespace, "kube-system"} {
		if !slices.Contains(excluded, ns) {
			t.Errorf("namespace %s is sent to the webhook: excluded %v", ns, excluded)
		}
	}
	// The self-managed rotator writes this configuration's caBundle: the
	// operator's default name and its RBAC must name it.
	if vwc.Name != webhookConfiguration {
		t.Errorf("webhook configuration %s, but the operator keeps the caBundle of %s", vwc.Name, webhookConfiguration)
	}
	if w.TimeoutSeconds == nil || float64(*w.TimeoutSeconds) <= admission.DefaultMatchTimeout.Seconds() {
		t.Errorf("timeoutSeconds %v is not above the default match timeout %s", w.TimeoutSeconds, admission.DefaultMatchTimeout)
	}
}

// TestCertManagerWebhookCertificate checks that with config/certmanager the
// operator serves cert-manager's certificate, issued for the webhook's
// Service, whose CA cert-manager injects into the configuration.
func TestCertManagerWebhookCertificate(t *testing.T) {
	objs := renderWith(t, "certmanager")
	cert := find(t, objs, "Certificate", "plinth-webhook-certs")
	svc := find(t, objs, "Service", "plinth-webhook-service")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if host := svc.GetName() + "." + svc.GetNamespace() + ".svc"; !slices.Contains(dnsNames, host) {
		t.Errorf("Certificate dnsNames %q lack %s", dnsNames, host)
	}
	vwc := find(t, objs, "ValidatingWebhookConfiguration", webhookConfiguration)
	if got, want := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"], cert.GetNamespace()+"/"+cert.GetName(); got != want {
		t.Errorf("inject-ca-from = %q, want %q", got, want)
	}
	d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", deployment))
	c := managerContainer(t, d)
	if lastFlag(c.Args, "webhook-certs") != "mounted" {
		t.Errorf("args %q: the operator still keeps its own webhook certificate", c.Args)
	}
	dir := lastFlag(c.Args, "webhook-cert-dir")
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if dir == "" || i < 0 {
		t.Fatalf("--webhook-cert-dir %q is not mounted", dir)
	}
	vi := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[i].Name })
	if secret := str(t, cert, "spec", "secretName"); vi < 0 || d.Spec.Template.Spec.Volumes[vi].Secret == nil || d.Spec.Template.Spec.Volumes[vi].Secret.SecretName != secret {
		t.Errorf("%s is not the certificate's Secret %s", dir, secret)
	}
}

// TestBundleDefinesTheWebhook checks that an OLM install gets the webhook
// as a webhook definition, served on the manager's port with the
// certificate OLM mounts.
func TestBundleDefinesTheWebhook(t *testing.T) {
	bundle, err := manifests.GetBundleFromDir(filepath.Join(root(), "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	defs := bundle.CSV.Spec.WebhookDefinitions
	if len(defs) != 1 {
		t.Fatalf("%d webhook definitions, want 1", len(defs))
	}
	d := defs[0]
	if d.Type != operatorsv1alpha1.ValidatingAdmissionWebhook || d.WebhookPath == nil || *d.WebhookPath != admission.Path {
		t.Errorf("webhook definition %+v is not a validating webhook at %s", d, admission.Path)
	}
	spec := bundle.CSV.Spec.InstallStrategy.StrategySpec.DeploymentSpecs[0]
	if d.DeploymentName != spec.Name {
		t.Errorf("the webhook is served by %q, the CSV deploys %q", d.DeploymentName, spec.Name)
	}
	var c corev1.Container
	for _, ct := range spec.Spec.Template.Spec.Containers {
		if ct.Name == "manager" {
			c = ct
		}
	}
	if d.TargetPort == nil || containerPort(c, d.TargetPort.StrVal) == 0 {
		t.Errorf("targetPort %v is no port of the manager", d.TargetPort)
	}
	if lastFlag(c.Args, "webhook-certs") != "mounted" || lastFlag(c.Args, "webhook-cert-dir") != "" {
		t.Errorf("args %q: the operator must read the certificate OLM mounts in the default directory", c.Args)
	}
	for _, o := range bundle.Objects {
		if o.GetKind() == "Service" && o.GetName() == "plinth-webhook-service" {
			t.Error("the bundle ships the webhook Service that OLM creates itself")
		}
	}
}
