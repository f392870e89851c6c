// Package testenv starts a real control plane (etcd and kube-apiserver,
// through controller-runtime's envtest) with plinth's CRDs installed, for
// tests and for the local playground.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Versions of the control plane that hack/envtest/build.sh builds.
const (
	KubernetesVersion = "1.37.2"
	EtcdVersion       = "3.6.16"
)

// Root returns the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir returns where the control plane binaries are: KUBEBUILDER_ASSETS
// when set, otherwise the directory hack/envtest/build.sh fills.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(Root(), "bin", "k8s", KubernetesVersion+"-etcd"+EtcdVersion)
}

// Scheme returns a scheme with the Kubernetes built-in types and plinth's.
func Scheme() *kruntime.Scheme {
	s := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := catalogv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Environment is a running control plane.
type Environment struct {
	env    *envtest.Environment
	Config *rest.Config
	// Webhook says where the API server calls the webhooks installed by
	// StartWithWebhooks (LocalServingHost, LocalServingPort) and holds the
	// serving certificate it trusts (LocalServingCertDir, with tls.crt and
	// tls.key); nil for Start.
	Webhook *envtest.WebhookInstallOptions
}

// Start starts etcd and kube-apiserver and installs the CRDs of
// config/crd/bases.
func Start() (*Environment, error) { return start(nil) }

// StartWithWebhooks starts the control plane like Start and installs the
// webhook configurations of the given files (such as
// config/webhook/manifests.yaml), pointed at a server the test runs on
// loopback: see Environment.Webhook.
func StartWithWebhooks(paths ...string) (*Environment, error) { return start(paths) }

func start(webhooks []string) (*Environment, error) {
	dir := AssetsDir()
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing in %s: run `make envtest` or set KUBEBUILDER_ASSETS", bin, dir)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	if len(webhooks) > 0 {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: webhooks, LocalServingHost: "127.0.0.1"}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	e := &Environment{env: env, Config: cfg}
	if len(webhooks) > 0 {
		e.Webhook = &env.WebhookInstallOptions
	}
	return e, nil
}

// KubeConfig returns a kubeconfig file's content for an admin user of the
// control plane.
func (e *Environment) KubeConfig() ([]byte, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// Stop stops the control plane and removes its data.
func (e *Environment) Stop() error { return e.env.Stop() }
