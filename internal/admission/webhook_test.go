package admission_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"encoding/json"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/plinth-dev/plinth/internal/admission"
)

func TestEnforceAdmitsImagesOnApprovedBasesAndDeniesOthers(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Enforce)
	approve(t, ns)

	// Built FROM the approved base, with layers of its own: admitted.
	if err := k8sClient.Create(ctx, pod(ns, "shop", imgs.shop)); err != nil {
		t.Fatalf("a Pod on an approved base was refused: %v", err)
	}
	// Built FROM a base the catalog does not have: denied, and the message
	// names the image and the approved base to use.
	err := k8sClient.Create(ctx, pod(ns, "cart", imgs.cart))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a Pod on an unapproved base: got %v, want a denial", err)
	}
	for _, want := range []string{imgs.cart, "containers[0] (c0)", "not on an approved base", imgs.python} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q does not say %q", err, want)
		}
	}
	// Init and ephemeral containers are checked too.
	p := pod(ns, "init", imgs.shop)
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: imgs.cart}}
	if err := k8sClient.Create(ctx, p); err == nil || !strings.Contains(err.Error(), "initContainers[0] (migrate)") {
		t.Errorf("an init container on an unapproved base: got %v, want a denial naming it", err)
	}
	var shop corev1.Pod
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &shop); err != nil {
		t.Fatal(err)
	}
	shop.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: imgs.cart}}}
	err = k8sClient.SubResource("ephemeralcontainers").Update(ctx, &shop)
	if err == nil || !strings.Contains(err.Error(), "ephemeralContainers[0] (debug)") {
		t.Errorf("an ephemeral container on an unapproved base: got %v, want a denial naming it", err)
	}
}

func TestEnforceChecksPodTemplates(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Enforce)
	approve(t, ns)

	deploy := func(name, image string) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
				},
			},
		}
	}
	if err := k8sClient.Create(ctx, deploy("shop", imgs.shop)); err != nil {
		t.Fatalf("a Deployment on an approved base was refused: %v", err)
	}
	err := k8sClient.Create(ctx, deploy("cart", imgs.cart))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), imgs.python) {
		t.Fatalf("a Deployment on an unapproved base: got %v, want a denial naming %s", err, imgs.python)
	}
	// Changing the template to an unapproved image is denied too...
	var shop appsv1.Deployment
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &shop); err != nil {
		t.Fatal(err)
	}
	shop.Spec.Template.Spec.Containers[0].Image = imgs.cart
	if err := k8sClient.Update(ctx, &shop); !apierrors.IsForbidden(err) {
		t.Errorf("moving a Deployment to an unapproved base: got %v, want a denial", err)
	}
}

func TestUpdatesAreJudgedOnTheImagesTheyBring(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Audit)
	// Admitted in audit mode, then the namespace moves to enforce.
	if err := k8sClient.Create(ctx, pod(ns, "cart", imgs.cart)); err != nil {
		t.Fatal(err)
	}
	setMode(t, ns, admission.Enforce)
	// Updates that bring no image are not counted as decisions.
	counted := counterValue(t, "enforce", "unapproved", "deny") + counterValue(t, "enforce", "approved", "allow")
	var p corev1.Pod
	waitFor(t, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cart"}, &p); err != nil {
			return err
		}
		// Relabelling a running Pod brings no new image: never refused.
		p.Labels = map[string]string{"touched": fmt.Sprint(time.Now().UnixNano())}
		if err := k8sClient.Update(ctx, &p); err != nil {
			return err
		}
		// Its denial of a new Pod shows the namespace's new mode reached
		// the webhook.
		if err := k8sClient.Create(ctx, pod(ns, "cart2", imgs.cart)); !apierrors.IsForbidden(err) {
			return fmt.Errorf("new Pod in enforce mode: got %v, want a denial", err)
		}
		return nil
	})
	if d := counterValue(t, "enforce", "unapproved", "deny") + counterValue(t, "enforce", "approved", "allow") - counted; d != 1 {
		t.Errorf("enforce decisions grew by %v, want 1 (the denied Pod)", d)
	}
}

func setMode(t *testing.T, ns string, mode admission.Mode) {
	t.Helper()
	var n corev1.Namespace
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	n.Labels[admission.ModeLabel] = string(mode)
	if err := k8sClient.Update(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
}

func TestWarnAdmitsWithAWarning(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Warn)
	approve(t, ns)
	c, w := clientWithWarnings(t)

	if err := c.Create(ctx, pod(ns, "shop", imgs.shop)); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); got != "" {
		t.Errorf("a Pod on an approved base got warnings: %s", got)
	}
	if err := c.Create(ctx, pod(ns, "cart", imgs.cart)); err != nil {
		t.Fatalf("warn mode refused a Pod: %v", err)
	}
	got := w.all()
	for _, want := range []string{imgs.cart, "not on an approved base", imgs.python} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q do not say %q", got, want)
		}
	}
}

func TestAuditAdmitsCountsAndRecordsAnEvent(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Audit)
	approve(t, ns)
	counter := func(class, decision string) float64 {
		return counterValue(t, "audit", class, decision)
	}
	unapproved, approved := counter("unapproved", "allow"), counter("approved", "allow")

	c, w := clientWithWarnings(t)
	if err := c.Create(ctx, pod(ns, "cart", imgs.cart)); err != nil {
		t.Fatalf("audit mode refused a Pod: %v", err)
	}
	if err := c.Create(ctx, pod(ns, "shop", imgs.shop)); err != nil {
		t.Fatal(err)
	}
	if got := w.all(); got != "" {
		t.Errorf("audit mode returned warnings: %s", got)
	}
	if d := counter("unapproved", "allow") - unapproved; d != 1 {
		t.Errorf("audit/unapproved/allow grew by %v, want 1", d)
	}
	if d := counter("approved", "allow") - approved; d != 1 {
		t.Errorf("audit/approved/allow grew by %v, want 1", d)
	}
	// A dry run is counted but records nothing.
	if err := c.Create(ctx, pod(ns, "dry", imgs.cart), client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		// Events about a namespace, a cluster-wide object, live in
		// "default".
		var evs eventsv1.EventList
		if err := k8sClient.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == ns && strings.Contains(e.Note, "Pod dry") {
				return fmt.Errorf("a dry run recorded an Event: %s", e.Note)
			}
		}
		for _, e := range evs.Items {
			if e.Reason == "UnapprovedBase" && e.Regarding.Kind == "Namespace" && e.Regarding.Name == ns &&
				strings.Contains(e.Note, "Pod cart") && strings.Contains(e.Note, imgs.cart) {
				return nil
			}
		}
		return fmt.Errorf("no UnapprovedBase Event on namespace %s among %d", ns, len(evs.Items))
	})
}

func counterValue(t *testing.T, mode, class, decision string) float64 {
	t.Helper()
	families, err := metricsReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "plinth_admission_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["mode"] == mode && labels["class"] == class && labels["decision"] == decision {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series plinth_admission_decisions_total{mode=%q,class=%q,decision=%q}", mode, class, decision)
	return 0
}

func TestDecisionSeriesExistBeforeTheFirstRequest(t *testing.T) {
	// 3 modes x 4 classes x 3 decisions, all exported.
	if n := testutil.CollectAndCount(metricsReg, "plinth_admission_decisions_total"); n != 36 {
		t.Errorf("%d series, want 36", n)
	}
}

func TestUnenrolledAndExcludedNamespacesAreNotChecked(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	if err := k8sClient.Create(ctx, pod(ns, "cart", imgs.cart)); err != nil {
		t.Errorf("a namespace without the label: %v", err)
	}
	// kube-system is excluded by the configuration and by the code, even
	// when labelled.
	var ks corev1.Namespace
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: "kube-system"}, &ks); err != nil {
		t.Fatal(err)
	}
	if ks.Labels == nil {
		ks.Labels = map[string]string{}
	}
	ks.Labels[admission.ModeLabel] = string(admission.Enforce)
	if err := k8sClient.Update(ctx, &ks); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, pod("kube-system", "cart", imgs.cart)); err != nil {
		t.Errorf("kube-system: %v", err)
	}
}

func TestKnownDigestsCostNoRegistryRead(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Enforce)
	approve(t, ns)
	// 200 containers over a few distinct images, written as tags, digests
	// and tag+digest.
	var images []string
	for i := range 200 {
		switch i % 3 {
		case 0:
			images = append(images, imgs.shop)
		case 1:
			images = append(images, strings.TrimSuffix(imgs.shop, ":1")+"@"+imgs.shopDigest)
		default:
			images = append(images, imgs.shop+"@"+imgs.shopDigest)
		}
	}
	if err := k8sClient.Create(ctx, pod(ns, "big-1", images...)); err != nil {
		t.Fatalf("a big Pod on an approved base: %v", err)
	}
	reg.ResetCounts()
	start := time.Now()
	if err := k8sClient.Create(ctx, pod(ns, "big-2", images...)); err != nil {
		t.Fatalf("a big Pod on an approved base: %v", err)
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("the second Pod cost %d registry requests, want 0", n)
	}
	t.Logf("a 200-container Pod admitted in %s", time.Since(start))
}

func TestUnreachableRegistryIsAnsweredWithinTheDeadline(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Enforce)
	approve(t, ns)
	// A registry that accepts connections and never answers.
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(stuck.Close)
	host := strings.TrimPrefix(stuck.URL, "http://")

	// 200 distinct tag-only images: classified a few at a time, and all
	// Unknown once the match timeout passes.
	var images []string
	for i := range 200 {
		images = append(images, fmt.Sprintf("%s/apps/app-%d:1", host, i))
	}
	c, w := clientWithWarnings(t)
	start := time.Now()
	if err := c.Create(ctx, pod(ns, "stuck", images...)); err != nil {
		t.Fatalf("unknown images in enforce mode with --admission-unknown=allow: %v", err)
	}
	took := time.Since(start)
	if took > matchTimeout+2*time.Second {
		t.Errorf("the answer took %s, want about the match timeout (%s)", took, matchTimeout)
	}
	if got := w.all(); !strings.Contains(got, "could not be checked against the catalog") {
		t.Errorf("warnings %q do not say the images could not be checked", got)
	}

	// With --admission-unknown=deny the same Pod is refused, as fast.
	validator.Unknown = admission.DenyUnknown
	t.Cleanup(func() { validator.Unknown = "" })
	start = time.Now()
	err := k8sClient.Create(ctx, pod(ns, "stuck-deny", images...))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "could not be checked") {
		t.Errorf("unknown images with deny: got %v, want a denial", err)
	}
	if took := time.Since(start); took > matchTimeout+2*time.Second {
		t.Errorf("the denial took %s", took)
	}
}

func TestOddButValidReferences(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, admission.Enforce)
	approve(t, ns)
	for i, img := range []string{
		imgs.shop, // host with a port
		strings.TrimSuffix(imgs.shop, ":1") + "@" + imgs.shopDigest,
		imgs.shop + "@" + imgs.shopDigest,
		imgs.python, // the base itself
	} {
		if err := k8sClient.Create(ctx, pod(ns, fmt.Sprintf("odd-%d", i), img)); err != nil {
			t.Errorf("%q: %v", img, err)
		}
	}
	// A reference no runtime can pull is refused with a clear message.
	err := k8sClient.Create(ctx, pod(ns, "upper", strings.Replace(imgs.shop, "apps/shop", "Apps/Shop", 1)))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "not a valid image reference") {
		t.Errorf("upper-case repository: got %v, want a denial saying the reference is invalid", err)
	}
}

func TestMalformedRequestsGetAClearAnswer(t *testing.T) {
	wo := testEnv.Webhook
	url := fmt.Sprintf("https://%s:%d%s", wo.LocalServingHost, wo.LocalServingPort, admission.Path)
	hc := webhookHTTPClient(t)
	for name, body := range map[string]string{
		"not JSON":       "{{{",
		"no request":     `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`,
		"garbled object": `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"` + newNamespace(t, admission.Enforce) + `","object":{"spec":{"containers":"not a list"}}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := hc.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s", resp.Status, body)
			if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), `"allowed":false`) {
				t.Errorf("answer %s admits a malformed request", body)
			}
			if name == "no request" && !strings.Contains(string(body), "malformed AdmissionReview") {
				t.Errorf("answer %s does not say the review is malformed", body)
			}
			if name == "garbled object" && !strings.Contains(string(body), "cannot be decoded") {
				t.Errorf("answer %s does not say the Pod cannot be decoded", body)
			}
		})
	}
}

// webhookHTTPClient trusts the webhook server's certificate.
func webhookHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(testEnv.Webhook.LocalServingCAData) {
		t.Fatal("no CA for the webhook server")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

func TestExcludedNamespacesAreAdmittedByTheCodeToo(t *testing.T) {
	ctx := context.Background()
	// plinth's own namespace, labelled enforce: the API server would not
	// call the webhook, and the webhook admits it anyway.
	own := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plinth-system", Labels: map[string]string{admission.ModeLabel: "enforce"}}}
	if err := k8sClient.Create(ctx, own); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	enforced := newNamespace(t, admission.Enforce)
	approve(t, enforced)
	for ns, allowed := range map[string]bool{"plinth-system": true, "kube-system": true, enforced: false} {
		raw, err := json.Marshal(pod(ns, "cart", imgs.cart))
		if err != nil {
			t.Fatal(err)
		}
		var resp ctrladmission.Response
		waitFor(t, func() error {
			resp = validator.Handle(ctx, ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Create,
				Namespace: ns, Object: runtime.RawExtension{Raw: raw},
			}})
			if ns == "kube-system" || resp.Allowed == allowed {
				return nil
			}
			return fmt.Errorf("namespace %s: allowed=%v, want %v", ns, resp.Allowed, allowed)
		})
		if resp.Allowed != allowed {
			t.Errorf("namespace %s: allowed=%v, want %v", ns, resp.Allowed, allowed)
		}
	}
}
