package signing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/rebuild"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
	"github.com/plinth-dev/plinth/internal/scan/trivy"
	"github.com/plinth-dev/plinth/internal/sign"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// newOperatorWithoutProcess prepares what the operator processes of a test
// share (registry, published DB, clock, namespace) and starts none: the
// test starts replicas itself.
func newOperatorWithoutProcess(t *testing.T, advs []vulndbtest.Advisory) *operator {
	t.Helper()
	g := NewWithT(t)
	o := &operator{t: t, clock: clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Second))}
	o.reg = registrytest.New(t, registrytest.WithMiddleware(o.middleware))
	o.dbRef = o.reg.Host + "/aquasec/trivy-db:2"
	o.publishDB(advs, o.clock.Now().Add(-time.Hour))
	// The test reads and writes through a client of its own: replicas come
	// and go.
	c, err := client.New(testEnv.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	k8sClient = c
	o.ns = fmt.Sprintf("replicas-%d", time.Now().UnixNano())
	g.Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.ns}})).To(Succeed())
	return o
}

// scanLog counts the scans that ran, per digest, across replicas. A scan
// is told apart from a cached report, or one shared with a concurrent
// caller, by its time.
type scanLog struct {
	mu   sync.Mutex
	seen map[string]map[time.Time]bool
}

func (l *scanLog) add(digest string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]map[time.Time]bool{}
	}
	if l.seen[digest] == nil {
		l.seen[digest] = map[time.Time]bool{}
	}
	l.seen[digest][at] = true
}

func (l *scanLog) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for d, ts := range l.seen {
		out[d] = len(ts)
	}
	return out
}

func (l *scanLog) total() int {
	n := 0
	for _, c := range l.counts() {
		n += c
	}
	return n
}

// scanGate holds the first scan of one digest until its context ends, as
// a scan in progress when the process dies.
type scanGate struct {
	mu      sync.Mutex
	digest  string
	entered chan struct{}
}

// arm makes the next scan of digest block; entered is closed when it
// starts.
func (g *scanGate) arm(digest string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.digest, g.entered = digest, make(chan struct{})
	return g.entered
}

func (g *scanGate) wait(ctx context.Context, digest string) error {
	g.mu.Lock()
	if g.digest == "" || g.digest != digest {
		g.mu.Unlock()
		return nil
	}
	g.digest = ""
	close(g.entered)
	g.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// countingScanner is the real scanner, counting the scans that complete
// and holding those a gate stops.
type countingScanner struct {
	scan.Scanner
	log  *scanLog
	gate *scanGate
}

func (c *countingScanner) Scan(ctx context.Context, req scan.Request) (*scan.Report, error) {
	if c.gate != nil {
		if err := c.gate.wait(ctx, req.Image.DigestStr()); err != nil {
			return nil, err
		}
	}
	r, err := c.Scanner.Scan(ctx, req)
	if err == nil {
		c.log.add(req.Image.DigestStr(), r.ScannedAt)
	}
	return r, err
}

// withoutWatch lets the interceptor wrap the manager's client.
type withoutWatch struct{ client.Client }

func (withoutWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("not supported")
}

type replicaOptions struct {
	// leaseID, when set, turns leader election on with this lease.
	leaseID string
	// engine is the replica's DB manager and scanner; nil opens its own
	// on cacheDir.
	engine *engine
	// cacheDir is the cache volume of a replica that opens its own
	// engine; empty means a new one.
	cacheDir string
	log      *scanLog
	gate     *scanGate
}

// engine is a DB manager and the scanner on it. Trivy holds one DB per
// process, so replicas that run at the same time in a test share one.
type engine struct {
	db      *trivy.DBManager
	scanner *trivy.Scanner
}

// newEngine opens a DB manager and scanner on cache, the process's cache
// volume, and loads the operator's DB; they close when the test ends.
func (o *operator) newEngine(cache string) *engine {
	t := o.t
	t.Helper()
	g := NewWithT(t)
	db, err := trivy.NewDBManager(trivy.DBOptions{Repositories: []string{o.dbRef}, CacheDir: cache, Now: o.clock.Now})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	o.db = db
	scanner, err := trivy.NewScanner(trivy.Options{DB: db, CacheDir: cache})
	g.Expect(err).NotTo(HaveOccurred())
	return &engine{db: db, scanner: scanner}
}

// replica is one operator process: its own DB cache, scanner and manager.
type replica struct {
	mgr          ctrl.Manager
	stop         func()
	statusWrites atomic.Int64

	// reconciled holds the BaseImages the reconciler has read, which it
	// does first in every reconcile.
	mu         sync.Mutex
	reconciled map[client.ObjectKey]bool
}

func (r *replica) reconciledCount(ns string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	// Entries that earlier tests left in other namespaces are reconciled
	// too; only the test's own count.
	for key := range r.reconciled {
		if key.Namespace == ns {
			n++
		}
	}
	return n
}

// startReplica starts an operator process on the operator's registry and
// DB, as main wires it (scanning, signing, notifications), with short
// leases when leader election is on.
func (o *operator) startReplica(opts replicaOptions) *replica {
	t := o.t
	t.Helper()
	g := NewWithT(t)
	eng, ownEngine := opts.engine, opts.engine == nil
	if ownEngine {
		dir := opts.cacheDir
		if dir == "" {
			dir = t.TempDir()
		}
		eng = o.newEngine(dir)
	}
	db := eng.db

	skip := true
	mo := ctrl.Options{Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}}
	if o.ns != "" {
		// Entries that earlier tests left in other namespaces are not this
		// process's concern: they would add reconciles and writes of their
		// own.
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.ns: {}}}
	}
	if opts.leaseID != "" {
		lease, renew, retry := 3*time.Second, 2*time.Second, 250*time.Millisecond
		mo.LeaderElection, mo.LeaderElectionID, mo.LeaderElectionNamespace = true, opts.leaseID, "default"
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &lease, &renew, &retry
	}
	mgr, err := ctrl.NewManager(testEnv.Config, mo)
	g.Expect(err).NotTo(HaveOccurred())
	r := &replica{mgr: mgr}
	ctx, cancel := context.WithCancel(context.Background())
	g.Expect(controllers.SetupIndexes(ctx, mgr.GetFieldIndexer())).To(Succeed())
	g.Expect((&controllers.ImagePolicyReconciler{Client: mgr.GetClient(), Clock: o.clock,
		Recorder: mgr.GetEventRecorder("plinth")}).SetupWithManager(mgr)).To(Succeed())
	counting := interceptor.NewClient(withoutWatch{mgr.GetClient()}, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*catalogv1.BaseImage); ok {
				r.mu.Lock()
				if r.reconciled == nil {
					r.reconciled = map[client.ObjectKey]bool{}
				}
				r.reconciled[key] = true
				r.mu.Unlock()
			}
			return c.Get(ctx, key, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			r.statusWrites.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			r.statusWrites.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	g.Expect((&controllers.BaseImageReconciler{
		Client: counting, APIReader: mgr.GetAPIReader(), Clock: o.clock,
		Registry: registry.New(registry.Options{Retries: -1, RateLimit: 1000, Burst: 1000}),
		Recorder: mgr.GetEventRecorder("plinth"),
		Scanning: &controllers.Scanning{
			Scanner: &countingScanner{Scanner: eng.scanner, log: opts.log, gate: opts.gate}, DB: db,
			MaxDBAge: 48 * time.Hour, Updates: db.Subscribe(),
			Metrics:     metrics.New(prometheus.NewRegistry(), db.UpdatedAt),
			ScannerName: "trivy", ScannerVersion: trivy.Version,
		},
		Signer:                  &sign.Signer{},
		Webhooks:                &rebuild.Sender{Timeout: 2 * time.Second, MaxAttempts: 2, Backoff: 100 * time.Millisecond},
		MaxConcurrentReconciles: 8,
	}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if ownEngine {
				_ = db.Close()
			}
		})
	}
	t.Cleanup(r.stop)
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	return r
}

// restartEntries is the catalog size of the restart test:
// PLINTH_RESTART_ENTRIES, default 100.
func restartEntries(t *testing.T) int {
	v := os.Getenv("PLINTH_RESTART_ENTRIES")
	if v == "" {
		return 100
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("PLINTH_RESTART_ENTRIES=%q is not a positive number", v)
	}
	return n
}

// A restart costs nothing when nothing changed: with a catalog of signed
// entries over four digests (100 by default, PLINTH_RESTART_ENTRIES to
// change it), a restarted operator process, with the cache volume it had,
// scans nothing, signs nothing and writes no status. The first process
// scans and signs each digest once.
func TestARestartOfAnUnchangedCatalogScansSignsAndWritesNothing(t *testing.T) {
	const digests = 4
	n := restartEntries(t)
	g := NewWithT(t)
	ctx := context.Background()
	o := newOperatorWithoutProcess(t, []vulndbtest.Advisory{busyboxCVE})
	key := newCosignKey(t, "restart")
	o.putSecret(keySecret, key.data)
	o.createSigningPolicy(keySecret)
	want := map[string]bool{}
	for i := range digests {
		want[o.pushAlpine(fmt.Sprintf("base/alpine-%d:3.22", i), fmt.Sprintf("1.2.5-r%d", i+1), "1.3.1-r3")] = true
	}
	// The Deployment keeps its cache on a volume that outlives the
	// container: a restarted process finds the results there.
	log, cache := &scanLog{}, t.TempDir()
	first := o.startReplica(replicaOptions{log: log, cacheDir: cache})
	start := time.Now()
	for i := range n {
		o.createBaseImage(fmt.Sprintf("e-%04d", i), fmt.Sprintf("%s/base/alpine-%d:3.22", o.reg.Host, i%digests))
	}
	versions := func(g Gomega) map[string]string {
		var list catalogv1.BaseImageList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(o.ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		v := make(map[string]string, n)
		for _, bi := range list.Items {
			g.Expect(apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.ReadyCondition)).To(BeTrue(), "%s is not Ready", bi.Name)
			g.Expect(apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.SignedCondition)).To(BeTrue(), "%s is not Signed", bi.Name)
			v[bi.Name] = bi.ResourceVersion
		}
		return v
	}
	var settled map[string]string
	g.Eventually(func(g Gomega) {
		before := versions(g)
		time.Sleep(time.Second)
		g.Expect(versions(g)).To(Equal(before))
		settled = before
	}, 3*timeout, 500*time.Millisecond).Should(Succeed())
	t.Logf("first process: %d entries Ready and Signed in %s, %d scans, %d registry writes, signature pushes %v",
		n, time.Since(start).Round(time.Second), log.total(), o.writes.Load(), o.signaturePushes())
	for d, c := range log.counts() {
		g.Expect(want).To(HaveKey(d))
		g.Expect(c).To(Equal(1), "scans of %s", d)
	}
	g.Expect(log.counts()).To(HaveLen(digests))
	for d, c := range o.signaturePushes() {
		g.Expect(want).To(HaveKey(d))
		g.Expect(c).To(Equal(1), "signatures pushed for %s", d)
	}
	g.Expect(o.signaturePushes()).To(HaveLen(digests))
	first.stop()

	scans, writes := log.total(), o.writes.Load()
	second := o.startReplica(replicaOptions{log: log, cacheDir: cache})
	start = time.Now()
	g.Eventually(func() int { return second.reconciledCount(o.ns) }, 3*timeout, 200*time.Millisecond).
		Should(Equal(n), "every entry reconciled by the new process")
	t.Logf("second process: %d entries reconciled in %s", n, time.Since(start).Round(time.Millisecond))
	g.Consistently(func(g Gomega) {
		g.Expect(log.total()-scans).To(BeZero(), "scans")
		g.Expect(o.writes.Load()-writes).To(BeZero(), "registry writes (signatures, attestations)")
		g.Expect(second.statusWrites.Load()).To(BeZero(), "status writes")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(versions(g)).To(Equal(settled), "no entry was written")
}

// Two replicas elect a leader; the leader dies in the middle of a scan. The
// other takes over and finishes the work once: each digest is scanned to
// completion and signed once in all, each transition is told under one
// notification id, and approvedDigest never moves back to an older digest.
func TestTheLeaderDyingMidScanLeavesNoDuplicateWork(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	o := newOperatorWithoutProcess(t, []vulndbtest.Advisory{zlibCVE})
	key := newCosignKey(t, "failover")
	o.putSecret(keySecret, key.data)
	recv := newNotificationReceiver(t)
	o.putSecret("hook", map[string][]byte{"hmacKey": []byte("f41l0ver")})
	g.Expect(k8sClient.Create(ctx, &catalogv1.ImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "p"},
		Spec: catalogv1.ImagePolicySpec{
			Signing: &catalogv1.SigningPolicy{KeySecretRef: catalogv1.LocalObjectReference{Name: keySecret}},
			Notifications: []catalogv1.NotificationTarget{{
				Name:    "security",
				Webhook: catalogv1.WebhookTarget{URL: recv.URL, SecretRef: catalogv1.LocalObjectReference{Name: "hook"}},
			}},
		},
	})).To(Succeed())

	// Every status the API server stores, in order.
	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &catalogv1.BaseImageList{}, client.InNamespace(o.ns))
	g.Expect(err).NotTo(HaveOccurred())
	var (
		hmu     sync.Mutex
		history []string
	)
	go func() {
		for ev := range w.ResultChan() {
			if bi, ok := ev.Object.(*catalogv1.BaseImage); ok {
				hmu.Lock()
				history = append(history, bi.Status.ApprovedDigest)
				hmu.Unlock()
			}
		}
	}()
	t.Cleanup(w.Stop)

	log, gate := &scanLog{}, &scanGate{}
	lease := fmt.Sprintf("plinth-failover-%d", time.Now().UnixNano())
	// One process's DB and scanner serve both: Trivy allows one DB per
	// process. The scan the leader dies in never completes, so nothing of
	// it is cached for the other.
	eng := o.newEngine(t.TempDir())
	a := o.startReplica(replicaOptions{leaseID: lease, engine: eng, log: log, gate: gate})
	b := o.startReplica(replicaOptions{leaseID: lease, engine: eng, log: log, gate: gate})
	leader, follower := a, b
	select {
	case <-a.mgr.Elected():
	case <-b.mgr.Elected():
		leader, follower = b, a
	case <-time.After(timeout):
		t.Fatal("no replica was elected")
	}

	// The first digest is approved and signed under the first leader.
	d1 := o.pushAlpine("base/alpine:3.22", "1.2.5-r10", "1.3.1-r3")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)

	// A vulnerable digest replaces it; the leader dies scanning it.
	d2 := o.pushAlpine("base/alpine:3.22", "1.2.5-r10", "1.3.1-r2")
	entered := gate.arm(d2)
	o.poke("alpine")
	select {
	case <-entered:
	case <-time.After(timeout):
		t.Fatal("the leader did not start scanning the new digest")
	}
	leader.stop()
	select {
	case <-follower.mgr.Elected():
	case <-time.After(timeout):
		t.Fatal("the other replica did not take over")
	}
	bi := o.expect("alpine", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.VulnerabilitiesExceedThresholdReason)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(d2))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d1), "a bad digest keeps the last good one")

	// A fixed digest is approved and signed by the new leader.
	d3 := o.pushAlpine("base/alpine:3.22", "1.2.5-r11", "1.3.1-r3")
	o.pokeAndWait("alpine")
	g.Eventually(func(g Gomega) {
		bi := o.get(g, "alpine")
		g.Expect(bi.Status.ApprovedDigest).To(Equal(d3))
		g.Expect(apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.SignedCondition)).To(BeTrue())
	}, timeout, tick).Should(Succeed())

	g.Expect(log.counts()).To(Equal(map[string]int{d1: 1, d2: 1, d3: 1}), "scans completed, per digest")
	g.Expect(o.signaturePushes()).To(Equal(map[string]int{d1: 1, d3: 1}), "signatures pushed, per digest")
	// The vulnerable digest is a lost approval, and a fix is available:
	// two transitions, each told under one id (a redelivery would carry
	// the same id).
	ids := map[catalogv1.NotificationEvent]map[string]bool{}
	var told []string
	for _, p := range recv.payloads() {
		ev := catalogv1.NotificationEvent(p.Event)
		if ids[ev] == nil {
			ids[ev] = map[string]bool{}
		}
		ids[ev][p.ID] = true
		told = append(told, fmt.Sprintf("%s %s %s (%s)", p.Event, p.Reason, p.Digest, p.ID))
		g.Expect(p.Digest).To(Equal(d2), "told: %v", told)
	}
	g.Expect(ids).To(HaveLen(2), "told: %v", told)
	g.Expect(ids[catalogv1.NotificationApprovalLost]).To(HaveLen(1), "told: %v", told)
	g.Expect(ids[catalogv1.NotificationStale]).To(HaveLen(1), "told: %v", told)

	hmu.Lock()
	defer hmu.Unlock()
	var seq []string
	for _, d := range history {
		if d != "" && (len(seq) == 0 || seq[len(seq)-1] != d) {
			seq = append(seq, d)
		}
	}
	g.Expect(seq).To(Equal([]string{d1, d3}), "approvedDigest over every stored status")
	for i := 1; i < len(history); i++ {
		g.Expect(history[i-1] != "" && history[i] == "").To(BeFalse(), "approvedDigest was cleared")
	}
}

// notificationReceiver is a webhook endpoint on loopback that records the
// ids of the notifications it gets.
type notificationReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []rebuild.Payload
}

func newNotificationReceiver(t *testing.T) *notificationReceiver {
	r := &notificationReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p rebuild.Payload
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, p)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

// payloads lists the deliveries, in order.
func (r *notificationReceiver) payloads() []rebuild.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rebuild.Payload(nil), r.got...)
}

// poke asks for a reconcile without waiting for it.
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
