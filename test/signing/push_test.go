package signing

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// Credentials of the read-only registry below.
const (
	pullUser, pullPass = "reader", "read-only"
	pushUser, pushPass = "signer", "may-write"
)

// readOnlyRegistry is a loopback registry that requires credentials for
// everything and lets only the push user write: pushes with the pull
// user's credentials are denied (403), as in a registry where the
// catalog's readers cannot change the images.
type readOnlyRegistry struct {
	*registrytest.Registry
	// deniedPushes counts the writes refused to the pull user.
	deniedPushes atomic.Int64
}

func newReadOnlyRegistry(t *testing.T) *readOnlyRegistry {
	r := &readOnlyRegistry{}
	r.Registry = registrytest.New(t, registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			user, pass, ok := req.BasicAuth()
			if !ok || !(user == pullUser && pass == pullPass || user == pushUser && pass == pushPass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="plinth-test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			if req.Method != http.MethodGet && req.Method != http.MethodHead && user != pushUser {
				r.deniedPushes.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"read-only user"}]}`)
				return
			}
			next.ServeHTTP(w, req)
		})
	}))
	return r
}

// dockerConfig is the .dockerconfigjson of a Secret holding user's
// credentials for host.
func dockerConfig(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth)
}

// A registry that lets the BaseImage's pull credentials read but not write
// refuses the catalog's signature with a message that says which
// credentials were used; a push Secret that is missing or malformed says
// so; a valid one signs, without anyone asking again.
func TestPushCredentialsComeFromThePushSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	reg := newReadOnlyRegistry(t)

	img, err := imagetest.AlpineImage(imagetest.DistroOptions{
		Created:  o.clock.Now().Add(-time.Hour),
		Packages: []imagetest.Package{{Name: "musl", Version: "1.2.5-r1"}, {Name: "zlib", Version: "1.3.1-r2"}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	ref := reg.Host + "/base/alpine:3.22"
	d, err := imagetest.PushImage(ctx, ref, img, remote.WithAuth(&authn.Basic{Username: pushUser, Password: pushPass}))
	g.Expect(err).NotTo(HaveOccurred())

	key := newCosignKey(t, "s3cret")
	o.putSecret(keySecret, key.data)
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(reg.Host, pullUser, pullPass)},
	})).To(Succeed())
	o.createSigningPolicy(keySecret)
	g.Expect(k8sClient.Create(ctx, &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "alpine"},
		Spec: catalogv1.BaseImageSpec{
			Image:         catalogv1.ImageReference(ref),
			PolicyRef:     catalogv1.LocalObjectReference{Name: "p"},
			PullSecretRef: &catalogv1.LocalObjectReference{Name: "pull"},
		},
	})).To(Succeed())

	// The pull credentials cannot push.
	bi := expectSigningFailed(t, o, d, "HTTP 403", "pull credentials", "signing.pushSecretRef")
	g.Expect(reg.deniedPushes.Load()).To(BeNumerically(">", 0))
	g.Expect(bi.Status.Signature).To(BeNil())
	stillNoHotLoop(t, o, reg)

	// A push Secret that does not exist yet, then one that is malformed.
	var p catalogv1.ImagePolicy
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: "p"}, &p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Signing.PushSecretRef = &catalogv1.LocalObjectReference{Name: "push"}
	g.Expect(k8sClient.Patch(ctx, &p, patch)).To(Succeed())
	bi = o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.PushSecretNotFoundReason)
	g.Expect(condition(bi, catalogv1.SignedCondition).Message).To(ContainSubstring(`push Secret "push" does not exist`))
	g.Expect(condition(bi, catalogv1.ReadyCondition).Reason).To(Equal(catalogv1.PushSecretNotFoundReason))
	g.Expect(condition(bi, catalogv1.StalledCondition).Reason).To(Equal(catalogv1.PushSecretNotFoundReason))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d))
	stillNoHotLoop(t, o, reg)

	// A Secret of the wrong type (the API server checks the content of a
	// dockerconfigjson one).
	push := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "push"},
		Data:       map[string][]byte{"username": []byte(pushUser), "password": []byte(pushPass)},
	}
	g.Expect(k8sClient.Create(ctx, push)).To(Succeed())
	bi = o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.PushSecretInvalidReason)
	msg := condition(bi, catalogv1.SignedCondition).Message
	g.Expect(msg).To(ContainSubstring("push Secret cannot be used"))
	g.Expect(msg).To(ContainSubstring(string(corev1.SecretTypeDockerConfigJson)))
	g.Expect(msg).NotTo(ContainSubstring(pushPass))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d))

	// The push credentials: the Secret's replacement alone brings signing
	// back.
	g.Expect(k8sClient.Delete(ctx, push)).To(Succeed())
	push = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "push"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(reg.Host, pushUser, pushPass)},
	}
	g.Expect(k8sClient.Create(ctx, push)).To(Succeed())
	bi = o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
	o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(bi.Status.Signature).NotTo(BeNil())

	// What was pushed verifies with the catalog's public key, read with the
	// pull credentials.
	image, err := name.NewDigest(reg.Host + "/base/alpine@" + d)
	g.Expect(err).NotTo(HaveOccurred())
	co := o.checkOpts(key.pubPEM, cosign.SimpleClaimVerifier)
	co.RegistryClientOpts = []ociremote.Option{ociremote.WithRemoteOptions(
		remote.WithTransport(reg.Transport()), remote.WithAuth(&authn.Basic{Username: pullUser, Password: pullPass}))}
	sigs, _, err := cosign.VerifyImageSignatures(ctx, image, co)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sigs).To(HaveLen(1))
	g.Expect(bi.Status.Signature.Signature).To(HavePrefix(reg.Host + "/base/alpine:"))
	g.Expect(strings.Contains(msg, reg.Host)).To(BeFalse(), "message names the registry")
}

// stillNoHotLoop checks that a failed signing is not retried at once:
// no status rewrite and (almost) no registry traffic for a while.
func stillNoHotLoop(t *testing.T, o *operator, reg *readOnlyRegistry) {
	t.Helper()
	g := NewWithT(t)
	// Let the reconciles already queued (the policy turning Ready, a
	// Secret's event) end: wait for a quiet second, which a hot loop never
	// gives.
	g.Eventually(func(g Gomega) {
		before := reg.Requests()
		time.Sleep(time.Second)
		g.Expect(reg.Requests()).To(Equal(before))
	}, timeout, tick).Should(Succeed())
	rv := o.get(g, "alpine").ResourceVersion
	requests := reg.Requests()
	g.Consistently(func(g Gomega) {
		g.Expect(reg.Requests()-requests).To(BeNumerically("<=", 2), "registry requests")
		g.Expect(o.get(g, "alpine").ResourceVersion).To(Equal(rv), "status rewritten")
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
}
