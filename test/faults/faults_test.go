package faults

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/faultproxy"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

const manifests = "/v2/base/alpine/manifests/"

// entry is a BaseImage approved on an image of a registry behind the
// fault proxy.
type entry struct {
	key    client.ObjectKey
	proxy  *faultproxy.Proxy
	reg    *registrytest.Registry
	digest string
}

// newEntry creates a namespace, a policy and a BaseImage reading an image
// through a fault proxy, and waits until it is Ready. With user set, the
// registry asks for basic credentials and the entry has a pull Secret.
func newEntry(t *testing.T, user, pass string) *entry {
	t.Helper()
	e := newEntryWith(t, user, pass, nil)
	e.expect(t, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason, "")
	return e
}

// newEntryWith is newEntry without the wait, calling before (when not nil)
// with the proxy before the BaseImage is created.
func newEntryWith(t *testing.T, user, pass string, before func(reg *registrytest.Registry, p *faultproxy.Proxy)) *entry {
	t.Helper()
	ctx := context.Background()
	var opts []registrytest.Option
	if user != "" {
		opts = append(opts, registrytest.WithBasicAuth(user, pass))
	}
	reg := registrytest.New(t, opts...)
	img, err := imagetest.Image(imagetest.ImageOptions{Created: time.Now().Add(-time.Hour), OS: "linux", Architecture: "amd64",
		Files: map[string]string{"etc/motd": t.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/base/alpine:3.22"
	var d string
	if user != "" {
		d, err = imagetest.PushImage(ctx, ref, img, basicAuth(user, pass))
	} else {
		d, err = imagetest.PushImage(ctx, ref, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.New(t, reg.URL())
	if before != nil {
		before(reg, p)
	}

	ns := fmt.Sprintf("faults%d", nsCounter.Add(1))
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	spec := catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(p.Host + "/base/alpine:3.22"), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}}
	if user != "" {
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{p.Host: map[string]string{"auth": auth}}})
		if err := k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pull"},
			Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg}}); err != nil {
			t.Fatal(err)
		}
		spec.PullSecretRef = &catalogv1.LocalObjectReference{Name: "pull"}
	}
	bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alpine"}, Spec: spec}
	if err := k8sClient.Create(ctx, bi); err != nil {
		t.Fatal(err)
	}
	// The proxy closes when the test ends; the entry goes first, so that
	// it does not retry against a closed port for the rest of the suite.
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), bi) })
	return &entry{key: client.ObjectKeyFromObject(bi), proxy: p, reg: reg, digest: d}
}

// expect waits for condition typ to have status and reason, and a message
// containing msg.
func (e *entry) expect(t *testing.T, typ string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		var bi catalogv1.BaseImage
		g.Expect(apiReader.Get(context.Background(), e.key, &bi)).To(Succeed())
		c := apimeta.FindStatusCondition(bi.Status.Conditions, typ)
		g.Expect(c).NotTo(BeNil(), "no %s condition", typ)
		g.Expect(c.Status).To(Equal(status), "%s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
		g.Expect(c.Message).To(ContainSubstring(msg))
	}, timeout, tick).Should(Succeed())
}

// keptVerdict checks that the entry still names its approved digest.
func (e *entry) keptVerdict(g Gomega) {
	var bi catalogv1.BaseImage
	g.Expect(apiReader.Get(context.Background(), e.key, &bi)).To(Succeed())
	g.Expect(bi.Status.ApprovedDigest).To(Equal(e.digest))
}

// reconciles returns how many BaseImage reconciles the manager ran.
func reconciles(g Gomega) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "baseimage" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// window is how long a fault is watched for a hot loop.
const window = 3 * time.Second

// noHotLoop checks over the window that the entry keeps its verdict and
// that the registry requests through the proxy stay few. The reconcile
// counter is shared by parallel tests, so it is bounded in total.
func (e *entry) noHotLoop(t *testing.T, maxRequests int) {
	t.Helper()
	g := NewWithT(t)
	e.proxy.ResetCounts()
	before := reconciles(g)
	g.Consistently(e.keptVerdict, window, 200*time.Millisecond).Should(Succeed())
	if n := e.proxy.Requests(); n > maxRequests {
		t.Errorf("%d registry requests in %s of failures, want at most %d", n, window, maxRequests)
	}
	// Exponential backoff from 5ms gives about a dozen per entry in 3s;
	// four entries fail at once in this suite.
	if n := reconciles(g) - before; n > 4*15 {
		t.Errorf("%v reconciles in %s", n, window)
	}
}

// recovers clears the faults and waits for Ready again.
func (e *entry) recovers(t *testing.T) {
	t.Helper()
	e.proxy.Clear()
	requestReconcile(t, e.key)
	e.expect(t, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason, "")
}

func basicAuth(user, pass string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: user, Password: pass})
}

func requestReconcile(t *testing.T, key client.ObjectKey) {
	t.Helper()
	var bi catalogv1.BaseImage
	if err := k8sClient.Get(context.Background(), key, &bi); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
	if err := k8sClient.Patch(context.Background(), &bi, patch); err != nil {
		t.Fatal(err)
	}
}

// Transient registry failures keep the verdict, say the registry is
// unavailable and why, and back off: a 429 asking for a day, a 429 asking
// for a date ten years away, a 503, and a connection that never answers.
func TestTransientFaultsKeepTheVerdict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault faultproxy.Fault
		msg   string
	}{
		{"429 with Retry-After 86400", faultproxy.TooManyRequests("86400"), "Cannot read the image: registry rate limit exceeded (HTTP 429)"},
		{"429 with a far Retry-After date", faultproxy.TooManyRequests(faultproxy.RetryAfterDate(time.Now().AddDate(10, 0, 0))), "Cannot read the image: registry rate limit exceeded (HTTP 429)"},
		{"503", faultproxy.Status(http.StatusServiceUnavailable), "Cannot read the image: registry unavailable (HTTP 503)"},
		{"hanging connection", faultproxy.Hang(), "Cannot read the image: registry request timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEntry(t, "", "")
			e.proxy.Add(faultproxy.Rule{Prefix: manifests, Fault: tc.fault})
			requestReconcile(t, e.key)
			e.expect(t, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.RegistryUnavailableReason, tc.msg)
			e.expect(t, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason, "")
			e.expect(t, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason, "")
			// Each reconcile makes at most two requests (one retry); backoff
			// keeps reconciles to about a dozen in the window.
			e.noHotLoop(t, 30)
			e.recovers(t)
		})
	}
}

// A tag moved to a manifest over the size limit (1,000 layers) stalls the
// entry with a reason that names the limit; the approved digest stays.
func TestOversizedManifestStallsWithTheLimit(t *testing.T) {
	t.Parallel()
	e := newEntry(t, "", "")
	img, err := faultproxy.ManyLayers(1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.proxy.ServeImage("base/alpine", "3.22", img); err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, e.key)
	e.expect(t, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.InvalidImageReason, "Cannot read the image: manifest larger than 65536 bytes")
	e.expect(t, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.InvalidImageReason, "")
	// Stalled waits for the interval: hardly any request in the window.
	e.noHotLoop(t, 2)
	e.recovers(t)
}

// A Bearer challenge whose token realm is on another host stalls the
// entry with AuthenticationFailed; the token server never sees the
// registry's credentials, and the entry does not retry in a loop.
func TestTokenRealmOnAnotherHostGetsNoCredentials(t *testing.T) {
	t.Parallel()
	const user, pass = "reader", "s3cret-for-registry"
	var token *faultproxy.Proxy
	e := newEntryWith(t, user, pass, func(reg *registrytest.Registry, p *faultproxy.Proxy) {
		token = faultproxy.New(t, reg.URL())
		token.Add(faultproxy.Rule{Prefix: "/", Fault: faultproxy.Respond(http.StatusOK, "application/json", "", []byte(`{"token":"t0ken"}`))})
		// The same loopback server under another name.
		realm := "http://localhost:" + token.Host[strings.LastIndex(token.Host, ":")+1:] + "/token"
		p.Add(faultproxy.Rule{Prefix: "/v2/", Fault: faultproxy.BearerChallenge(realm, "registry", "t0ken")})
	})
	e.digest = "" // never approved
	e.expect(t, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.AuthenticationFailedReason,
		"Cannot read the image: registry authentication failed: token realm refused: it is on another site than the registry")
	e.noHotLoop(t, 2)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	if n := token.Authorizations()[basic]; n != 0 {
		t.Errorf("the token server received the registry's credentials %d times", n)
	}
	if n := token.Requests(); n != 0 {
		t.Errorf("the token server received %d requests", n)
	}
	e.recovers(t)
}
