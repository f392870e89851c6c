// Command etcd is the etcd server used by the test control plane (envtest).
// It is built from the Go module proxy so tests need no binary downloads.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
