// Command plinth runs the plinth operator: it keeps the catalog of approved
// base images (BaseImage and ImagePolicy resources) up to date.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/admission"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/check"
	"github.com/plinth-dev/plinth/internal/inventory"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/rebuild"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
	"github.com/plinth-dev/plinth/internal/scan/trivy"
	"github.com/plinth-dev/plinth/internal/sign"
)

// The metrics endpoint authenticates and authorizes its callers.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// Leader election.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// options are the operator's flags.
type options struct {
	metricsAddr      string
	secureMetrics    bool
	metricsCertDir   string
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	concurrency      int
	kubeQPS          float64
	kubeBurst        int
	watchNamespaces  string
	reconcileTimeout time.Duration
	registry         registry.Options

	scanning        bool
	cacheDir        string
	dbRepositories  string
	dbInsecure      bool
	dbCAFile        string
	dbCredentials   string
	dbInterval      time.Duration
	dbMaxAge        time.Duration
	scanConcurrency int
	maxLayers       int
	maxLayerBytes   int64
	maxImageBytes   int64
	maxInflated     int64
	maxExpansion    int64
	layerCacheBytes int64
	secretMaxBytes  int64
	cacheMaxBytes   int64
	scanTimeout     time.Duration
	scanStall       time.Duration

	tufMirror  string
	tufRoot    string
	tufRefresh time.Duration

	admission         bool
	admissionTimeout  time.Duration
	admissionUnknown  string
	admissionExcluded string
	webhookHost       string
	webhookPort       int
	webhookCerts      string
	webhookCertDir    string
	webhookSecret     string
	webhookConfig     string
	webhookService    string
	webhookExtraHosts string
}

func main() {
	// plinth check is the gate for CI pipelines; everything else runs the
	// operator.
	if len(os.Args) > 1 && os.Args[1] == "check" {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := check.Main(ctx, os.Args[2:], os.Stdout, os.Stderr)
		cancel()
		os.Exit(code)
	}
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticating and authorizing callers with the API server.")
	flag.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Directory holding tls.crt and tls.key for the metrics endpoint, reloaded when they change; empty serves a self-signed certificate made at start.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the liveness and readiness probes bind to.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease; defaults to the operator's namespace.")
	flag.IntVar(&o.concurrency, "concurrency", 4, "How many BaseImages are reconciled at once.")
	flag.Float64Var(&o.kubeQPS, "kube-api-qps", 0, "Requests per second plinth sends to the Kubernetes API server, paced on plinth's side; 0 keeps the kubeconfig's setting, or none: the API server's priority and fairness then paces plinth.")
	flag.IntVar(&o.kubeBurst, "kube-api-burst", 0, "Burst of requests to the Kubernetes API server with --kube-api-qps; 0 is twice --kube-api-qps.")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose BaseImages, ImagePolicies, Secrets and ServiceAccounts plinth watches; empty watches every namespace.")
	flag.DurationVar(&o.reconcileTimeout, "reconcile-timeout", controllers.DefaultReconcileTimeout, "Deadline of one BaseImage reconcile, scans included.")
	flag.DurationVar(&o.registry.Timeout, "registry-timeout", 30*time.Second, "Timeout of one registry request.")
	flag.Float64Var(&o.registry.RateLimit, "registry-rate-limit", registry.DefaultRateLimit, "Requests per second plinth sends to one registry host, at most: a host that answers 429 is sent half as many for a while.")
	flag.IntVar(&o.registry.Burst, "registry-burst", registry.DefaultBurst, "Burst of requests plinth may send to one registry host.")

	flag.BoolVar(&o.scanning, "scan", true, "Scan base images for vulnerabilities; false judges them on registry, age and upstream only.")
	flag.StringVar(&o.cacheDir, "cache-dir", "/var/cache/plinth", "Directory of the vulnerability DB, the layer cache and the scan results; keep it across restarts to avoid rescans.")
	flag.StringVar(&o.dbRepositories, "vuln-db-repository", trivy.DefaultDBRepository+","+trivy.DefaultFallbackDBRepository, "Comma-separated OCI repositories (with tag) of the vulnerability DB, tried in order; point it at a mirror for air-gapped clusters.")
	flag.BoolVar(&o.dbInsecure, "vuln-db-insecure", false, "Allow plain HTTP to the vulnerability DB repository.")
	flag.StringVar(&o.dbCAFile, "vuln-db-ca-file", "", "PEM file of CAs trusted for TLS to the vulnerability DB repository (a private mirror).")
	flag.StringVar(&o.dbCredentials, "vuln-db-credentials", "", "A docker config.json file (e.g. a mounted kubernetes.io/dockerconfigjson Secret) with credentials for the vulnerability DB repository.")
	flag.DurationVar(&o.dbInterval, "vuln-db-update-interval", time.Hour, "How often plinth checks for a new vulnerability DB (one manifest request when it has not changed).")
	flag.DurationVar(&o.dbMaxAge, "vuln-db-max-age", 72*time.Hour, "Age past which the vulnerability DB is reported stale (Scanned=False VulnDBStale); 0 never.")
	flag.IntVar(&o.scanConcurrency, "scan-concurrency", 2, "How many images are scanned at once.")
	flag.IntVar(&o.maxLayers, "scan-max-layers", 128, "Images with more layers per platform are not scanned (LayerLimitExceeded).")
	flag.Int64Var(&o.maxLayerBytes, "scan-max-layer-bytes", 2<<30, "Images with a larger compressed layer are not scanned (LayerLimitExceeded).")
	flag.Int64Var(&o.maxImageBytes, "scan-max-image-bytes", 8<<30, "Images whose compressed layers add up to more, per platform, are not scanned (LayerLimitExceeded).")
	flag.Int64Var(&o.maxInflated, "scan-max-uncompressed-layer-bytes", trivy.DefaultMaxUncompressedLayerSize, "Scans stop at a layer that inflates to more bytes (LayerLimitExceeded).")
	flag.Int64Var(&o.maxExpansion, "scan-max-layer-expansion", trivy.DefaultMaxLayerExpansion, "Scans stop at a layer that inflates to more than this many times its compressed size, and more than 64 MiB: a decompression bomb (LayerLimitExceeded).")
	flag.Int64Var(&o.cacheMaxBytes, "cache-max-bytes", scan.DefaultCacheMaxBytes, "Bound of everything on the cache volume: the vulnerability DB with room for one download, the layer download spool, the cache of analysed layers and the scan results. Match the volume's size.")
	flag.Int64Var(&o.layerCacheBytes, "layer-cache-bytes", 0, "Bound of the on-disk cache of analysed layers; 0 takes its share of --cache-max-bytes.")
	flag.Int64Var(&o.secretMaxBytes, "secret-max-file-bytes", trivy.DefaultMaxSecretFileSize, "Larger text files are not read by the secret scanner; they are counted in status.hardening.secretsSkipped.")
	flag.DurationVar(&o.scanTimeout, "scan-timeout", trivy.DefaultScanTimeout, "Deadline of one scan, counted from when it gets a slot.")
	flag.DurationVar(&o.scanStall, "scan-stall-timeout", 15*time.Minute, "/healthz fails when scans are pending and none made progress for this long; keep it above --scan-timeout.")
	flag.StringVar(&o.tufMirror, "sigstore-tuf-mirror", sign.DefaultTUFMirror, "TUF repository the public Sigstore trusted root is fetched from, for policies that name no trustedRoot; empty runs offline: such policies then need a trustedRoot for keyless identities and transparency-log checks.")
	flag.StringVar(&o.tufRoot, "sigstore-tuf-root", "", "A TUF root.json file to trust for --sigstore-tuf-mirror (a private mirror); empty uses the public Sigstore root built into plinth.")
	flag.DurationVar(&o.tufRefresh, "sigstore-tuf-refresh", 24*time.Hour, "How long a fetched Sigstore trusted root is used before the TUF mirror is asked again.")
	flag.BoolVar(&o.admission, "admission-webhook", false, "Serve the validating admission webhook that keeps workloads of enrolled namespaces on approved bases.")
	flag.DurationVar(&o.admissionTimeout, "admission-match-timeout", admission.DefaultMatchTimeout, "Time the webhook may spend classifying a request's images (registry reads included); keep it below the webhook configuration's timeoutSeconds.")
	flag.StringVar(&o.admissionUnknown, "admission-unknown", string(admission.AllowUnknown), "What enforce mode does with an image that cannot be classified in time: allow (admit with a warning) or deny.")
	flag.StringVar(&o.admissionExcluded, "admission-excluded-namespaces", "", "Comma-separated namespaces always admitted unchecked, in addition to kube-system and plinth's own namespace.")
	flag.StringVar(&o.webhookHost, "webhook-host", "", "Address the admission webhook binds to; empty binds every interface.")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port the admission webhook is served on.")
	flag.StringVar(&o.webhookCerts, "webhook-certs", "self-managed", "Where the webhook's serving certificate comes from: self-managed (plinth keeps a CA and certificate in --webhook-cert-secret and writes the caBundle) or mounted (tls.crt and tls.key in --webhook-cert-dir, from cert-manager or OLM).")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "", "Directory of the mounted tls.crt and tls.key, reloaded when they change; empty is controller-runtime's default, where OLM mounts them.")
	flag.StringVar(&o.webhookSecret, "webhook-cert-secret", "plinth-webhook-server-cert", "Secret, in plinth's namespace, of the self-managed CA and serving certificate.")
	flag.StringVar(&o.webhookConfig, "webhook-configuration", "plinth-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle plinth keeps in self-managed mode.")
	flag.StringVar(&o.webhookService, "webhook-service", "plinth-webhook-service", "Service, in plinth's namespace, the self-managed certificate is issued for.")
	flag.StringVar(&o.webhookExtraHosts, "webhook-cert-hosts", "", "Comma-separated extra DNS names or IP addresses of the self-managed certificate (e.g. 127.0.0.1 when the API server calls a URL).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(o); err != nil {
		log.Error(err, "plinth stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(catalogv1.AddToScheme(scheme))

	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics}
	if o.metricsCertDir != "" {
		metricsOpts.CertDir, metricsOpts.CertName, metricsOpts.KeyName = o.metricsCertDir, "tls.crt", "tls.key"
	}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	if err := kubeAPILimits(cfg, o.kubeQPS, o.kubeBurst); err != nil {
		return err
	}
	cacheOpts := cache.Options{ByObject: controllers.CacheByObject()}
	if ns := splitList(o.watchNamespaces); len(ns) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			cacheOpts.DefaultNamespaces[n] = cache.Config{}
		}
	}
	var certs *admission.CertRotator
	var webhookServer webhook.Server
	if o.admission {
		if certs, webhookServer, err = webhookServing(o); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:           webhookServer,
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "plinth.catalog.plinth.dev",
		LeaderElectionNamespace: o.leaderElectionNS,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	// The catalog's state is read from the cache at each scrape, so it
	// covers exactly the watched namespaces.
	ctrlmetrics.Registry.MustRegister(metrics.NewCatalogCollector(mgr.GetClient(), time.Now))

	recorder := mgr.GetEventRecorder("plinth")
	var scanning *controllers.Scanning
	if o.scanning {
		if scanning, err = setupScanning(mgr, o, recorder); err != nil {
			return err
		}
	}
	o.registry.UserAgent = "plinth"
	if err := controllers.SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := (&controllers.ImagePolicyReconciler{Client: mgr.GetClient(), Recorder: recorder}).SetupWithManager(mgr); err != nil {
		return err
	}
	// Rebuilds, deliveries and time to patch are counted whether or not
	// plinth scans.
	m := (*metrics.Metrics)(nil)
	if scanning != nil {
		m = scanning.Metrics
	} else {
		m = metrics.New(ctrlmetrics.Registry, nil)
	}
	// One registry client for everything plinth reads, so that the per-host
	// rate limit holds across the controllers.
	regClient := registry.New(o.registry)
	// The catalog index, kept in step with the BaseImages, is what running
	// and admitted images are matched against.
	index := catalog.NewIndex()
	// One matcher for the inventory and admission, so that an image read
	// for one serves the other.
	access := &controllers.RegistryAccess{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Index: index}
	matcher, err := catalog.NewMatcher(index, catalog.Options{Client: regClient, ImageAccess: access.ForImage, EntryAccess: access.ForEntry})
	if err != nil {
		return err
	}
	if err := (&controllers.CatalogIndexReconciler{Client: mgr.GetClient(), Index: index}).SetupWithManager(mgr); err != nil {
		return err
	}
	// The inventory of running containers, its metrics and the consumer
	// counts of the BaseImages.
	store := inventory.NewStore()
	if err := (&controllers.InventoryReconciler{Client: mgr.GetClient(), Index: index, Matcher: matcher, Store: store}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.Add(&controllers.ConsumerCounts{Client: mgr.GetClient(), Store: store}); err != nil {
		return err
	}
	ctrlmetrics.Registry.MustRegister(metrics.NewInventoryCollector(store.Summary, func() []types.NamespacedName {
		entries := index.Entries()
		names := make([]types.NamespacedName, len(entries))
		for i, e := range entries {
			names[i] = e.Name
		}
		return names
	}))
	publicRoot, err := setupPublicRoot(o)
	if err != nil {
		return err
	}
	if err := (&controllers.BaseImageReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Registry:                regClient,
		Recorder:                recorder,
		Scanning:                scanning,
		Verifier:                sign.NewVerifier(sign.VerifierOptions{}),
		PublicRoot:              publicRoot,
		Signer:                  &sign.Signer{},
		Webhooks:                &rebuild.Sender{},
		Metrics:                 m,
		MaxConcurrentReconciles: o.concurrency,
		ReconcileTimeout:        o.reconcileTimeout,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if o.admission {
		if err := setupAdmission(ctx, mgr, o, matcher, certs); err != nil {
			return err
		}
		// A replica serves admission requests once its index holds the
		// catalog.
		if err := mgr.AddReadyzCheck("catalog-index", admission.IndexSynced(mgr.GetClient(), index)); err != nil {
			return err
		}
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))

	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))

	ctrl.Log.WithName("setup").Info("Starting plinth", "scanning", o.scanning)
	err = mgr.Start(ctx)
	if o.scanning {
		// The manager has stopped its runnables: no scan runs any more.
		if rerr := trivy.RemoveTempFiles(); rerr != nil {
			ctrl.Log.WithName("setup").Error(rerr, "Removing the scans' temporary files")
		}
	}
	return err
}

// setupPublicRoot configures where the public Sigstore trusted root comes
// from; its TUF cache lives on the cache volume.
func setupPublicRoot(o options) (*sign.PublicRoot, error) {
	po := sign.PublicRootOptions{Mirror: o.tufMirror, CacheDir: filepath.Join(o.cacheDir, "sigstore-tuf"), Refresh: o.tufRefresh}
	if o.tufRoot != "" {
		b, err := os.ReadFile(o.tufRoot)
		if err != nil {
			return nil, fmt.Errorf("reading --sigstore-tuf-root: %w", err)
		}
		po.Root = b
	}
	p, err := sign.NewPublicRoot(po)
	if err != nil {
		return nil, fmt.Errorf("--sigstore-tuf-mirror, --sigstore-tuf-root: %w", err)
	}
	return p, nil
}

// setupScanning opens the vulnerability DB and the scanner on the cache
// directory and keeps the DB up to date while the manager runs.
func setupScanning(mgr manager.Manager, o options, recorder events.EventRecorder) (*controllers.Scanning, error) {
	// DB updates are counted, and their failures raised as Events on the
	// operator's Pod (named by the Deployment through the downward API).
	dbHealth := &controllers.VulnDBHealth{Recorder: recorder, Describe: describeDBError}
	if name, ns := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE"); name != "" && ns != "" {
		dbHealth.Regarding = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	}
	dbo := trivy.DBOptions{
		Repositories:   splitList(o.dbRepositories),
		CacheDir:       filepath.Join(o.cacheDir, "db"),
		Insecure:       o.dbInsecure,
		UpdateInterval: o.dbInterval,
		OnUpdate:       func(err error) { dbHealth.Observe(err, time.Now()) },
	}
	if o.dbCAFile != "" {
		pem, err := os.ReadFile(o.dbCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --vuln-db-ca-file: %w", err)
		}
		dbo.CAPool = x509.NewCertPool()
		if !dbo.CAPool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--vuln-db-ca-file %s holds no PEM certificate", o.dbCAFile)
		}
	}
	if o.dbCredentials != "" {
		data, err := os.ReadFile(o.dbCredentials)
		if err != nil {
			return nil, fmt.Errorf("reading --vuln-db-credentials: %w", err)
		}
		kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{{
			Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: data},
		}})
		if err != nil {
			return nil, fmt.Errorf("reading --vuln-db-credentials: %w", err)
		}
		dbo.Keychain = kc
	}
	db, err := trivy.NewDBManager(dbo)
	if err != nil {
		return nil, fmt.Errorf("opening the vulnerability DB: %w", err)
	}
	if err := trivy.UseTempDir(filepath.Join(o.cacheDir, "tmp")); err != nil {
		return nil, fmt.Errorf("preparing the scans' temporary directory under --cache-dir: %w", err)
	}
	scanner, err := trivy.NewScanner(trivy.Options{
		DB:                db,
		CacheDir:          filepath.Join(o.cacheDir, "scans"),
		Concurrency:       o.scanConcurrency,
		CacheMaxBytes:     o.cacheMaxBytes,
		LayerCacheBytes:   o.layerCacheBytes,
		ScanTimeout:       o.scanTimeout,
		MaxSecretFileSize: o.secretMaxBytes,
		Limits:            trivy.Limits{MaxLayers: o.maxLayers, MaxLayerSize: o.maxLayerBytes, MaxTotalSize: o.maxImageBytes, MaxUncompressedLayerSize: o.maxInflated, MaxLayerExpansion: o.maxExpansion},
		LogHandler:        slog.DiscardHandler,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the scanner: %w", err)
	}
	// The DB is kept fresh by every replica, leader or not, so a new
	// leader starts with a current DB.
	if err := mgr.Add(everyReplica{func(ctx context.Context) error {
		db.Run(ctx)
		return db.Close()
	}}); err != nil {
		return nil, err
	}
	// A scanner that stopped making progress is restarted.
	if err := mgr.AddHealthzCheck("scans", func(*http.Request) error {
		return scanner.Health(time.Now(), o.scanStall)
	}); err != nil {
		return nil, err
	}
	dbHealth.Metrics = metrics.New(ctrlmetrics.Registry, db.UpdatedAt)
	return &controllers.Scanning{
		Scanner:  scanner,
		DB:       db,
		MaxDBAge: o.dbMaxAge,
		Updates:  db.Subscribe(),
		Metrics:  dbHealth.Metrics,

		ScannerName:    "trivy",
		ScannerVersion: trivy.Version,
	}, nil
}

// ownNamespace is the namespace plinth runs in (from the downward API),
// plinth-system when it runs out of cluster.
func ownNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "plinth-system"
}

// webhookServing makes the webhook server and, for self-managed
// certificates, the rotator that serves them.
func webhookServing(o options) (*admission.CertRotator, webhook.Server, error) {
	wo := webhook.Options{Host: o.webhookHost, Port: o.webhookPort, CertDir: o.webhookCertDir}
	switch o.webhookCerts {
	case "mounted":
		return nil, webhook.NewServer(wo), nil
	case "self-managed":
		ns := ownNamespace()
		certs := &admission.CertRotator{
			Secret:               types.NamespacedName{Namespace: ns, Name: o.webhookSecret},
			WebhookConfiguration: o.webhookConfig,
			Hosts: append([]string{o.webhookService + "." + ns + ".svc", o.webhookService + "." + ns + ".svc.cluster.local"},
				splitList(o.webhookExtraHosts)...),
		}
		wo.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}
		return certs, webhook.NewServer(wo), nil
	}
	return nil, nil, fmt.Errorf("--webhook-certs %q: want self-managed or mounted", o.webhookCerts)
}

// setupAdmission serves the admission webhook and, for self-managed
// certificates, keeps them.
func setupAdmission(ctx context.Context, mgr manager.Manager, o options, matcher *catalog.Matcher, certs *admission.CertRotator) error {
	unknown, err := admission.ParseUnknownPolicy(o.admissionUnknown)
	if err != nil {
		return fmt.Errorf("--admission-unknown: %w", err)
	}
	if certs != nil {
		certs.Client, certs.Reader = mgr.GetClient(), mgr.GetAPIReader()
		if err := mgr.Add(certs); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhook-certs", certs.Ready); err != nil {
			return err
		}
	}
	return (&admission.Validator{
		Matcher:            matcher,
		Recorder:           mgr.GetEventRecorder("plinth-admission"),
		Metrics:            admission.NewMetrics(ctrlmetrics.Registry),
		ExcludedNamespaces: append([]string{ownNamespace()}, splitList(o.admissionExcluded)...),
		MatchTimeout:       o.admissionTimeout,
		Unknown:            unknown,
	}).SetupWithManager(ctx, mgr)
}

// describeDBError is the stable message of a DB update failure, without
// URLs or credentials.
func describeDBError(err error) string {
	var de *trivy.DBError
	if errors.As(err, &de) {
		return de.Stable()
	}
	return "the update failed"
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// everyReplica is a runnable that runs whether or not its replica leads.
type everyReplica struct{ manager.RunnableFunc }

func (everyReplica) NeedLeaderElection() bool { return false }

// kubeAPILimits paces plinth's requests to the API server on its own side
// when qps is positive; burst 0 is twice qps.
func kubeAPILimits(cfg *rest.Config, qps float64, burst int) error {
	switch {
	case qps < 0:
		return fmt.Errorf("--kube-api-qps must not be negative, got %g", qps)
	case burst < 0:
		return fmt.Errorf("--kube-api-burst must not be negative, got %d", burst)
	case qps == 0:
		return nil
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	if burst == 0 {
		cfg.Burst = int(2 * qps)
	}
	return nil
}
