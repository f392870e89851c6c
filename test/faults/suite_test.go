// Package faults runs the real BaseImage reconciler against a real API
// server and a loopback registry behind the fault proxy, and checks what a
// user sees when the registry misbehaves: the last verdict is kept, a
// condition says why in stable words, and neither reconciles nor registry
// requests run in a hot loop.
package faults

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

var (
	k8sClient client.Client
	apiReader client.Reader
	nsCounter atomic.Int64
)

const (
	timeout = 20 * time.Second
	tick    = 50 * time.Millisecond
)

// Registry settings of the suite: short timeouts, one retry and a short
// cap on Retry-After keep each fault quick; the manifest limit is small
// enough for a generated 1,000-layer manifest to pass it.
var regOptions = registry.Options{
	Timeout:          500 * time.Millisecond,
	Retries:          1,
	RetryBackoff:     20 * time.Millisecond,
	MaxRetryAfter:    200 * time.Millisecond,
	RateLimit:        50,
	Burst:            50,
	MaxManifestBytes: 64 << 10,
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	level := zapcore.DPanicLevel // reconcile errors are expected here
	if os.Getenv("PLINTH_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(level)))
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
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.ImagePolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// No scanner: layer faults are the scanner's tests; these are about
	// reading the registry.
	if err := (&controllers.BaseImageReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Registry:                registry.New(regOptions),
		Recorder:                mgr.GetEventRecorder("plinth"),
		MaxConcurrentReconciles: 4,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k8sClient = mgr.GetClient()
	apiReader = mgr.GetAPIReader()

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
	return code
}
