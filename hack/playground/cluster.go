package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/homedir"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/plinth-dev/plinth/test/testenv"
)

// kubeconfigCluster is the cluster kubectl would talk to: the current
// context of KUBECONFIG, or of ~/.kube/config when KUBECONFIG is unset.
type kubeconfigCluster struct {
	// files are the kubeconfig files it was read from.
	files []string
	// context is the name of the current context.
	context string
	// namespace is the context's namespace, "default" when it names none.
	namespace string
	config    *rest.Config
}

// errNoKubeconfig means that no kubeconfig names a cluster.
var errNoKubeconfig = errors.New("no cluster configured: KUBECONFIG and ~/.kube/config name none")

// loadKubeconfigCluster reads the cluster kubectl would use. It does not
// contact it.
func loadKubeconfigCluster() (*kubeconfigCluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		// clientcmd fixes the home directory when the program starts.
		rules.Precedence = []string{filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)}
	}
	rules.MigrationRules = nil // read only: never move the user's files
	var files []string
	for _, f := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, errNoKubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", strings.Join(files, ", "), err)
	}
	if raw.CurrentContext == "" {
		return nil, fmt.Errorf("%s: no current context", strings.Join(files, ", "))
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", strings.Join(files, ", "), err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, err
	}
	return &kubeconfigCluster{files: files, context: raw.CurrentContext, namespace: ns, config: cfg}, nil
}

// String names the cluster for a person: its context and API server.
func (k *kubeconfigCluster) String() string {
	return fmt.Sprintf("context %q, server %s", k.context, k.config.Host)
}

// runOnCluster installs the CRDs on the kubeconfig's cluster and runs the
// operator against it until ctx ends, printing the BaseImages of the
// context's namespace as they change. It applies no samples.
func runOnCluster(ctx context.Context, operator, metricsAddr string) error {
	k, err := loadKubeconfigCluster()
	if err != nil {
		return fmt.Errorf("-cluster: %w", err)
	}
	fmt.Printf("Using the cluster of your kubeconfig (%s), from %s.\n", k, strings.Join(k.files, string(os.PathListSeparator)))
	if _, err := envtest.InstallCRDs(k.config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.Root(), "config", "crd", "bases")}, ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	c, err := client.New(k.config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	fmt.Printf(`
The CRDs are installed and the operator is starting. Create BaseImages and
ImagePolicies in namespace %[1]s to see them judged below, or watch them with
  kubectl get baseimages -o wide -w

Press Ctrl-C to stop the operator (the CRDs and your objects stay).

`, k.namespace)
	stopPrinting := printCatalog(ctx, c, k.namespace)
	defer stopPrinting()
	// The operator reads the same files, so it uses the same context.
	return runOperator(ctx, operator, metricsAddr, []string{"KUBECONFIG=" + strings.Join(k.files, string(os.PathListSeparator))},
		"--cache-dir="+filepath.Join(testenv.Root(), "bin", "playground-cache"))
}
