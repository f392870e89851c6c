package signing

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/sign"
	"github.com/plinth-dev/plinth/test/testenv"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// An approved digest under a signing policy carries a signature and the
// approval, vuln and CycloneDX attestations that cosign verifies with the
// catalog's public key alone, and status says so.
func TestAnApprovedDigestIsSignedAndAttested(t *testing.T) {
	g := NewWithT(t)
	o, key, image, bi := signedAlpine(t)

	g.Expect(bi.Status.ApprovedDigest).To(Equal(image.DigestStr()))
	g.Expect(condition(bi, catalogv1.SignedCondition).Message).To(ContainSubstring(key.fingerprint(t)))
	o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	sig := bi.Status.Signature
	g.Expect(sig).NotTo(BeNil())
	tag := strings.Replace(image.DigestStr(), ":", "-", 1)
	g.Expect(*sig).To(And(
		HaveField("Digest", image.DigestStr()),
		HaveField("KeyFingerprint", key.fingerprint(t)),
		HaveField("Signature", image.Context().String()+":"+tag+".sig"),
		HaveField("Attestations", image.Context().String()+":"+tag+".att"),
		HaveField("VulnDBVersion", o.db.Version()),
		HaveField("PolicyGeneration", int64(1)),
	))
	g.Expect(sig.ValidUntil.Time).To(BeTemporally("==", o.clock.Now().Add(interval+grace)))

	sigs, err := o.verifySignatures(image, key.pubPEM)
	g.Expect(err).NotTo(HaveOccurred(), "cosign verifying the signature")
	g.Expect(sigs).To(HaveLen(1))

	byType, err := o.verifyAttestations(image, key.pubPEM)
	g.Expect(err).NotTo(HaveOccurred(), "cosign verifying the attestations")
	g.Expect(byType).To(HaveLen(3))
	for _, pt := range []string{sign.PredicateTypeApproval, sign.PredicateTypeVuln, sign.PredicateTypeCycloneDX} {
		g.Expect(byType).To(HaveKeyWithValue(pt, HaveLen(1)), "attestations of type %s", pt)
		st := byType[pt][0]
		g.Expect(st.Subject).To(HaveLen(1))
		g.Expect(st.Subject[0].Digest).To(HaveKeyWithValue("sha256", strings.TrimPrefix(image.DigestStr(), "sha256:")))
	}
	a := byType[sign.PredicateTypeApproval][0].approval(t)
	g.Expect(a.ValidUntil).To(BeTemporally("==", sig.ValidUntil.Time))
	g.Expect(a).To(And(
		HaveField("Policy", "p"),
		HaveField("PolicyGeneration", int64(1)),
		HaveField("Verdict", sign.VerdictApproved),
		HaveField("Digest", image.DigestStr()),
		HaveField("VulnDBVersion", o.db.Version()),
	))
	g.Expect(a.ApprovedAt).To(BeTemporally("==", bi.Status.Approved.ApprovedAt.Time))
	g.Expect(string(byType[sign.PredicateTypeCycloneDX][0].Predicate)).To(ContainSubstring(`"musl"`), "the SBOM lists the image's packages")
	g.Expect(string(byType[sign.PredicateTypeVuln][0].Predicate)).To(ContainSubstring(`"trivy"`))

	// Another key does not verify it.
	other := newCosignKey(t, "other")
	_, err = o.verifySignatures(image, other.pubPEM)
	g.Expect(err).To(HaveOccurred(), "a signature verified with a key that did not make it")
}

// Reconciling a signed entry again writes nothing to the registry and
// leaves exactly one signature and one attestation of each type.
func TestReconcilingASignedDigestPushesNothing(t *testing.T) {
	g := NewWithT(t)
	o, key, image, bi := signedAlpine(t)
	before := *bi.Status.Signature
	o.writes.Store(0)

	for range 10 {
		bi = o.pokeAndWait("alpine")
		g.Expect(condition(bi, catalogv1.SignedCondition)).To(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", catalogv1.SignedReason)))
	}
	g.Expect(o.writes.Load()).To(BeZero(), "registry writes while nothing changed")
	g.Expect(*bi.Status.Signature).To(Equal(before))
	sigs, atts := o.stored(image)
	g.Expect(sigs).To(Equal(1))
	g.Expect(counts(atts)).To(Equal(oneOfEach))
	byType, err := o.verifyAttestations(image, key.pubPEM)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(byType[sign.PredicateTypeApproval][0].approval(t).ValidUntil).To(BeTemporally("==", before.ValidUntil.Time))
}

// A new DB that judges the approved digest again renews the approval:
// still one approval attestation, naming the new DB, valid for longer.
func TestADBUpdateReplacesTheApproval(t *testing.T) {
	g := NewWithT(t)
	o, key, image, bi := signedAlpine(t)
	old := *bi.Status.Signature
	// Let reconciles the setup set off (the policy's own status, for one)
	// finish before the clock moves, so that the DB update's is the one
	// that signs.
	o.pokeAndWait("alpine")

	o.clock.Step(time.Hour)
	o.updateDB(muslCVE, busyboxCVE)
	version := o.db.Version()
	g.Eventually(func(g Gomega) {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.Signature).NotTo(BeNil())
		g.Expect(bi.Status.Signature.VulnDBVersion).To(Equal(version))
	}, timeout, tick).Should(Succeed())
	sig := bi.Status.Signature
	g.Expect(sig.ValidUntil.Time).To(BeTemporally("==", o.clock.Now().Add(interval+grace)))
	g.Expect(sig.ValidUntil.Time).To(BeTemporally(">", old.ValidUntil.Time))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(image.DigestStr()))
	g.Expect(condition(bi, catalogv1.SignedCondition).Status).To(Equal(metav1.ConditionTrue))

	sigs, atts := o.stored(image)
	g.Expect(sigs).To(Equal(1), "the signature over the same digest with the same key is not repeated")
	g.Expect(counts(atts)).To(Equal(oneOfEach))
	byType, err := o.verifyAttestations(image, key.pubPEM)
	g.Expect(err).NotTo(HaveOccurred())
	a := byType[sign.PredicateTypeApproval][0].approval(t)
	g.Expect(a.VulnDBVersion).To(Equal(version))
	g.Expect(a.ValidUntil).To(BeTemporally("==", sig.ValidUntil.Time))
	g.Expect(string(byType[sign.PredicateTypeVuln][0].Predicate)).To(ContainSubstring(version), "the vuln attestation names the new DB")
}

// A new key in the Secret re-signs: the digest then verifies with the new
// public key, and the attestations with it alone.
func TestARotatedKeyReSigns(t *testing.T) {
	g := NewWithT(t)
	o, oldKey, image, _ := signedAlpine(t)

	newKey := newCosignKey(t, "n3w-s3cret")
	o.putSecret(keySecret, newKey.data)
	o.pokeAndWait("alpine")
	bi := o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
	g.Expect(bi.Status.Signature).NotTo(BeNil())
	g.Expect(bi.Status.Signature.KeyFingerprint).To(Equal(newKey.fingerprint(t)))
	g.Expect(bi.Status.Signature.KeyFingerprint).NotTo(Equal(oldKey.fingerprint(t)))

	sigs, err := o.verifySignatures(image, newKey.pubPEM)
	g.Expect(err).NotTo(HaveOccurred(), "verifying with the new key")
	g.Expect(sigs).To(HaveLen(1))
	byType, err := o.verifyAttestations(image, newKey.pubPEM)
	g.Expect(err).NotTo(HaveOccurred(), "verifying the attestations with the new key")
	g.Expect(byType).To(HaveLen(3))
	a := byType[sign.PredicateTypeApproval][0].approval(t)
	g.Expect(a.ValidUntil).To(BeTemporally("==", bi.Status.Signature.ValidUntil.Time))

	// The old key's signature stays for verifiers not yet told of the new
	// key; the attestations are the new key's only.
	n, atts := o.stored(image)
	g.Expect(n).To(Equal(2))
	g.Expect(counts(atts)).To(Equal(oneOfEach))
	_, err = o.verifyAttestations(image, oldKey.pubPEM)
	g.Expect(err).To(HaveOccurred(), "the replaced attestations still verify with the old key")
}

// A digest that loses its approval is not attested again: its approval
// attestation keeps its old validUntil and runs out.
func TestARevokedDigestGetsNoNewApproval(t *testing.T) {
	g := NewWithT(t)
	o, key, image, bi := signedAlpine(t)
	old := *bi.Status.Signature

	// zlib's CVE is disclosed an hour later; the policy gives no window.
	o.clock.Step(time.Hour)
	o.updateDB(muslCVE, zlibCVE)
	bi = o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.NothingToSignReason)
	g.Expect(bi.Status.ApprovedDigest).To(BeEmpty())
	g.Expect(bi.Status.Signature).To(BeNil())
	g.Expect(condition(bi, catalogv1.ApprovedCondition).Status).To(Equal(metav1.ConditionFalse))

	check := func() {
		t.Helper()
		_, atts := o.stored(image)
		g.Expect(counts(atts)).To(Equal(oneOfEach), "attestations after the revocation")
		byType, err := o.verifyAttestations(image, key.pubPEM)
		g.Expect(err).NotTo(HaveOccurred())
		a := byType[sign.PredicateTypeApproval][0].approval(t)
		g.Expect(a.ValidUntil).To(BeTemporally("==", old.ValidUntil.Time), "the revoked approval was renewed")
		g.Expect(a.VulnDBVersion).To(Equal(old.VulnDBVersion))
	}
	check()
	o.clock.Step(time.Hour)
	bi = o.pokeAndWait("alpine")
	g.Expect(condition(bi, catalogv1.SignedCondition).Reason).To(Equal(catalogv1.NothingToSignReason))
	g.Expect(bi.Status.Signature).To(BeNil())
	check()
}

// noHotLoop checks that a failed entry is left alone until its requeue:
// for a few seconds the object is not rewritten, nothing is pushed, and the
// registry hears at most one more check (a late watch event of the key's
// Secret may cost one reconcile, which reads the image and its signature
// and attestations: up to 4 requests; a loop, backing off from 5 ms, would
// cost many more).
func noHotLoop(t *testing.T, o *operator, name string) {
	t.Helper()
	g := NewWithT(t)
	rv := o.get(g, name).ResourceVersion
	requests, writes := o.reg.Requests(), o.writes.Load()
	g.Consistently(func(g Gomega) {
		g.Expect(o.reg.Requests()-requests).To(BeNumerically("<=", 4), "registry requests")
		g.Expect(o.writes.Load()).To(Equal(writes), "registry writes")
		g.Expect(o.get(g, name).ResourceVersion).To(Equal(rv), "status rewritten")
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
}

// expectSigningFailed waits for Signed=False SigningFailed and checks that
// the approval stands, Ready is False for the same reason, and the message
// says why without the registry's address.
func expectSigningFailed(t *testing.T, o *operator, approved string, why ...string) *catalogv1.BaseImage {
	t.Helper()
	g := NewWithT(t)
	bi := o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionFalse, catalogv1.SigningFailedReason)
	msg := condition(bi, catalogv1.SignedCondition).Message
	for _, w := range why {
		g.Expect(msg).To(ContainSubstring(w))
	}
	g.Expect(msg).NotTo(ContainSubstring("http://"))
	g.Expect(msg).NotTo(ContainSubstring("127.0.0.1"))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(approved))
	g.Expect(condition(bi, catalogv1.ApprovedCondition).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(bi, catalogv1.ReadyCondition)).To(And(
		HaveField("Status", metav1.ConditionFalse), HaveField("Reason", catalogv1.SigningFailedReason)))
	return bi
}

// A signing policy whose key cannot be had, or whose pushes are refused,
// says why in Signed, keeps the approval, and does not retry in a loop.
func TestSigningFailuresAreReportedWithoutAHotLoop(t *testing.T) {
	t.Run("missing Secret", func(t *testing.T) {
		g := NewWithT(t)
		o := startOperator(t, []vulndbtest.Advisory{muslCVE})
		o.createSigningPolicy("absent-key")
		d := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
		o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
		expectSigningFailed(t, o, d, `"absent-key"`)
		noHotLoop(t, o, "alpine")
		sigs, atts := o.stored(o.digest("base/alpine", d))
		g.Expect(sigs).To(BeZero())
		g.Expect(atts).To(BeEmpty())

		// Creating the Secret is enough: the policy's key is watched.
		key := newCosignKey(t, "s3cret")
		o.putSecret("absent-key", key.data)
		o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
		o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
		_, err := o.verifySignatures(o.digest("base/alpine", d), key.pubPEM)
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		g := NewWithT(t)
		o := startOperator(t, []vulndbtest.Advisory{muslCVE})
		key := newCosignKey(t, "s3cret")
		data := map[string][]byte{sign.SecretKeyCosign: key.data[sign.SecretKeyCosign], sign.SecretKeyPassword: []byte("not-the-passphrase")}
		o.putSecret(keySecret, data)
		o.createSigningPolicy(keySecret)
		d := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
		o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
		bi := expectSigningFailed(t, o, d, keySecret, "passphrase")
		g.Expect(condition(bi, catalogv1.SignedCondition).Message).NotTo(ContainSubstring("not-the-passphrase"))
		noHotLoop(t, o, "alpine")
		sigs, _ := o.stored(o.digest("base/alpine", d))
		g.Expect(sigs).To(BeZero())
	})

	t.Run("pushes refused", func(t *testing.T) {
		g := NewWithT(t)
		o := startOperator(t, []vulndbtest.Advisory{muslCVE})
		key := newCosignKey(t, "s3cret")
		o.putSecret(keySecret, key.data)
		o.createSigningPolicy(keySecret)
		// Else the policy turning Ready may reconcile the entry once more
		// after its failure, pushing again, inside the window below.
		o.waitPolicyJudged()
		d := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
		o.denySignatures.Store(true)
		o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
		bi := expectSigningFailed(t, o, d)
		msg := strings.ToLower(condition(bi, catalogv1.SignedCondition).Message)
		g.Expect(msg).To(Or(ContainSubstring("403"), ContainSubstring("denied"), ContainSubstring("refused")))
		g.Expect(bi.Status.Signature).To(BeNil())
		noHotLoop(t, o, "alpine")

		// The registry accepts pushes again.
		o.denySignatures.Store(false)
		o.pokeAndWait("alpine")
		o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
		o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
		image := o.digest("base/alpine", d)
		_, err := o.verifySignatures(image, key.pubPEM)
		g.Expect(err).NotTo(HaveOccurred())
		_, atts := o.stored(image)
		g.Expect(counts(atts)).To(Equal(oneOfEach))
	})
}

// A reconcile that starts from a stale copy of the entry (a cache that has
// not seen the last status write) pushes no signature: it would push what
// the status write then refuses, leaving the registry ahead of status. It
// retries from the current object instead.
func TestAStaleCopyOfTheEntryPushesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	o, _, _, bi := signedAlpine(t)
	o.pokeAndWait("alpine")
	stale := bi.DeepCopy()
	stale.Status.Signature = nil
	stale.ResourceVersion = "1"
	direct, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	staleReads := interceptor.NewClient(direct, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if b, ok := obj.(*catalogv1.BaseImage); ok && key == client.ObjectKeyFromObject(stale) {
				stale.DeepCopyInto(b)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	r := &controllers.BaseImageReconciler{
		Client: staleReads, APIReader: direct, Clock: o.clock,
		Registry: registry.New(registry.Options{Retries: -1}),
		Scanning: o.scanning, Signer: &sign.Signer{},
	}
	// A minute later, a reconcile without the signature in its copy would
	// sign afresh, with a later validUntil.
	o.clock.Step(time.Minute)
	writes := o.writes.Load()
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(stale)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "retried from the current object")
	g.Expect(o.writes.Load()).To(Equal(writes), "registry writes from a stale copy")
	g.Expect(*o.get(g, "alpine").Status.Signature).To(Equal(*bi.Status.Signature))
}
