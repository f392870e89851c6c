package verification

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// A trusted root created after the policy is noticed by itself.
func TestATrustedRootCreatedLaterIsNoticed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	ca := newCertAuthority(t)
	const issuer, subject = "https://issuer.test", "release@publisher.test"
	ref, d := pub.push("base/alpine:3.22", "v1")
	s, cert, chain := ca.issue(t, subject, issuer)
	pub.sign(d, s, cert, chain)
	createPolicy(t, ns, "release", catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
		Identities:  []catalogv1.KeylessIdentity{{Issuer: issuer, Subject: subject}},
		TrustedRoot: &catalogv1.TrustedRootSource{ConfigMapRef: &catalogv1.KeyReference{Name: "sigstore", Key: "trusted_root.json"}},
		IgnoreTlog:  true, IgnoreSCT: true,
	}})
	key := createBaseImage(t, ns, "alpine", ref, "release")
	st := expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TrustConfigInvalidReason)
	g.Expect(st.Message).To(ContainSubstring(`ConfigMap "sigstore" not found`))
	g.Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sigstore"},
		Data:       map[string]string{"trusted_root.json": ca.trustedRoot(t)},
	})).To(Succeed())
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
}

// A trust that can no longer be read leaves no Verified=True standing.
func TestADeletedKeySecretLeavesVerifiedUnknown(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	pub.sign(d, a.signer, nil, nil)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "publisher-key"},
		Data:       map[string][]byte{"cosign.pub": []byte(a.pem)},
	}
	g.Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	createPolicy(t, ns, "secret-key", catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
		Keys:       []catalogv1.TrustedKey{{SecretRef: &catalogv1.KeyReference{Name: "publisher-key", Key: "cosign.pub"}}},
		IgnoreTlog: true,
	}})
	key := createBaseImage(t, ns, "alpine", ref, "secret-key")
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Expect(k8sClient.Delete(ctx, sec)).To(Succeed())
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TrustConfigInvalidReason)
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionUnknown, catalogv1.TrustConfigInvalidReason)
}

// Under Enforce the approved digest needs a valid signature too, whether or
// not the tag moved.
func TestEnforceRevokesAnUnsignedApprovedDigest(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d1 := pub.push("base/alpine:3.22", "v1")
	createPolicy(t, ns, "p", keysPolicy(catalogv1.VerificationWarn, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "p")
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	_, d2 := pub.push("base/alpine:3.22", "v2")
	var p catalogv1.ImagePolicy
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "p"}, &p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Verification.Mode = catalogv1.VerificationEnforce
	g.Expect(k8sClient.Patch(ctx, &p, patch)).To(Succeed())
	requestReconcile(t, key)
	g.Eventually(func(g Gomega) {
		g.Expect(getBaseImage(g, key).Status.ResolvedDigest).To(Equal(d2.DigestStr()))
	}, timeout, tick).Should(Succeed())
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	g.Expect(d1.DigestStr()).NotTo(Equal(d2.DigestStr()))
	g.Eventually(func(g Gomega) string { return getBaseImage(g, key).Status.ApprovedDigest }, timeout, tick).Should(BeEmpty())
}

// A verdict that is not Verified is cached, but a user's request checks
// again: signing and asking is enough.
func TestSigningAndARequestApproveTheDigest(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	createPolicy(t, ns, "signed", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "signed")
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureMissingReason)
	// The publisher signs; the user asks for a new look.
	pub.sign(d, a.signer, nil, nil)
	requestReconcile(t, key)
	verified := expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Expect(verified.Message).To(ContainSubstring(a.fp))
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d.DigestStr()))
}

// A trusted root whose certificate authority has expired refuses a new
// digest signed since, says the root must be replaced, and keeps the
// approval of the digest signed while the authority was valid; so does a
// trusted root that goes missing.
func TestAnExpiredTrustedRootKeepsTheApproval(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	ca := newCertAuthority(t)
	const issuer, subject = "https://issuer.test", "release@publisher.test"
	now := time.Now()
	ref, d1 := pub.push("base/alpine:3.22", "v1")
	s, cert, chain := ca.issueAt(t, subject, issuer, now.Add(-2*time.Hour))
	pub.sign(d1, s, cert, chain)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sigstore"},
		Data:       map[string]string{"trusted_root.json": ca.trustedRoot(t)},
	}
	g.Expect(k8sClient.Create(ctx, cm)).To(Succeed())
	createPolicy(t, ns, "release", catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
		Identities:  []catalogv1.KeylessIdentity{{Issuer: issuer, Subject: subject}},
		TrustedRoot: &catalogv1.TrustedRootSource{ConfigMapRef: &catalogv1.KeyReference{Name: "sigstore", Key: "trusted_root.json"}},
		IgnoreTlog:  true, IgnoreSCT: true,
	}})
	key := createBaseImage(t, ns, "alpine", ref, "release")
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)

	// The authority stops being valid between the two signatures.
	_, d2 := pub.push("base/alpine:3.22", "v2")
	s, cert, chain = ca.issueAt(t, subject, issuer, now.Add(-time.Hour))
	pub.sign(d2, s, cert, chain)
	cm.Data["trusted_root.json"] = ca.trustedRootUntil(t, now.Add(-90*time.Minute))
	g.Expect(k8sClient.Update(ctx, cm)).To(Succeed())
	requestReconcile(t, key)
	verified := expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionUnknown, catalogv1.TrustConfigInvalidReason)
	g.Expect(verified.Message).To(ContainSubstring("replace the trusted root"))
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TrustConfigInvalidReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(d2.DigestStr()))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d1.DigestStr()))
	// Stalled: looked at again at the policy's interval, not in a loop.
	g.Consistently(func(g Gomega) string { return getBaseImage(g, key).ResourceVersion }, 2*time.Second, tick).Should(Equal(bi.ResourceVersion))

	g.Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		c := condition(g, key, catalogv1.StalledCondition)
		g.Expect(c).NotTo(BeNil())
		return c.Message
	}, timeout, tick).Should(ContainSubstring(`ConfigMap "sigstore" not found`))
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionUnknown, catalogv1.TrustConfigInvalidReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d1.DigestStr()))
}
