// Command playground runs plinth for `make run`.
//
// By default it starts a local playground: a control plane (etcd and
// kube-apiserver), a registry on loopback seeded with sample images and a
// sample vulnerability DB; it installs the CRDs, applies config/samples and
// runs the operator against them. With -cluster (`make run CLUSTER=1`) it
// instead installs the CRDs on the cluster of KUBECONFIG (or ~/.kube/config)
// and runs the operator against that. Either way it prints which one it uses,
// and the catalog table whenever it changes. Ctrl-C stops everything it
// started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plinth-dev/plinth/test/testenv"
)

// catalogPollInterval is how often the catalog is read to print its changes.
const catalogPollInterval = 2 * time.Second

func main() {
	var (
		onCluster    bool
		operator     string
		registryAddr string
		stateDir     string
		namespace    string
		metricsAddr  string
	)
	root := testenv.Root()
	flag.BoolVar(&onCluster, "cluster", false, "Run against the cluster of KUBECONFIG (or ~/.kube/config) instead of a local playground: install the CRDs there and run the operator against it.")
	flag.StringVar(&operator, "operator", filepath.Join(root, "bin", "plinth"), "Path of the operator binary to run.")
	flag.StringVar(&registryAddr, "registry-address", "127.0.0.1:5050", "Loopback address of the sample registry; port 0 picks a free one. The samples name it localhost:5050 and are rewritten to the actual port.")
	flag.StringVar(&stateDir, "state-dir", filepath.Join(root, "bin", "playground"), "Where the local playground writes its kubeconfig.")
	flag.StringVar(&namespace, "namespace", "default", "Namespace the samples are applied to in the local playground.")
	flag.StringVar(&metricsAddr, "metrics-address", "", "Loopback address (host:port) on which the operator serves its metrics over plain HTTP; empty serves none.")
	flag.Parse()
	if _, err := metricsFlags(metricsAddr); err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if onCluster {
		err = runOnCluster(ctx, operator, metricsAddr)
	} else {
		err = runLocal(ctx, operator, metricsAddr, registryAddr, stateDir, namespace)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}
