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

// An enforcing policy refuses an unsigned digest.
func TestEnforceRefusesAnUnsignedImage(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	createPolicy(t, ns, "signed", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "signed")

	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureMissingReason)
	approved := expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	g.Expect(approved.Message).To(ContainSubstring(d.DigestStr()))
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyDeniedReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(d.DigestStr()))
	g.Expect(bi.Status.ApprovedDigest).To(BeEmpty())
}

// A warning policy approves an unsigned digest and says the signature is
// missing.
func TestWarnApprovesAnUnsignedImageAndSaysSo(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	createPolicy(t, ns, "warn", keysPolicy(catalogv1.VerificationWarn, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "warn")

	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureMissingReason)
	approved := expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(approved.Message).To(ContainSubstring("signature"))
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d.DigestStr()))
}

// A signature by a key the policy does not trust is no signature at all.
func TestSignatureByAnotherKeyIsInvalid(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	a, b := newKeyPair(t), newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	pub.sign(d, b.signer, nil, nil)
	createPolicy(t, ns, "trusts-a", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "trusts-a")

	verified := expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureInvalidReason)
	g.Expect(verified.Message).To(ContainSubstring(a.fp))
	g.Expect(verified.Message).NotTo(ContainSubstring(pub.reg.Host))
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(BeEmpty())
}

// Keyless: a certificate from the policy's own trusted root verifies when it
// names a trusted identity, and only then.
func TestKeylessSignatureNeedsATrustedIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	ca := newCertAuthority(t)
	const issuer, subject = "https://issuer.test", "release@publisher.test"
	ref, d := pub.push("base/alpine:3.22", "v1")
	s, cert, chain := ca.issue(t, subject, issuer)
	pub.sign(d, s, cert, chain)

	g.Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sigstore"},
		Data:       map[string]string{"trusted_root.json": ca.trustedRoot(t)},
	})).To(Succeed())
	keyless := func(subject string) catalogv1.ImagePolicySpec {
		return catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
			Identities:  []catalogv1.KeylessIdentity{{Issuer: issuer, Subject: subject}},
			TrustedRoot: &catalogv1.TrustedRootSource{ConfigMapRef: &catalogv1.KeyReference{Name: "sigstore", Key: "trusted_root.json"}},
			IgnoreTlog:  true,
			IgnoreSCT:   true,
		}}
	}
	createPolicy(t, ns, "release", keyless(subject))
	createPolicy(t, ns, "someone-else", keyless("someone@else.test"))
	trusted := createBaseImage(t, ns, "alpine", ref, "release")
	untrusted := createBaseImage(t, ns, "alpine-else", ref, "someone-else")

	verified := expectCondition(t, trusted, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Expect(verified.Message).To(ContainSubstring(subject))
	expectCondition(t, trusted, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(getBaseImage(g, trusted).Status.ApprovedDigest).To(Equal(d.DigestStr()))

	notTrusted := expectCondition(t, untrusted, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.UntrustedIdentityReason)
	g.Expect(notTrusted.Message).To(ContainSubstring(subject))
	expectCondition(t, untrusted, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	g.Expect(getBaseImage(g, untrusted).Status.ApprovedDigest).To(BeEmpty())
}

// A key in a Secret that does not exist yet stalls the entry with a message
// naming the Secret; creating the Secret is enough to recover.
func TestMissingKeySecretStallsUntilItIsCreated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d := pub.push("base/alpine:3.22", "v1")
	pub.sign(d, a.signer, nil, nil)
	createPolicy(t, ns, "secret-key", catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
		Keys:       []catalogv1.TrustedKey{{SecretRef: &catalogv1.KeyReference{Name: "publisher-key", Key: "cosign.pub"}}},
		IgnoreTlog: true,
	}})
	key := createBaseImage(t, ns, "alpine", ref, "secret-key")

	stalled := expectCondition(t, key, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TrustConfigInvalidReason)
	g.Expect(stalled.Message).To(ContainSubstring("publisher-key"))
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(BeEmpty())

	g.Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "publisher-key"},
		Data:       map[string][]byte{"cosign.pub": []byte(a.pem)},
	})).To(Succeed())
	// No request: the Secret's arrival alone brings the entry back.
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d.DigestStr()))
}

// Without verification there is no Verified condition; turning
// verification off removes the one an earlier policy left.
func TestNoVerificationMeansNoVerifiedCondition(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, _ := pub.push("base/alpine:3.22", "v1")
	createPolicy(t, ns, "none", catalogv1.ImagePolicySpec{})
	createPolicy(t, ns, "disabled", keysPolicy(catalogv1.VerificationDisabled, a.pem))
	createPolicy(t, ns, "enforce", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	none := createBaseImage(t, ns, "alpine-none", ref, "none")
	disabled := createBaseImage(t, ns, "alpine-disabled", ref, "disabled")
	enforced := createBaseImage(t, ns, "alpine-enforced", ref, "enforce")

	for _, key := range []client.ObjectKey{none, disabled} {
		expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
		g.Consistently(func(g Gomega) {
			g.Expect(condition(g, key, catalogv1.VerifiedCondition)).To(BeNil())
		}, 2*time.Second, tick).Should(Succeed(), key.Name)
	}

	expectCondition(t, enforced, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureMissingReason)
	var p catalogv1.ImagePolicy
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "enforce"}, &p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Verification.Mode = catalogv1.VerificationDisabled
	g.Expect(k8sClient.Patch(ctx, &p, patch)).To(Succeed())
	expectCondition(t, enforced, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, enforced, catalogv1.VerifiedCondition)).To(BeNil())
	}, timeout, tick).Should(Succeed())
}

// Under Enforce, a new unsigned digest on the tag is refused on its own
// account: the signed digest approved before stays approved.
func TestNewUnsignedDigestIsRefusedAndTheSignedOneStays(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	a := newKeyPair(t)
	ref, d1 := pub.push("base/alpine:3.22", "v1")
	pub.sign(d1, a.signer, nil, nil)
	createPolicy(t, ns, "signed", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	key := createBaseImage(t, ns, "alpine", ref, "signed")
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d1.DigestStr()))

	_, d2 := pub.push("base/alpine:3.22", "v2")
	requestReconcile(t, key)
	g.Eventually(func(g Gomega) {
		g.Expect(getBaseImage(g, key).Status.ResolvedDigest).To(Equal(d2.DigestStr()))
	}, timeout, tick).Should(Succeed())
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionFalse, catalogv1.SignatureMissingReason)
	approved := expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.SignatureRequiredReason)
	g.Expect(approved.Message).To(ContainSubstring(d2.DigestStr()))
	g.Expect(getBaseImage(g, key).Status.ApprovedDigest).To(Equal(d1.DigestStr()))
}
