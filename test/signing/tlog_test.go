package signing

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/rekorlog"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// A policy with a transparency log has the signature uploaded there: it
// verifies with the log required, against a trusted root that lists the
// log. A log that refuses the entry stalls signing, approval kept, and
// nothing is pushed.
func TestSignaturesGoToTheTransparencyLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	log := rekorlog.New(t)
	log.SetRefusing(true)
	key := newCosignKey(t, "s3cret")
	o.putSecret(keySecret, key.data)
	o.createSigningPolicy(keySecret)
	var p catalogv1.ImagePolicy
	// The manager's client reads from its cache, which sees the new policy
	// a moment later.
	g.Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: "p"}, &p) }).Should(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Signing.TransparencyLog = &catalogv1.TransparencyLogPolicy{URL: log.URL}
	g.Expect(k8sClient.Patch(ctx, &p, patch)).To(Succeed())
	d := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")

	bi := expectSigningFailed(t, o, d, "transparency log refused", "HTTP 400")
	g.Expect(condition(bi, catalogv1.StalledCondition).Reason).To(Equal(catalogv1.SigningFailedReason))
	sigs, atts := o.stored(o.digest("base/alpine", d))
	g.Expect(sigs).To(BeZero())
	g.Expect(atts).To(BeEmpty())
	noHotLoop(t, o, "alpine")

	log.SetRefusing(false)
	o.pokeAndWait("alpine")
	o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
	g.Expect(log.Entries()).To(HaveLen(4), "the signature and three attestations")

	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, nil,
		map[string]*root.TransparencyLog{hex.EncodeToString(log.ID): log.Authority()})
	g.Expect(err).NotTo(HaveOccurred())
	co := o.checkOpts(key.pubPEM, cosign.SimpleClaimVerifier)
	co.IgnoreTlog, co.TrustedMaterial, co.Offline = false, tr, true
	image := o.digest("base/alpine", d)
	verified, bundled, err := cosign.VerifyImageSignatures(ctx, image, co)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(verified).To(HaveLen(1))
	g.Expect(bundled).To(BeTrue(), "verified with the log's bundle")
	g.Expect(strings.Contains(condition(o.get(g, "alpine"), catalogv1.SignedCondition).Message, log.URL)).To(BeFalse())
}
