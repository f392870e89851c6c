package verification

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/sign"
	"github.com/plinth-dev/plinth/test/tufrepo"
)

// keylessPublic trusts a keyless identity under the public trusted root:
// the policy names no trustedRoot.
func keylessPublic(issuer, subject string) catalogv1.ImagePolicySpec {
	return catalogv1.ImagePolicySpec{Verification: &catalogv1.VerificationPolicy{
		Identities: []catalogv1.KeylessIdentity{{Issuer: issuer, Subject: subject}},
		IgnoreTlog: true, IgnoreSCT: true,
	}}
}

// A policy with no trustedRoot verifies keyless signatures with the trusted
// root the operator fetched from its TUF mirror. While the mirror cannot be
// reached, Verified is Unknown and the approval stands; when it is back, the
// entry recovers by itself.
func TestKeylessVerifiesWithThePublicTrustedRoot(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	ca := newCertAuthority(t)
	const issuer, subject = "https://issuer.test", "release@publisher.test"
	repo := tufrepo.New(t, map[string][]byte{"trusted_root.json": []byte(ca.trustedRoot(t))})
	ref, d1 := pub.push("base/alpine:3.22", "v1")
	s, cert, chain := ca.issue(t, subject, issuer)
	pub.sign(d1, s, cert, chain)

	usePublicRoot(t, sign.PublicRootOptions{Mirror: repo.URL, Root: repo.Root, CacheDir: t.TempDir()})
	createPolicy(t, ns, "public", keylessPublic(issuer, subject))
	key := createBaseImage(t, ns, "alpine", ref, "public")
	verified := expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Expect(verified.Message).To(ContainSubstring(subject))
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(repo.Requests()).To(BeNumerically(">", 0))

	// An operator that has not fetched the root yet, and a mirror that is
	// down: a new digest cannot be judged, the approved one stays.
	repo.SetDown(true)
	usePublicRoot(t, sign.PublicRootOptions{Mirror: repo.URL, Root: repo.Root, RetryAfter: 200 * time.Millisecond})
	_, d2 := pub.push("base/alpine:3.22", "v2")
	s, cert, chain = ca.issue(t, subject, issuer)
	pub.sign(d2, s, cert, chain)
	requestReconcile(t, key)
	unknown := expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionUnknown, catalogv1.TrustRootUnavailableReason)
	g.Expect(unknown.Message).To(ContainSubstring("cannot be fetched from the TUF mirror"))
	g.Expect(unknown.Message).NotTo(ContainSubstring(repo.URL))
	expectCondition(t, key, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d1.DigestStr()))
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.StalledCondition)).To(BeNil())

	// Retried with backoff: the mirror's return is noticed unasked.
	repo.SetDown(false)
	expectCondition(t, key, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
	g.Eventually(func(g Gomega) string { return getBaseImage(g, key).Status.ApprovedDigest }, timeout, tick).Should(Equal(d2.DigestStr()))
}

// An operator running offline has no public trusted root: a policy that
// needs one stalls and says to name a trustedRoot; one that needs none
// (keys, no transparency log) is unaffected.
func TestOfflineOperatorNeedsATrustedRoot(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	pub := newPublisher(t)
	ca := newCertAuthority(t)
	a := newKeyPair(t)
	const issuer, subject = "https://issuer.test", "release@publisher.test"
	ref, d := pub.push("base/alpine:3.22", "v1")
	s, cert, chain := ca.issue(t, subject, issuer)
	pub.sign(d, s, cert, chain)
	pub.sign(d, a.signer, nil, nil)

	usePublicRoot(t, sign.PublicRootOptions{})
	createPolicy(t, ns, "keyless", keylessPublic(issuer, subject))
	createPolicy(t, ns, "keys", keysPolicy(catalogv1.VerificationEnforce, a.pem))
	keyless := createBaseImage(t, ns, "keyless", ref, "keyless")
	keyed := createBaseImage(t, ns, "keyed", ref, "keys")

	stalled := expectCondition(t, keyless, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.TrustRootUnavailableReason)
	g.Expect(stalled.Message).To(And(ContainSubstring("runs offline"), ContainSubstring("verification.trustedRoot")))
	expectCondition(t, keyless, catalogv1.VerifiedCondition, metav1.ConditionUnknown, catalogv1.TrustRootUnavailableReason)
	expectCondition(t, keyed, catalogv1.VerifiedCondition, metav1.ConditionTrue, catalogv1.VerifiedReason)
}
