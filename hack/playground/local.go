package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plinth-dev/plinth/internal/admission"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// runLocal starts the local control plane and sample registry, applies the
// samples and runs the operator until ctx ends, printing the catalog as it
// changes, then stops everything.
func runLocal(ctx context.Context, operator, metricsAddr, registryAddr, stateDir, namespace string) (err error) {
	fmt.Println("Using a local playground: starting a control plane and a sample registry on this machine.")
	if k, err := loadKubeconfigCluster(); err == nil {
		fmt.Printf("Your kubeconfig's cluster (%s) is left alone; `make run CLUSTER=1` uses it instead.\n", k)
	}
	reg, err := startSampleRegistry(ctx, registryAddr)
	if err != nil {
		return err
	}
	defer reg.Close()

	// The control plane calls the operator's admission webhook, installed
	// from config/webhook.
	env, err := testenv.StartWithWebhooks(filepath.Join(testenv.Root(), "config", "webhook", "manifests.yaml"))
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
	pubKey, err := createCatalogKey(ctx, c, namespace, stateDir)
	if err != nil {
		return err
	}
	defer os.Remove(pubKey)
	if err := applySamples(ctx, c, filepath.Join(testenv.Root(), "config", "samples"), namespace, sampleHost, time.Now()); err != nil {
		return err
	}
	apps, err := pushSampleApps(ctx, sampleHost)
	if err != nil {
		return err
	}
	if err := enrollAppsNamespace(ctx, c); err != nil {
		return err
	}
	try := admissionCommands(kubeconfig, apps)

	fmt.Printf(`
The playground is up.
  kubeconfig:  %[1]s
  registry:    %[2]s (sample images)
  vuln DB:     %[3]s
               SAMPLE DATA: made-up advisories (SAMPLE-2026-*), not real vulnerabilities

The catalog is printed below whenever it changes. With kubectl, watch it in
another terminal:
  KUBECONFIG=%[1]s kubectl get baseimages -o wide -w

The sample policy signs the digests it approves with a catalog key made for
this run (Secret %[4]s, public key %[5]s). Once
alpine is SIGNED, check its approval with cosign:
  %[6]s

Namespace %[7]s is labelled %[8]s=enforce: Pods there must be built on an
approved base. Once alpine is approved, this Pod (built FROM base/alpine) is
admitted:
  %[9]s
and this one (built FROM base/python:3.9, which the policy refuses) is
denied, with the approved bases to use instead:
  %[10]s

Press Ctrl-C to stop everything.

`, kubeconfig, sampleHost, dbRef, catalogKeySecret, pubKey, verifyCommand(pubKey, sampleHost),
		appsNamespace, admission.ModeLabel, try[0], try[1])
	stopPrinting := printCatalog(ctx, c, namespace)
	defer stopPrinting()
	return runOperator(ctx, operator, metricsAddr, []string{"KUBECONFIG=" + kubeconfig},
		append([]string{"--vuln-db-repository=" + dbRef, "--vuln-db-insecure", "--cache-dir=" + cacheDir},
			admissionFlags(env.Webhook)...)...)
}

// localHost names the sample registry as the samples do: localhost and its
// port.
func localHost(reg *registrytest.Registry) string {
	_, port, _ := net.SplitHostPort(reg.Host)
	return net.JoinHostPort("localhost", port)
}
