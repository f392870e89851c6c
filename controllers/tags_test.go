package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// tagMany pushes one image under each of tags, a manifest PUT each.
func tagMany(t *testing.T, repo string, tags []string) {
	t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{Created: recent, Files: map[string]string{"etc/motd": "many"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagetest.PushImage(context.Background(), repo+":"+tags[0], img); err != nil {
		t.Fatal(err)
	}
	first, err := name.ParseReference(repo + ":" + tags[0])
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags[1:] {
		if err := remote.Tag(first.Context().Tag(tag), desc); err != nil {
			t.Fatal(err)
		}
	}
}

func TestATagPolicyFollowsTheNewestTagOfFiveThousand(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	repo := reg.Host + "/base/python"
	var many []string
	for i := range 5000 {
		many = append(many, fmt.Sprintf("%d.%d.%d", i/100, (i/10)%10, i%10))
	}
	many = append(many, "latest", "bookworm", "7.3.9-rc1", "8.0.0")
	tagMany(t, repo, many)
	best := pushImage(t, repo+":7.3.10", recent, "best")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{Tags: &catalogv1.TagRules{ForbidMutable: true}})
	key := createBaseImage(t, ns, "python", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(repo), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		TagPolicy: &catalogv1.TagPolicy{Semver: ">=7.3.0 <7.4.0"},
	})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.LatestTag).To(Equal("7.3.10"), "7.3.10 is newer than 7.3.9; 8.0.0 is out of range")
	g.Expect(bi.Status.ResolvedDigest).To(Equal(best))
	status, err := json.Marshal(bi.Status)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(status)).To(BeNumerically("<", 8*1024), "status stays small")

	// A new tag in the range is followed at the next check.
	newer := pushImage(t, repo+":7.3.11", recent, "newer")
	bi = reconciled(t, key)
	g.Expect(bi.Status.LatestTag).To(Equal("7.3.11"))
	g.Expect(bi.Status.ResolvedDigest).To(Equal(newer))
	g.Expect(bi.Status.History).To(HaveLen(2))
}

// The test registry sends no Link header: pages continue after the last
// tag of a full page, and each check reads every page once.
func TestTagsAreReadPageByPage(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// pages counts the requests for tag pages, and listings those that
	// start a list (no last= parameter).
	var pages, listings atomic.Int64
	reg := registrytest.New(t, registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/tags/list") {
				pages.Add(1)
				if r.URL.Query().Get("last") == "" {
					listings.Add(1)
				}
			}
			next.ServeHTTP(w, r)
		})
	}))
	repo := reg.Host + "/base/node"
	var many []string
	for i := range 2500 {
		many = append(many, fmt.Sprintf("22.%d.%d", i/100, i%100))
	}
	tagMany(t, repo, many)
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})
	key := createBaseImage(t, ns, "node", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(repo), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		TagPolicy: &catalogv1.TagPolicy{Semver: "^22"},
	})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, key).Status.LatestTag).To(Equal("22.24.99"))
	// Reconciles set off by the setup (the policy turning Ready) may still
	// list: count whole listings once they are done.
	reconciled(t, key)
	before, started := pages.Load(), listings.Load()
	reconciled(t, key)
	g.Eventually(func() int64 {
		return (pages.Load() - before) - 3*(listings.Load()-started)
	}, timeout, tick).Should(BeZero(), "2,500 tags in pages of 1,000, for each listing")
	g.Expect(listings.Load() - started).To(BeNumerically(">=", 1))
}

func TestTagPoliciesThatChooseNothingSaySo(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	repo := reg.Host + "/base/alpine"
	d := pushImage(t, repo+":3.21.0", recent, "v1")
	pushImage(t, repo+":edge", recent, "edge")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{})

	none := createBaseImage(t, ns, "none", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(repo), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		TagPolicy: &catalogv1.TagPolicy{Semver: ">=4.0.0"},
	})
	expectCondition(t, none, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.NoMatchingTagReason)
	g.Expect(condition(g, none, catalogv1.StalledCondition).Message).To(ContainSubstring(`is within ">=4.0.0": 2 tags read, 1 of them versions`))

	bad := createBaseImage(t, ns, "bad", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(repo), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		TagPolicy: &catalogv1.TagPolicy{Semver: "not a range"},
	})
	expectCondition(t, bad, catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.InvalidSpecReason)

	// Fixing the range is enough.
	patchSpec(t, none, func(s *catalogv1.BaseImageSpec) { s.TagPolicy.Semver = "~3.21" })
	expectCondition(t, none, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	g.Expect(getBaseImage(g, none).Status.ResolvedDigest).To(Equal(d))

	// A tag in image and a tagPolicy together are refused at once.
	err := k8sClient.Create(context.Background(), &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both"},
		Spec: catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(repo + ":3.21.0"), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
			TagPolicy: &catalogv1.TagPolicy{Semver: "~3.21"}},
	})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("tagPolicy chooses the tag"))
}

func TestMutableTagsAreRefusedWhenThePolicySays(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	repo := reg.Host + "/base/debian"
	pushImage(t, repo+":latest", recent, "latest")
	pushImage(t, repo+":bookworm-slim", recent, "slim")
	pushImage(t, repo+":12.8-slim", recent, "12.8")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{Tags: &catalogv1.TagRules{ForbidMutable: true}})
	spec := func(tag string) catalogv1.BaseImageSpec {
		return catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(repo + ":" + tag), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}}
	}
	latest := createBaseImage(t, ns, "latest", spec("latest"))
	expectCondition(t, latest, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.MutableTagReason)
	msg := condition(g, latest, catalogv1.ApprovedCondition).Message
	g.Expect(msg).To(ContainSubstring(`Tag "latest" names no version`))
	g.Expect(msg).To(ContainSubstring(`ImagePolicy "p" forbids mutable tags`))
	expectCondition(t, latest, catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.MutableTagReason)

	slim := createBaseImage(t, ns, "slim", spec("bookworm-slim"))
	expectCondition(t, slim, catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.MutableTagReason)
	versioned := createBaseImage(t, ns, "versioned", spec("12.8-slim"))
	expectCondition(t, versioned, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
}
