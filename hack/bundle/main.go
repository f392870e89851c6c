// Command bundle writes plinth's OLM bundle (bundle/ and bundle.Dockerfile)
// from the kustomize configuration in config/. `make bundle` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/plinth-dev/plinth/hack/bundle/bundlegen"
)

func main() {
	var o bundlegen.Options
	var out string
	flag.StringVar(&o.Root, "root", ".", "The repository's root directory.")
	flag.StringVar(&o.Version, "version", "", "The operator's version, e.g. 0.1.0.")
	flag.StringVar(&o.CreatedAt, "created-at", "", "The release's creation time (RFC 3339) for the CSV's createdAt annotation.")
	flag.StringVar(&out, "out", "bundle", "Directory the bundle is written to.")
	flag.Parse()
	if err := run(o, out); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(o bundlegen.Options, out string) error {
	files, err := bundlegen.Files(o)
	if err != nil {
		return err
	}
	if err := bundlegen.Write(out, files); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.Root, "bundle.Dockerfile"), bundlegen.Dockerfile(), 0o644)
}
