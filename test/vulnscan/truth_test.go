package vulnscan

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// pokeAndWait asks for a reconcile and waits until the operator reports
// having handled it, so that what status says afterwards is its answer.
func (o *operator) pokeAndWait(name string) *catalogv1.BaseImage {
	o.t.Helper()
	g := NewWithT(o.t)
	bi := o.get(g, name)
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	v := fmt.Sprint(time.Now().UnixNano())
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = v
	g.Expect(k8sClient.Patch(context.Background(), bi, patch)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		bi = o.get(g, name)
		return bi.Status.LastHandledReconcileAt
	}, timeout, tick).Should(Equal(v), "the reconcile requested at %s was not handled", v)
	return bi
}

// pushPackages pushes an Alpine image with pkgs and returns its digest and
// the blob path of its only layer.
func (o *operator) pushPackages(repoTag string, pkgs ...imagetest.Package) (digest, layerPath string) {
	o.t.Helper()
	img, err := imagetest.AlpineImage(imagetest.DistroOptions{Created: o.clock.Now().Add(-time.Hour), Packages: pkgs})
	if err != nil {
		o.t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		o.t.Fatalf("layers: %d, %v", len(layers), err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		o.t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), o.reg.Host+"/"+repoTag, img)
	if err != nil {
		o.t.Fatal(err)
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	return d, "/v2/" + repo + "/blobs/" + ld.String()
}

// updatePolicy changes the spec of the namespace's ImagePolicy.
func (o *operator) updatePolicy(change func(*catalogv1.ImagePolicySpec)) {
	o.t.Helper()
	NewWithT(o.t).Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var pol catalogv1.ImagePolicy
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "p"}, &pol); err != nil {
			return err
		}
		change(&pol.Spec)
		return k8sClient.Update(context.Background(), &pol)
	})).To(Succeed())
}

// events counts the events about a BaseImage by type and reason, a series
// counting as often as it happened.
func (o *operator) events(g Gomega, name string) map[string]int32 {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(o.ns))).To(Succeed())
	out := map[string]int32{}
	for _, e := range list.Items {
		if e.Regarding.Kind != catalogv1.BaseImageKind || e.Regarding.Name != name {
			continue
		}
		n := int32(1)
		if e.Series != nil {
			n = e.Series.Count
		}
		out[e.Type+"/"+e.Reason] += n
	}
	return out
}

func condition(bi *catalogv1.BaseImage, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(bi.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ}
}

// haveCondition matches a condition's status and reason.
func haveCondition(st metav1.ConditionStatus, reason string) types.GomegaMatcher {
	return And(HaveField("Status", st), HaveField("Reason", reason))
}

func exception(id string, expires time.Time) catalogv1.VulnerabilityException {
	return catalogv1.VulnerabilityException{ID: id, Expires: metav1.NewTime(expires),
		Justification: "not reachable in our builds", Owner: "security@example.com", Ticket: "SEC-2"}
}

func criticalWindow(d time.Duration) *catalogv1.VulnerabilityPolicy {
	return &catalogv1.VulnerabilityPolicy{RemediationWindows: &catalogv1.SeverityWindows{Critical: &metav1.Duration{Duration: d}}}
}

// A restarted operator that cannot load a vulnerability DB yet keeps every
// verdict it finds in status, says only that scanning waits, and raises no
// events when the DB comes back.
func TestARestartWithoutADBKeepsTheCatalog(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	good := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
	bad := o.pushAlpine("base/old:3.22", "1.2.5-r0", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.createBaseImage("old", o.reg.Host+"/base/old:3.22")
	o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	o.expect("old", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	o.expect("old", catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.PolicyDeniedReason)
	g.Eventually(func(g Gomega) {
		g.Expect(o.events(g, "alpine")).To(HaveKey("Normal/" + catalogv1.PolicyPassedReason))
		g.Expect(o.events(g, "old")).To(HaveKey("Warning/" + catalogv1.VulnerabilitiesExceedThresholdReason))
	}, timeout, tick).Should(Succeed())
	events := map[string]map[string]int32{"alpine": o.events(g, "alpine"), "old": o.events(g, "old")}
	version := o.db.Version()

	// The pod is rescheduled: an empty cache, and the DB mirror is down.
	o.reg.FailWith("/v2/aquasec/trivy-db/", 500, -1)
	o.restart(runOptions{noDB: true})
	for _, name := range []string{"alpine", "old"} {
		o.pokeAndWait(name)
	}
	check := func(g Gomega, scanned types.GomegaMatcher) {
		bi := o.get(g, "alpine")
		g.Expect(condition(bi, catalogv1.ReadyCondition)).To(haveCondition(metav1.ConditionTrue, catalogv1.SucceededReason))
		g.Expect(condition(bi, catalogv1.ApprovedCondition)).To(haveCondition(metav1.ConditionTrue, catalogv1.PolicyPassedReason))
		g.Expect(condition(bi, catalogv1.ScannedCondition)).To(scanned)
		g.Expect(bi.Status.ApprovedDigest).To(Equal(good))
		g.Expect(bi.Status.Approved).To(HaveValue(HaveField("Digest", good)))

		bi = o.get(g, "old")
		g.Expect(condition(bi, catalogv1.StalledCondition)).To(haveCondition(metav1.ConditionTrue, catalogv1.PolicyDeniedReason))
		g.Expect(condition(bi, catalogv1.ApprovedCondition)).To(haveCondition(metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason))
		g.Expect(condition(bi, catalogv1.ScannedCondition)).To(scanned)
		g.Expect(bi.Status.ResolvedDigest).To(Equal(bad))
		g.Expect(bi.Status.Vulnerabilities.Critical.Total).To(Equal(int32(1)))
	}
	unavailable := haveCondition(metav1.ConditionFalse, catalogv1.VulnDBUnavailableReason)
	check(g, unavailable)
	g.Consistently(func(g Gomega) { check(g, unavailable) }, 2*time.Second, tick).Should(Succeed())
	g.Expect(map[string]map[string]int32{"alpine": o.events(g, "alpine"), "old": o.events(g, "old")}).To(Equal(events),
		"events while the DB is unavailable")

	// The mirror is back.
	o.reg.ClearFaults()
	_, err := o.db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.db.Version()).To(Equal(version))
	scanned := haveCondition(metav1.ConditionTrue, catalogv1.ScanSucceededReason)
	g.Eventually(func(g Gomega) { check(g, scanned) }, timeout, tick).Should(Succeed())
	g.Consistently(func(g Gomega) map[string]map[string]int32 {
		return map[string]map[string]int32{"alpine": o.events(g, "alpine"), "old": o.events(g, "old")}
	}, 3*time.Second, tick).Should(Equal(events), "events after the DB loaded")
}

// The approved digest is judged again under the current DB and policy: it
// keeps its approval through a refused new digest and loses it on its own
// merits.
func TestTheApprovedDigestIsJudgedOnItsOwnMerits(t *testing.T) {
	g := NewWithT(t)
	// zlibNewCVE is disclosed later and affects the approved digest too.
	zlibNewCVE := vulndbtest.Advisory{ID: "CVE-2099-0003", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r4", Severity: "CRITICAL"}
	o := startOperator(t, []vulndbtest.Advisory{muslCVE, zlibCVE})
	t0 := o.clock.Now()
	expires := t0.Add(365 * 24 * time.Hour)
	o.createPolicy(catalogv1.ImagePolicySpec{
		Vulnerabilities: criticalWindow(72 * time.Hour),
		Exceptions:      []catalogv1.VulnerabilityException{exception(muslCVE.ID, expires)},
	})
	a := o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r3")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	bi := o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
	g.Expect(bi.Status.Approved).NotTo(BeNil())
	g.Expect(bi.Status.Approved.Digest).To(Equal(a))
	g.Expect(bi.Status.Approved.VulnDBVersion).To(Equal(o.db.Version()))
	g.Expect(bi.Status.Approved.Deadline).NotTo(BeNil(), "the approval depends on the exception")
	g.Expect(bi.Status.Approved.Deadline.Time).To(BeTemporally("==", expires))

	// The tag moves to a digest with zlib's CVE, which has no exception.
	b := o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r2")
	o.poke("alpine")
	bi = o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(condition(bi, catalogv1.ApprovedCondition).Message).To(ContainSubstring(zlibCVE.ID))
	g.Expect(bi.Status.ResolvedDigest).To(Equal(b))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
	g.Expect(bi.Status.Approved).To(HaveValue(HaveField("Digest", a)))

	// An hour later a new advisory affects the approved digest: its verdict
	// is refreshed under the new DB from the cached layers, and its window
	// starts.
	o.clock.Step(time.Hour)
	t1 := o.clock.Now()
	downloads := o.scanner.Stats().LayerDownloads
	before := o.db.Version()
	o.publishDB([]vulndbtest.Advisory{muslCVE, zlibCVE, zlibNewCVE}, t1)
	_, err := o.db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.db.Version()).NotTo(Equal(before))
	g.Eventually(func(g Gomega) {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
		g.Expect(bi.Status.Approved).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Digest).To(Equal(a))
		g.Expect(bi.Status.Approved.VulnDBVersion).To(Equal(o.db.Version()))
		g.Expect(bi.Status.Approved.Deadline).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Deadline.Time).To(BeTemporally("==", t1.Add(72*time.Hour)))
	}, timeout, tick).Should(Succeed())
	g.Expect(o.scanner.Stats().LayerDownloads).To(Equal(downloads), "layers downloaded again for a new DB")

	// The exception is withdrawn: musl's CVE, seen since t0, now runs its
	// window on the approved digest.
	o.updatePolicy(func(s *catalogv1.ImagePolicySpec) { s.Exceptions = nil })
	g.Eventually(func(g Gomega) {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
		g.Expect(bi.Status.Approved).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Deadline).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Deadline.Time).To(BeTemporally("==", t0.Add(72*time.Hour)))
	}, timeout, tick).Should(Succeed())
	g.Expect(o.events(g, "alpine")).NotTo(HaveKey("Warning/" + catalogv1.ApprovalRevokedReason))

	// Past the window, the approval goes.
	o.clock.SetTime(t0.Add(72*time.Hour + time.Minute))
	o.poke("alpine")
	g.Eventually(func(g Gomega) {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.ApprovedDigest).To(BeEmpty())
		g.Expect(bi.Status.Approved).To(BeNil())
	}, timeout, tick).Should(Succeed())
	g.Expect(condition(bi, catalogv1.ApprovedCondition)).To(haveCondition(metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason))
	g.Eventually(func(g Gomega) map[string]int32 {
		return o.events(g, "alpine")
	}, timeout, tick).Should(HaveKeyWithValue("Warning/"+catalogv1.ApprovalRevokedReason, int32(1)))
}

// While the resolved digest cannot be scanned, Approved says it is not
// judged, naming it, and no figure of the approved digest stands beside it.
func TestApprovedDescribesTheResolvedDigest(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	// The approved digest has a finding, excepted, so it has figures to show.
	o.createPolicy(catalogv1.ImagePolicySpec{
		Exceptions: []catalogv1.VulnerabilityException{exception(muslCVE.ID, o.clock.Now().Add(30*24*time.Hour))},
	})
	a, _ := o.pushPackages("base/alpine:3.22", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	bi := o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
	g.Expect(bi.Status.Vulnerabilities.Critical.Total).To(Equal(int32(1)))

	// The tag moves to a digest whose layer the registry fails to serve.
	b, layer := o.pushPackages("base/alpine:3.22", imagetest.Package{Name: "musl", Version: "1.2.5-r1"}, imagetest.Package{Name: "zlib", Version: "1.3.1-r2"})
	o.reg.FailWith(layer, 500, -1)
	o.poke("alpine")
	bi = o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionUnknown, catalogv1.NotJudgedReason)
	g.Expect(condition(bi, catalogv1.ApprovedCondition).Message).To(ContainSubstring(b))
	g.Expect(bi.Status.ResolvedDigest).To(Equal(b))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(a))
	g.Expect(bi.Status.Approved).To(HaveValue(HaveField("Digest", a)))
	g.Expect(condition(bi, catalogv1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
	if bi.Status.ScannedDigest != b {
		g.Expect(bi.Status.ScannedDigest).To(BeEmpty(), "the figures shown are of another digest")
		g.Expect(bi.Status.Vulnerabilities).To(BeNil(), "the figures of %s are shown beside %s", a, b)
		g.Expect(bi.Status.TopFindings).To(BeEmpty(), "the findings of %s are shown beside %s", a, b)
	}
}

// Remediation deadlines count from the first detection of each blocking
// finding, for all of them, not only those listed in status.
func TestFirstSeenSurvivesForEveryBlockingFinding(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{Vulnerabilities: criticalWindow(72 * time.Hour)})
	var pkgs []imagetest.Package
	var advs []vulndbtest.Advisory
	var ids []string
	for i := range 50 {
		p := fmt.Sprintf("pkg%02d", i)
		pkgs = append(pkgs, imagetest.Package{Name: p, Version: "1.0-r0"})
		id := fmt.Sprintf("CVE-2099-1%03d", i)
		ids = append(ids, id)
		advs = append(advs, vulndbtest.Advisory{ID: id, Distro: vulndbtest.Alpine322, Package: p, FixedVersion: "1.0-r1", Severity: "CRITICAL"})
	}
	o.pushPackages("base/alpine:3.22", pkgs...)
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)

	// Fifty critical advisories are disclosed at t0.
	t0 := o.clock.Now()
	o.publishDB(append([]vulndbtest.Advisory{muslCVE}, advs...), t0)
	_, err := o.db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	firstSeen := func(bi *catalogv1.BaseImage) map[string]time.Time {
		m := map[string]time.Time{}
		for _, gr := range bi.Status.FindingsFirstSeen {
			for _, k := range gr.Findings {
				m[k] = gr.Since.Time
			}
		}
		return m
	}
	allSinceT0 := func(g Gomega, bi *catalogv1.BaseImage) {
		m := firstSeen(bi)
		for i, id := range ids {
			k := id + "|" + pkgs[i].Name + "|1.0-r0"
			g.Expect(m).To(HaveKey(k))
			g.Expect(m[k]).To(BeTemporally("==", t0), "first detection of %s", k)
		}
	}
	var bi *catalogv1.BaseImage
	g.Eventually(func(g Gomega) {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.VulnDBVersion).To(Equal(o.db.Version()))
		g.Expect(bi.Status.Vulnerabilities.Critical.Total).To(Equal(int32(50)))
	}, timeout, tick).Should(Succeed())
	g.Expect(condition(bi, catalogv1.ApprovedCondition)).To(haveCondition(metav1.ConditionTrue, catalogv1.PolicyPassedReason))
	g.Expect(bi.Status.Approved.Deadline).NotTo(BeNil())
	g.Expect(bi.Status.Approved.Deadline.Time).To(BeTemporally("==", t0.Add(72*time.Hour)))
	allSinceT0(g, bi)
	g.Expect(bi.Status.TopFindings).To(HaveLen(catalogv1.MaxTopFindings))
	g.Expect(bi.Status.TopFindings[0].ID).To(Equal(ids[0]))

	// Two days on, the first 30 listed get exceptions.
	o.clock.Step(48 * time.Hour)
	o.updatePolicy(func(s *catalogv1.ImagePolicySpec) {
		for _, id := range ids[:30] {
			s.Exceptions = append(s.Exceptions, exception(id, t0.Add(30*24*time.Hour)))
		}
	})
	remaining := func(g Gomega, bi *catalogv1.BaseImage) {
		g.Expect(bi.Status.TopFindings).To(HaveLen(catalogv1.MaxTopFindings))
		for i, f := range bi.Status.TopFindings {
			g.Expect(f.ID).To(Equal(ids[30+i]))
			g.Expect(f.Blocking).To(BeTrue(), f.ID)
			g.Expect(f.FirstSeen.Time).To(BeTemporally("==", t0), "first detection of %s", f.ID)
			g.Expect(f.Deadline).NotTo(BeNil(), f.ID)
			g.Expect(f.Deadline.Time).To(BeTemporally("==", t0.Add(72*time.Hour)), "deadline of %s", f.ID)
		}
		g.Expect(condition(bi, catalogv1.ApprovedCondition)).To(haveCondition(metav1.ConditionTrue, catalogv1.PolicyPassedReason))
		g.Expect(bi.Status.Approved).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Deadline).NotTo(BeNil())
		g.Expect(bi.Status.Approved.Deadline.Time).To(BeTemporally("==", t0.Add(72*time.Hour)))
		allSinceT0(g, bi)
	}
	// Wait until the exceptions are applied, then check the rest.
	g.Eventually(func(g Gomega) string {
		bi = o.get(g, "alpine")
		g.Expect(bi.Status.TopFindings).NotTo(BeEmpty())
		return bi.Status.TopFindings[0].ID
	}, timeout, tick).Should(Equal(ids[30]))
	remaining(g, bi)
	remaining(g, o.pokeAndWait("alpine"))

	// Past the window the approval goes.
	o.clock.SetTime(t0.Add(73 * time.Hour))
	o.poke("alpine")
	bi = o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(bi.Status.ApprovedDigest).To(BeEmpty())
	g.Expect(bi.Status.Approved).To(BeNil())
}

// A scan failure says what failed and whether someone must act, without
// the registry's address.
func TestAScanFailureIsClassified(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	good := []imagetest.Package{{Name: "musl", Version: "1.2.5-r1"}, {Name: "zlib", Version: "1.3.1-r2"}}

	_, layer := o.pushPackages("base/denied:3.22", good...)
	o.reg.FailWith(layer, 403, -1)
	o.createBaseImage("denied", o.reg.Host+"/base/denied:3.22")
	bi := o.expect("denied", catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.AuthenticationFailedReason)
	sc := condition(bi, catalogv1.ScannedCondition)
	g.Expect(sc.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(strings.ToLower(sc.Message)).To(Or(ContainSubstring("403"), ContainSubstring("denied")))
	g.Expect(sc.Message).NotTo(ContainSubstring("http://"))
	g.Expect(sc.Message).NotTo(ContainSubstring("127.0.0.1"))
	g.Expect(condition(bi, catalogv1.ReadyCondition)).To(haveCondition(metav1.ConditionFalse, catalogv1.AuthenticationFailedReason))
	g.Expect(condition(bi, catalogv1.ApprovedCondition).Status).To(Equal(metav1.ConditionUnknown))

	_, layer = o.pushPackages("base/flaky:3.22", good...)
	o.reg.FailWith(layer, 503, -1)
	o.createBaseImage("flaky", o.reg.Host+"/base/flaky:3.22")
	o.expect("flaky", catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingWithRetryReason)
	bi = o.expect("flaky", catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.ScanFailedReason)
	g.Expect(condition(bi, catalogv1.StalledCondition).Status).NotTo(Equal(metav1.ConditionTrue))

	// The registry recovers.
	o.reg.ClearFaults()
	o.poke("flaky")
	o.expect("flaky", catalogv1.ScannedCondition, metav1.ConditionTrue, catalogv1.ScanSucceededReason)
	o.expect("flaky", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	bi = o.expect("flaky", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ReconcilingCondition)).To(BeNil())
}

// A deleted BaseImage leaves no metric series behind.
func TestDeletingABaseImageRemovesItsSeries(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.createBaseImage("other", o.reg.Host+"/base/alpine:3.22")
	series := func(g Gomega, name string) map[string]float64 {
		mfs, err := o.metrics.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "plinth_baseimage_vulnerabilities" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["namespace"] == o.ns && labels["name"] == name {
					out[labels["severity"]] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	for _, name := range []string{"alpine", "other"} {
		g.Eventually(func(g Gomega) map[string]float64 { return series(g, name) }, timeout, tick).
			Should(HaveKeyWithValue("CRITICAL", 1.0), name)
	}

	var bi catalogv1.BaseImage
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "alpine"}, &bi)).To(Succeed())
	g.Expect(k8sClient.Delete(context.Background(), &bi)).To(Succeed())
	g.Eventually(func(g Gomega) map[string]float64 { return series(g, "alpine") }, timeout, tick).Should(BeEmpty())
	g.Expect(series(g, "other")).To(HaveKeyWithValue("CRITICAL", 1.0))
}
