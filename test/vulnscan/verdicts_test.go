// Package vulnscan runs the BaseImage reconciler with the real Trivy
// scanner and vulnerability DB manager against a real API server, a
// loopback registry serving the images and a DB built by the test.
package vulnscan

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan/trivy"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

const (
	timeout = 60 * time.Second
	tick    = 100 * time.Millisecond
)

var (
	k8sClient client.Client
	testEnv   *testenv.Environment
)

func TestMain(m *testing.M) {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = env
	code := m.Run()
	_ = env.Stop()
	// Trivy's temporary directory of this process's in-process scans.
	_ = trivy.RemoveTempFiles()
	os.Exit(code)
}

var (
	muslCVE = vulndbtest.Advisory{ID: "CVE-2099-0001", Distro: vulndbtest.Alpine322, Package: "musl", FixedVersion: "1.2.5-r1", Severity: "CRITICAL"}
	// zlibCVE is disclosed after the image was approved.
	zlibCVE = vulndbtest.Advisory{ID: "CVE-2099-0002", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "CRITICAL"}
)

// operator is one running operator with scanning, on its own namespace,
// registry, vulnerability DB and clock.
type operator struct {
	t       *testing.T
	ns      string
	reg     *registrytest.Registry
	db      *trivy.DBManager
	scanner *trivy.Scanner
	// metrics is the registry the operator's metrics are registered with.
	metrics *prometheus.Registry
	clock   *clocktesting.FakeClock
	dbRef   string
	// stop stops the running manager and closes its DB.
	stop func()
}

// runOptions vary how an operator process starts.
type runOptions struct {
	// noDB: the DB cannot be downloaded at start (its repository fails).
	noDB bool
	// limits bound the images the scanner accepts.
	limits trivy.Limits
	// maxSecretFileSize is the secret scanner's file size limit.
	maxSecretFileSize int64
}

func startOperator(t *testing.T, advs []vulndbtest.Advisory) *operator {
	t.Helper()
	return startOperatorWith(t, advs, runOptions{})
}

func startOperatorWith(t *testing.T, advs []vulndbtest.Advisory, opts runOptions) *operator {
	t.Helper()
	o := &operator{t: t, reg: registrytest.New(t), clock: clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Second))}
	o.dbRef = o.reg.Host + "/aquasec/trivy-db:2"
	o.publishDB(advs, o.clock.Now().Add(-time.Hour))
	o.run(opts)
	return o
}

// restart stops the running operator and starts a new one on the same
// namespace, registry and clock, with an empty cache, as after a
// rescheduled pod.
func (o *operator) restart(opts runOptions) {
	o.t.Helper()
	o.stop()
	o.run(opts)
}

// run starts an operator process: a DB manager and scanner on a fresh
// cache directory and the controllers.
func (o *operator) run(opts runOptions) {
	t := o.t
	t.Helper()
	g := NewWithT(t)
	cache := t.TempDir()
	db, err := trivy.NewDBManager(trivy.DBOptions{Repositories: []string{o.dbRef}, CacheDir: cache, Now: o.clock.Now})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Update(context.Background())
	if opts.noDB {
		g.Expect(err).To(HaveOccurred())
		g.Expect(db.Version()).To(BeEmpty())
	} else {
		g.Expect(err).NotTo(HaveOccurred())
	}
	o.db = db
	scanner, err := trivy.NewScanner(trivy.Options{DB: db, CacheDir: cache, Limits: opts.limits, MaxSecretFileSize: opts.maxSecretFileSize})
	g.Expect(err).NotTo(HaveOccurred())
	o.scanner = scanner
	o.metrics = prometheus.NewRegistry()

	// Each test runs an operator of its own, one after the other.
	skip := true
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	g.Expect(controllers.SetupIndexes(ctx, mgr.GetFieldIndexer())).To(Succeed())
	g.Expect((&controllers.ImagePolicyReconciler{Client: mgr.GetClient(), Clock: o.clock,
		Recorder: mgr.GetEventRecorder("plinth")}).SetupWithManager(mgr)).To(Succeed())
	g.Expect((&controllers.BaseImageReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: o.clock,
		Registry: registry.New(registry.Options{Retries: -1}),
		Recorder: mgr.GetEventRecorder("plinth"),
		Scanning: &controllers.Scanning{
			Scanner: scanner, DB: db, MaxDBAge: 48 * time.Hour, Updates: db.Subscribe(),
			Metrics: metrics.New(o.metrics, db.UpdatedAt),
		},
	}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	var once sync.Once
	o.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			// One DB manager may be open per process.
			_ = db.Close()
		})
	}
	t.Cleanup(o.stop)
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	k8sClient = mgr.GetClient()

	if o.ns == "" {
		o.ns = fmt.Sprintf("scan-%d", time.Now().UnixNano())
		g.Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.ns}})).To(Succeed())
	}
}

func (o *operator) publishDB(advs []vulndbtest.Advisory, built time.Time) {
	o.t.Helper()
	dir := o.t.TempDir()
	if _, err := vulndbtest.Build(dir, advs, built); err != nil {
		o.t.Fatal(err)
	}
	if _, err := vulndbtest.Push(context.Background(), o.dbRef, dir); err != nil {
		o.t.Fatal(err)
	}
}

// pushAlpine pushes an Alpine image with the given musl and zlib versions.
func (o *operator) pushAlpine(ref, musl, zlib string) string {
	o.t.Helper()
	img, err := imagetest.AlpineImage(imagetest.DistroOptions{
		Created:  o.clock.Now().Add(-time.Hour),
		Packages: []imagetest.Package{{Name: "musl", Version: musl}, {Name: "zlib", Version: zlib}},
	})
	if err != nil {
		o.t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), o.reg.Host+"/"+ref, img)
	if err != nil {
		o.t.Fatal(err)
	}
	return d
}

func (o *operator) get(g Gomega, name string) *catalogv1.BaseImage {
	var bi catalogv1.BaseImage
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: name}, &bi)).To(Succeed())
	return &bi
}

func (o *operator) expect(name, typ string, st metav1.ConditionStatus, reason string) *catalogv1.BaseImage {
	o.t.Helper()
	var bi *catalogv1.BaseImage
	NewWithT(o.t).Eventually(func(g Gomega) {
		bi = o.get(g, name)
		c := apimeta.FindStatusCondition(bi.Status.Conditions, typ)
		g.Expect(c).NotTo(BeNil(), "no %s condition: %+v", typ, bi.Status.Conditions)
		g.Expect(c.Status).To(Equal(st), "%s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
	}, timeout, tick).Should(Succeed())
	return bi
}

// poke asks for a reconcile now, as `kubectl annotate` would.
func (o *operator) poke(name string) {
	o.t.Helper()
	g := NewWithT(o.t)
	bi := o.get(g, name)
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = fmt.Sprint(time.Now().UnixNano())
	g.Expect(k8sClient.Patch(context.Background(), bi, patch)).To(Succeed())
}

func (o *operator) createPolicy(spec catalogv1.ImagePolicySpec) {
	o.t.Helper()
	NewWithT(o.t).Expect(k8sClient.Create(context.Background(), &catalogv1.ImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "p"}, Spec: spec})).To(Succeed())
}

func (o *operator) createBaseImage(name, image string) {
	o.t.Helper()
	NewWithT(o.t).Expect(k8sClient.Create(context.Background(), &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name},
		Spec:       catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(image), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}},
	})).To(Succeed())
}

func TestAVulnerableImageIsRefusedAndItsFixApproved(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	bad := o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")

	bi := o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ApprovedCondition).Message).To(ContainSubstring("CVE-2099-0001"))
	g.Expect(bi.Status.ResolvedDigest).To(Equal(bad))
	g.Expect(bi.Status.ApprovedDigest).To(BeEmpty())
	g.Expect(bi.Status.Vulnerabilities.Critical).To(Equal(catalogv1.SeverityCount{Total: 1, Fixable: 1}))
	g.Expect(bi.Status.TopFindings).To(ConsistOf(And(
		HaveField("ID", "CVE-2099-0001"), HaveField("Package", "musl"),
		HaveField("InstalledVersion", "1.2.5-r0"), HaveField("FixedVersion", "1.2.5-r1"), HaveField("Blocking", true))))
	g.Expect(bi.Status.VulnDBVersion).To(Equal(o.db.Version()))
	g.Expect(bi.Status.LastScanTime).NotTo(BeNil())
	o.expect("alpine", catalogv1.ScannedCondition, metav1.ConditionTrue, catalogv1.ScanSucceededReason)
	o.expect("alpine", catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.FixAvailableReason)
	o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)

	good := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
	o.poke("alpine")
	bi = o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(good))
	o.expect("alpine", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	o.expect("alpine", catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	// A bad new digest does not take the approval of the good one away.
	o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r0")
	o.poke("alpine")
	bi = o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(bi.Status.ApprovedDigest).To(Equal(good))
}

func TestAnExceptionAppliesUntilItExpires(t *testing.T) {
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{Exceptions: []catalogv1.VulnerabilityException{{
		ID: "CVE-2099-0001", Expires: metav1.NewTime(o.clock.Now().Add(10 * 24 * time.Hour)),
		Justification: "musl's vulnerable function is not used", Owner: "security@example.com", Ticket: "SEC-1",
	}}})
	o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	bi := o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	NewWithT(t).Expect(bi.Status.TopFindings[0].ExceptionExpires).NotTo(BeNil())

	// Four days later the exception is expiring: the policy says so.
	o.clock.Step(4 * 24 * time.Hour)
	var pol catalogv1.ImagePolicy
	NewWithT(t).Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "p"}, &pol)).To(Succeed())
	patch := client.MergeFrom(pol.DeepCopy())
	pol.Annotations = map[string]string{catalogv1.ReconcileRequestAnnotation: "now"}
	NewWithT(t).Expect(k8sClient.Patch(context.Background(), &pol, patch)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) *catalogv1.ExceptionCounts {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "p"}, &pol)).To(Succeed())
		return pol.Status.Exceptions
	}, timeout, tick).Should(HaveValue(Equal(catalogv1.ExceptionCounts{Active: 1, Expiring: 1})))
	NewWithT(t).Expect(pol.Status.ExpiringExceptions).To(Equal([]string{"CVE-2099-0001"}))
	NewWithT(t).Eventually(func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(o.ns))).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Kind == catalogv1.ImagePolicyKind && e.Type == corev1.EventTypeWarning {
				reasons = append(reasons, e.Reason+": "+e.Note)
			}
		}
		return reasons
	}, timeout, tick).Should(ConsistOf(ContainSubstring("ExceptionExpiring: The exception for CVE-2099-0001 expires")))

	// After it expires, the image is refused again.
	o.clock.Step(7 * 24 * time.Hour)
	o.poke("alpine")
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.ExceptionExpiredReason)
}

func TestADBUpdateMakesTheImageStaleAtOnceAndRevokesAfterTheWindow(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{Vulnerabilities: &catalogv1.VulnerabilityPolicy{
		RemediationWindows: &catalogv1.SeverityWindows{Critical: &metav1.Duration{Duration: 72 * time.Hour}},
	}})
	good := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	before := o.db.Version()

	// zlib's CVE is disclosed: a new DB, with no new image.
	o.publishDB([]vulndbtest.Advisory{muslCVE, zlibCVE}, o.clock.Now())
	_, err := o.db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.db.Version()).NotTo(Equal(before))
	bi := o.expect("alpine", catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.FixAvailableReason)
	g.Expect(bi.Status.VulnDBVersion).To(Equal(o.db.Version()))
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ApprovedCondition).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(good))
	g.Expect(bi.Status.TopFindings[0].Deadline).NotTo(BeNil())

	// Within the window it stays approved; after it, approval goes.
	o.clock.Step(71 * time.Hour)
	o.pokeAndWait("alpine")
	g.Consistently(func(g Gomega) metav1.ConditionStatus {
		return apimeta.FindStatusCondition(o.get(g, "alpine").Status.Conditions, catalogv1.ApprovedCondition).Status
	}, 2*time.Second, tick).Should(Equal(metav1.ConditionTrue))
	o.clock.Step(2 * time.Hour)
	o.poke("alpine")
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
}

func TestAFailingDBMirrorKeepsVerdictsAndReportsTheDBAge(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	o.pushAlpine("base/alpine:3.22", "1.2.5-r0", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	o.pushAlpine("base/good:1", "1.2.5-r1", "1.3.1-r2")
	o.createBaseImage("good", o.reg.Host+"/base/good:1")
	o.expect("good", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	version := o.db.Version()

	o.reg.FailWith("/v2/aquasec/trivy-db/", 500, -1)
	_, err := o.db.Update(context.Background())
	g.Expect(err).To(HaveOccurred())
	g.Expect(o.db.Version()).To(Equal(version))

	// Three days on, the DB is older than the operator's 48h limit.
	o.clock.Step(72 * time.Hour)
	o.poke("alpine")
	bi := o.expect("alpine", catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.VulnDBStaleReason)
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ScannedCondition).Message).To(ContainSubstring("older than 48h"))
	o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(bi.Status.VulnDBVersion).To(Equal(version))
	g.Expect(bi.Status.Vulnerabilities.Critical.Total).To(Equal(int32(1)))

	// A stale DB does not take Ready away from an approved entry: only
	// Scanned says the DB is old.
	o.pokeAndWait("good")
	o.expect("good", catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.VulnDBStaleReason)
	o.expect("good", catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
}

// GitOps tools read kstatus: an entry being scanned is InProgress, and a
// scanned, approved one Current. (A new object without any status is
// Current to kstatus too; the test follows the entry until it is Ready.)
func TestKstatusIsInProgressWhileScanning(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{})
	o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")

	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w, err := wc.Watch(ctx, &catalogv1.BaseImageList{}, client.InNamespace(o.ns))
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")

	var seen []string
	for ev := range w.ResultChan() {
		bi, ok := ev.Object.(*catalogv1.BaseImage)
		if !ok {
			continue
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(bi)
		g.Expect(err).NotTo(HaveOccurred())
		res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
		g.Expect(err).NotTo(HaveOccurred())
		r := apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ReconcilingCondition)
		if r != nil {
			seen = append(seen, string(res.Status)+" "+r.Reason)
		} else {
			seen = append(seen, string(res.Status))
		}
		if res.Status == kstatus.CurrentStatus && apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.ReadyCondition) {
			break
		}
	}
	g.Expect(seen).To(ContainElement(string(kstatus.InProgressStatus)+" "+catalogv1.ProgressingReason), "statuses seen: %v", seen)
	g.Expect(seen[len(seen)-1]).To(Equal(string(kstatus.CurrentStatus)), "statuses seen: %v", seen)
}
