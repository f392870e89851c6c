// Package check is plinth's gate for CI pipelines: it tells whether images,
// or the bases a Dockerfile builds FROM, sit on an approved base of the
// catalog, with the same matcher the inventory and the admission webhook
// use. The catalog comes from a cluster or from a file exported with
// kubectl get baseimages -A -o yaml.
package check

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
)

// Exit codes.
const (
	// ExitApproved: every image sits on an approved base.
	ExitApproved = 0
	// ExitNotApproved: an image sits on a superseded or unapproved base.
	ExitNotApproved = 1
	// ExitUnknown: no image failed, but one could not be checked (a
	// registry could not be read in time).
	ExitUnknown = 2
	// ExitUsage: bad arguments, or the catalog could not be read.
	ExitUsage = 3
)

// Options say what to check and against which catalog.
type Options struct {
	// Images to check.
	Images []string
	// Dockerfile whose FROM stages are checked; "-" reads standard input.
	Dockerfile string
	// BuildArgs give the Dockerfile's build arguments.
	BuildArgs map[string]string
	// FinalStageOnly checks only the last stage of the Dockerfile.
	FinalStageOnly bool
	// CatalogFile is an exported catalog (YAML or JSON: a List of
	// BaseImages, or BaseImage documents). Empty reads the cluster.
	CatalogFile string
	// Kubeconfig and Context select the cluster; empty follows the usual
	// rules (KUBECONFIG, ~/.kube/config, in-cluster).
	Kubeconfig, Context string
	// Namespace limits the catalog to one namespace; empty means all.
	Namespace string
	// Timeout bounds the whole check.
	Timeout time.Duration
	// Registry configures registry reads; zero values take the registry
	// package's defaults.
	Registry registry.Options
	// Keychain gives registry credentials; nil means the docker config of
	// the user (~/.docker/config.json) and its credential helpers.
	Keychain authn.Keychain
	// Reader reads the catalog from a cluster; nil builds a client from
	// Kubeconfig. Tests set it.
	Reader client.Reader
	// Stdin is read for Dockerfile "-".
	Stdin io.Reader
}

// Main runs the check command with its arguments (after "check") and
// returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plinth check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	var buildArgs multiFlag
	fs.StringVar(&o.Dockerfile, "dockerfile", "", "Check the base of every FROM stage of this Dockerfile (- reads standard input).")
	fs.Var(&buildArgs, "build-arg", "A build argument of the Dockerfile, NAME=VALUE; may be repeated.")
	fs.BoolVar(&o.FinalStageOnly, "final-stage-only", false, "Check only the last stage of the Dockerfile (the one the image is made of).")
	fs.StringVar(&o.CatalogFile, "catalog", "", "An exported catalog (kubectl get baseimages -A -o yaml) to check against instead of the cluster.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "The kubeconfig of the cluster whose catalog is read.")
	fs.StringVar(&o.Context, "context", "", "The kubeconfig context to use.")
	fs.StringVar(&o.Namespace, "namespace", "", "Only the BaseImages of this namespace; all namespaces when empty.")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "Deadline of the whole check.")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: plinth check [flags] IMAGE... | --dockerfile FILE")
		fmt.Fprintln(stderr, "Tells whether images sit on an approved base of the catalog. Exit codes: 0 approved, 1 not approved, 2 could not tell, 3 usage or catalog error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	o.Images = fs.Args()
	o.BuildArgs = map[string]string{}
	for _, a := range buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			v = os.Getenv(k)
		}
		o.BuildArgs[k] = v
	}
	o.Stdin = os.Stdin
	code, err := Run(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "plinth check:", err)
	}
	return code
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// target is one image to check, with where it came from.
type target struct {
	label, image string
	// skip, when set, is printed instead of a verdict.
	skip string
}

// Run checks the images of o against the catalog, writes one line per
// image (and the alternatives of those not approved) to out, and returns
// the exit code; the error says why a check could not run at all.
func Run(ctx context.Context, o Options, out io.Writer) (int, error) {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	var targets []target
	for _, img := range o.Images {
		targets = append(targets, target{label: img, image: img})
	}
	if o.Dockerfile != "" {
		stages, err := readDockerfile(o.Dockerfile, o.Stdin, o.BuildArgs)
		if err != nil {
			return ExitUsage, err
		}
		if o.FinalStageOnly {
			stages = stages[len(stages)-1:]
		}
		for _, st := range stages {
			label := fmt.Sprintf("stage %d", st.Number)
			if st.Name != "" {
				label += " (" + st.Name + ")"
			}
			if st.Image == "" {
				targets = append(targets, target{label: label + ": FROM " + st.From, skip: "not a registry image, skipped"})
				continue
			}
			targets = append(targets, target{label: label + ": FROM " + st.Image, image: st.Image})
		}
	}
	if len(targets) == 0 {
		return ExitUsage, errors.New("nothing to check: give images, or a Dockerfile with --dockerfile")
	}

	bis, err := loadCatalog(ctx, o)
	if err != nil {
		return ExitUsage, err
	}
	ix := catalog.NewIndex()
	ix.Update(bis)
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ro := o.Registry
	if ro.UserAgent == "" {
		ro.UserAgent = "plinth-check"
	}
	access := registry.Access{Keychain: kc}
	m, err := catalog.NewMatcher(ix, catalog.Options{
		Client:      registry.New(ro),
		ImageAccess: func(name.Repository) registry.Access { return access },
		EntryAccess: func(catalog.Entry) registry.Access { return access },
	})
	if err != nil {
		return ExitUsage, err
	}

	code := ExitApproved
	for _, t := range targets {
		if t.skip != "" {
			fmt.Fprintf(out, "%s: %s\n", t.label, t.skip)
			continue
		}
		res, err := m.Match(ctx, t.image, "")
		if err != nil {
			fmt.Fprintf(out, "%s: invalid image reference: %v\n", t.label, err)
			code = max(code, ExitUsage)
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", t.label, describe(res))
		for _, a := range res.Alternatives {
			fmt.Fprintf(out, "  use instead: %s (%s)\n", a.Reference, a.BaseImage)
		}
		switch res.Class {
		case catalog.Approved:
		case catalog.Unknown:
			if code == ExitApproved {
				code = ExitUnknown
			}
		default:
			if code != ExitUsage {
				code = ExitNotApproved
			}
		}
	}
	return code, nil
}

// describe is the verdict on one image in words.
func describe(res catalog.Result) string {
	var b strings.Builder
	b.WriteString(string(res.Class))
	if res.BaseImage.Name != "" {
		fmt.Fprintf(&b, ": on %s", res.BaseImage)
		if res.BaseDigest != "" {
			fmt.Fprintf(&b, " (%s)", res.BaseDigest)
		}
		if res.Method != "" {
			fmt.Fprintf(&b, ", matched by %s", res.Method)
		}
	}
	if res.Reason != "" {
		fmt.Fprintf(&b, ": %s", res.Reason)
	}
	return b.String()
}

// loadCatalog reads the BaseImages from the exported file or the cluster.
func loadCatalog(ctx context.Context, o Options) ([]catalogv1.BaseImage, error) {
	if o.CatalogFile != "" {
		f, err := os.Open(o.CatalogFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		bis, err := ReadCatalog(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.CatalogFile, err)
		}
		return filterNamespace(bis, o.Namespace), nil
	}
	r := o.Reader
	if r == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = o.Kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("reading the kubeconfig: %w", err)
		}
		scheme := runtime.NewScheme()
		if err := catalogv1.AddToScheme(scheme); err != nil {
			return nil, err
		}
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, err
		}
		r = c
	}
	var list catalogv1.BaseImageList
	var opts []client.ListOption
	if o.Namespace != "" {
		opts = append(opts, client.InNamespace(o.Namespace))
	}
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing BaseImages: %w", err)
	}
	return list.Items, nil
}

func filterNamespace(bis []catalogv1.BaseImage, ns string) []catalogv1.BaseImage {
	if ns == "" {
		return bis
	}
	var out []catalogv1.BaseImage
	for _, bi := range bis {
		if bi.Namespace == ns {
			out = append(out, bi)
		}
	}
	return out
}

// ReadCatalog reads BaseImages exported with kubectl (a List, YAML or
// JSON) or written as YAML documents. Objects of other kinds are skipped.
func ReadCatalog(r io.Reader) ([]catalogv1.BaseImage, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 64*1024)
	var out []catalogv1.BaseImage
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		items := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, err
			}
			items = list.Items
		}
		for _, it := range items {
			if it.GetKind() != catalogv1.BaseImageKind {
				continue
			}
			var bi catalogv1.BaseImage
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(it.Object, &bi); err != nil {
				return nil, fmt.Errorf("BaseImage %s/%s: %w", it.GetNamespace(), it.GetName(), err)
			}
			out = append(out, bi)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no BaseImage in the catalog file")
	}
	return out, nil
}
