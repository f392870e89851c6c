// Package verification runs the real reconcilers against a real API server
// and a loopback registry, and checks what a user sees when an ImagePolicy
// asks for publishers' cosign signatures.
package verification

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/sign"
	"github.com/plinth-dev/plinth/test/testenv"
)

var (
	k8sClient client.Client
	apiReader client.Reader
	nsCounter atomic.Int64
	// offLoopback counts connections attempted to anything but loopback.
	offLoopback atomic.Int64
)

const (
	timeout = 20 * time.Second
	tick    = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// Nothing here may reach public Sigstore: cosign's TUF cache lives in a
	// directory of the suite's own, and the default transport refuses
	// anything but loopback.
	tuf, err := os.MkdirTemp("", "plinth-verification-tuf-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tuf)
	if err := os.Setenv("TUF_ROOT", tuf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	loopbackOnly()

	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	// Everything running now belongs to the process or the control plane,
	// not to the manager.
	before := goleak.IgnoreCurrent()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	regClient := registry.New(registry.Options{Timeout: 5 * time.Second, RateLimit: 1000, Burst: 1000, Retries: 1})
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.ImagePolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// No scanner: entries are judged on their policy and signatures only.
	if err := (&controllers.BaseImageReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Registry:                regClient,
		Recorder:                mgr.GetEventRecorder("plinth"),
		Verifier:                sign.NewVerifier(sign.VerifierOptions{}),
		PublicRoot:              swappableRoot{},
		MaxConcurrentReconciles: 4,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8sClient = mgr.GetClient()
	apiReader = mgr.GetAPIReader()
	offlineRoot, err := sign.NewPublicRoot(sign.PublicRootOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	publicRoot.Store(offlineRoot)

	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if n := offLoopback.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d connections to non-loopback addresses were attempted\n", n)
		return 1
	}
	if err := goleak.Find(leakIgnores(before)...); err != nil {
		fmt.Fprintln(os.Stderr, "goroutines outlived the manager:", err)
		return 1
	}
	return code
}

// leakIgnores are the goroutines that may outlive a stopped manager
// without being leaks.
func leakIgnores(before goleak.Option) []goleak.Option {
	return []goleak.Option{
		// Goroutines started before the manager: package initializers, the
		// testing framework's, and envtest's, which wait on the etcd and
		// kube-apiserver processes until the deferred env.Stop.
		before,
		// Idle keep-alive connections of HTTP clients (to the API server,
		// whose transports client-go caches process-wide, and to the
		// tests' registries, TUF repositories and transparency logs). They
		// end when the server closes them or their idle timeout passes.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		// apimachinery's watch.Filter around the watches of metadata-only
		// informers: its loop blocks sending an event that the stopped
		// informer no longer reads, until the API server ends the watch.
		goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
	}
}

// publicRoot is the operator's source of the public Sigstore trusted root:
// offline unless a test points it at a TUF repository of its own.
var publicRoot atomic.Pointer[sign.PublicRoot]

// swappableRoot reads publicRoot at each call.
type swappableRoot struct{}

func (swappableRoot) TrustedRoot(ctx context.Context) ([]byte, error) {
	return publicRoot.Load().TrustedRoot(ctx)
}

// usePublicRoot makes the operator fetch the public trusted root as o
// says, until the test ends.
func usePublicRoot(t *testing.T, o sign.PublicRootOptions) {
	t.Helper()
	p, err := sign.NewPublicRoot(o)
	if err != nil {
		t.Fatal(err)
	}
	old := publicRoot.Swap(p)
	t.Cleanup(func() { publicRoot.Store(old) })
}

// loopbackOnly makes http.DefaultTransport refuse, and count, connections
// to anything but a loopback IP address.
func loopbackOnly() {
	guarded := http.DefaultTransport.(*http.Transport).Clone()
	guarded.Proxy = nil
	dial := (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	guarded.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			offLoopback.Add(1)
			return nil, errors.New("connections to non-loopback addresses are refused in tests")
		}
		return dial(ctx, network, addr)
	}
	http.DefaultTransport = guarded
}

func zapLevel() zapcore.Level {
	if os.Getenv("PLINTH_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.DPanicLevel
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("v%d", nsCounter.Add(1))}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// The test's registry closes when the test ends: its entries go first.
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(context.Background(), &catalogv1.BaseImage{}, client.InNamespace(ns.Name))
	})
	return ns.Name
}

// getBaseImage reads a BaseImage from the API server, not the cache.
func getBaseImage(g Gomega, key client.ObjectKey) *catalogv1.BaseImage {
	var bi catalogv1.BaseImage
	g.Expect(apiReader.Get(context.Background(), key, &bi)).To(Succeed())
	return &bi
}

// condition returns a condition of a BaseImage as read from the API server,
// or nil.
func condition(g Gomega, key client.ObjectKey, typ string) *metav1.Condition {
	return meta.FindStatusCondition(getBaseImage(g, key).Status.Conditions, typ)
}

// expectCondition waits until a condition has the given status and reason,
// and returns it.
func expectCondition(t *testing.T, key client.ObjectKey, typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		c := condition(g, key, typ)
		g.Expect(c).NotTo(BeNil(), "no %s condition", typ)
		g.Expect(c.Status).To(Equal(st), "%s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
		got = *c
	}, timeout, tick).Should(Succeed())
	return got
}

// requestReconcile asks for an immediate reconcile through the annotation a
// user would set.
func requestReconcile(t *testing.T, key client.ObjectKey) {
	t.Helper()
	var bi catalogv1.BaseImage
	if err := apiReader.Get(context.Background(), key, &bi); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
	if err := k8sClient.Patch(context.Background(), &bi, patch); err != nil {
		t.Fatal(err)
	}
}
