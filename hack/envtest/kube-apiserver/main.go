// Command kube-apiserver is the API server used by the test control plane
// (envtest). It is built from the Go module proxy so tests need no binary
// downloads.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
