// Command plinth runs the plinth operator: it keeps the catalog of approved
// base images (BaseImage and ImagePolicy resources) up to date.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/registry"
)

// The metrics endpoint authenticates and authorizes its callers.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// Leader election.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

func main() {
	var (
		metricsAddr      string
		secureMetrics    bool
		metricsCertDir   string
		probeAddr        string
		leaderElect      bool
		leaderElectionNS string
		concurrency      int
		registryTimeout  time.Duration
		registryRate     float64
		registryBurst    int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticating and authorizing callers with the API server.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "", "Directory holding tls.crt and tls.key for the metrics endpoint, reloaded when they change; empty serves a self-signed certificate made at start.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the liveness and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease; defaults to the operator's namespace.")
	flag.IntVar(&concurrency, "concurrency", 4, "How many BaseImages are reconciled at once.")
	flag.DurationVar(&registryTimeout, "registry-timeout", 30*time.Second, "Timeout of one registry request.")
	flag.Float64Var(&registryRate, "registry-rate-limit", 10, "Requests per second plinth sends to one registry host.")
	flag.IntVar(&registryBurst, "registry-burst", 20, "Burst of requests plinth may send to one registry host.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(catalogv1.AddToScheme(scheme))

	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics}
	if metricsCertDir != "" {
		metricsOpts.CertDir = metricsCertDir
		metricsOpts.CertName = "tls.crt"
		metricsOpts.KeyName = "tls.key"
	}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "plinth.catalog.plinth.dev",
		LeaderElectionNamespace: leaderElectionNS,
	})
	if err != nil {
		log.Error(err, "Cannot create the manager")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	if err := setup(ctx, mgr, concurrency, registry.Options{
		UserAgent: "plinth",
		Timeout:   registryTimeout,
		RateLimit: registryRate,
		Burst:     registryBurst,
	}); err != nil {
		log.Error(err, "Cannot set up the controllers")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))

	log.Info("Starting plinth")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The manager stopped")
		os.Exit(1)
	}
}

func setup(ctx context.Context, mgr ctrl.Manager, concurrency int, ro registry.Options) error {
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := (&controllers.ImagePolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&controllers.BaseImageReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Registry:                registry.New(ro),
		Recorder:                mgr.GetEventRecorder("plinth"),
		MaxConcurrentReconciles: concurrency,
	}).SetupWithManager(mgr)
}
