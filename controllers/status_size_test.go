package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
)

// An image with 10,000 findings still makes a small object: status holds
// counts and at most 20 findings. The status is written the way the
// reconciler writes it and read back from the API server.
func TestStatusStaysSmallWithTenThousandFindings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	now := time.Now().UTC().Truncate(time.Second)

	findings := make([]policy.Finding, 0, 10000)
	for i := range 10000 {
		findings = append(findings, policy.Finding{
			ID:               fmt.Sprintf("CVE-2026-%05d", i),
			Severity:         catalogv1.Severities[i%len(catalogv1.Severities)],
			Package:          fmt.Sprintf("library-with-a-rather-long-name-%04d", i%700),
			InstalledVersion: "1.2.3-4+deb12u5",
			FixedVersion:     "1.2.3-4+deb12u6",
		})
	}
	v := policy.Evaluate(policy.Input{Now: now, Vulnerabilities: &policy.Vulnerabilities{Findings: findings}})

	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	// Suspended, so that the operator leaves the hand-written status alone.
	key := createBaseImage(t, ns, "big", catalogv1.BaseImageSpec{
		Image: "registry.example.com/base/big:1", PolicyRef: catalogv1.LocalObjectReference{Name: "p"}, Suspend: true,
		Description: "An image with ten thousand findings."})
	bi := getBaseImage(g, key)
	patch := client.MergeFrom(bi.DeepCopy())
	digest := "sha256:" + fmt.Sprintf("%064d", 1)
	bi.Status.ResolvedDigest, bi.Status.ScannedDigest, bi.Status.VulnDBVersion = digest, digest, "2026-11-26T00:00:00Z+0123456789ab"
	bi.Status.LastScanTime = &metav1.Time{Time: now}
	bi.Status.Vulnerabilities, bi.Status.TopFindings = v.Summary, v.TopFindings
	for i := range catalogv1.MaxHistory {
		bi.Status.History = append(bi.Status.History, catalogv1.DigestRecord{Digest: "sha256:" + fmt.Sprintf("%064d", i),
			FirstSeen: metav1.NewTime(now), ApprovedAt: &metav1.Time{Time: now}, SupersededAt: &metav1.Time{Time: now}})
	}
	setCondition(bi, catalogv1.ApprovedCondition, boolStatus(v.Approved), v.ApprovedReason, v.ApprovedMessage)
	setCondition(bi, catalogv1.StaleCondition, boolStatus(v.Stale), v.StaleReason, v.StaleMessage)
	markDenied(bi, v.ApprovedReason, v.ApprovedMessage)
	g.Expect(k8sClient.Status().Patch(ctx, bi, patch)).To(Succeed())

	stored := getBaseImage(g, key)
	g.Expect(stored.Status.Vulnerabilities.Critical.Total).To(Equal(int32(2000)))
	g.Expect(stored.Status.TopFindings).To(HaveLen(catalogv1.MaxTopFindings))
	raw, err := json.Marshal(stored)
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("BaseImage with 10,000 findings: %d bytes", len(raw))
	g.Expect(len(raw)).To(BeNumerically("<", 16*1024))
}
