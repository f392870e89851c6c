// Command playground runs plinth for `make run`.
//
// With a cluster configured (KUBECONFIG, or ~/.kube/config) it installs the
// CRDs there and runs the operator against it. With none, it starts a local
// control plane (etcd and kube-apiserver), a registry on loopback seeded
// with sample images, installs the CRDs, applies config/samples and runs the
// operator against them. Ctrl-C stops everything it started.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

func main() {
	var (
		operator     string
		registryAddr string
		stateDir     string
		namespace    string
	)
	root := testenv.Root()
	flag.StringVar(&operator, "operator", filepath.Join(root, "bin", "plinth"), "Path of the operator binary to run.")
	flag.StringVar(&registryAddr, "registry-address", "127.0.0.1:5050", "Loopback address of the sample registry; port 0 picks a free one. The samples name it localhost:5050 and are rewritten to the actual port.")
	flag.StringVar(&stateDir, "state-dir", filepath.Join(root, "bin", "playground"), "Where the playground writes its kubeconfig.")
	flag.StringVar(&namespace, "namespace", "default", "Namespace the samples are applied to.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if kubeconfig := existingKubeconfig(); kubeconfig != "" {
		err = runOnCluster(ctx, operator, kubeconfig)
	} else {
		err = runLocal(ctx, operator, registryAddr, stateDir, namespace)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}

// existingKubeconfig returns the kubeconfig kubectl would use, or "" when
// there is none.
func existingKubeconfig() string {
	if k := os.Getenv("KUBECONFIG"); k != "" {
		return k
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// runOnCluster installs the CRDs on the configured cluster and runs the
// operator against it until ctx ends.
func runOnCluster(ctx context.Context, operator, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %s: %w", kubeconfig, err)
	}
	fmt.Printf("Using the cluster of %s\n", kubeconfig)
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.Root(), "config", "crd", "bases")}, ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}
	return runOperator(ctx, operator, kubeconfig, "--cache-dir="+filepath.Join(testenv.Root(), "bin", "playground-cache"))
}

// runLocal starts the local control plane and sample registry, applies the
// samples and runs the operator until ctx ends, then stops everything.
func runLocal(ctx context.Context, operator, registryAddr, stateDir, namespace string) (err error) {
	fmt.Println("No cluster configured: starting a local control plane and a sample registry.")
	reg, err := startSampleRegistry(ctx, registryAddr)
	if err != nil {
		return err
	}
	defer reg.Close()

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the control plane: %w", stopErr))
		}
	}()

	kc, err := env.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing a kubeconfig: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	defer os.Remove(kubeconfig)

	c, err := client.New(env.Config, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	sampleHost := localHost(reg)
	dbRef, err := pushSampleDB(ctx, sampleHost)
	if err != nil {
		return err
	}
	cacheDir, err := os.MkdirTemp("", "plinth-playground-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cacheDir)
	if err := applySamples(ctx, c, filepath.Join(testenv.Root(), "config", "samples"), namespace, sampleHost); err != nil {
		return err
	}

	fmt.Printf(`
The playground is up.
  kubeconfig:  %[1]s
  registry:    %[2]s (sample images)
  vuln DB:     %[3]s
               SAMPLE DATA: made-up advisories (SAMPLE-2026-*), not real vulnerabilities

Watch the catalog in another terminal:
  KUBECONFIG=%[1]s kubectl get baseimages -o wide -w

Press Ctrl-C to stop everything.

`, kubeconfig, sampleHost, dbRef)
	return runOperator(ctx, operator, kubeconfig,
		"--vuln-db-repository="+dbRef, "--vuln-db-insecure", "--cache-dir="+cacheDir)
}

// runOperator runs the operator binary until ctx ends, then stops it with
// SIGTERM. The operator also dies with this process.
func runOperator(ctx context.Context, operator, kubeconfig string, args ...string) error {
	if _, err := os.Stat(operator); err != nil {
		return fmt.Errorf("operator binary %s not found: run `make build` first", operator)
	}
	cmd := exec.Command(operator, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the operator: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return fmt.Errorf("the operator exited: %w", err)
	case <-ctx.Done():
	}
	fmt.Println("\nStopping.")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// samplesRegistry is the registry host the samples in config/samples name.
const samplesRegistry = "localhost:5050"

// applySamples creates every object of the YAML files in dir, pointing the
// samples at registryHost.
func applySamples(ctx context.Context, c client.Client, dir, namespace, registryHost string) error {
	files, err := filepath.Glob(filepath.Join(dir, "catalog_*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte(samplesRegistry), []byte(registryHost))
		dec := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(namespace)
			if err := c.Create(ctx, &u); err != nil {
				return fmt.Errorf("creating %s %s from %s: %w", u.GetKind(), u.GetName(), filepath.Base(f), err)
			}
		}
	}
	return nil
}

// localHost names the sample registry as the samples do: localhost and its
// port.
func localHost(reg *registrytest.Registry) string {
	_, port, _ := net.SplitHostPort(reg.Host)
	return net.JoinHostPort("localhost", port)
}
