package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

// make run CLUSTER=1 uses the cluster of KUBECONFIG, says which, installs
// the CRDs there and prints its catalog. The operator here is a stub that
// reports how it was started: the real one would download Trivy's public
// vulnerability DB.
func TestPlaygroundOnClusterSaysWhichAndUsesIt(t *testing.T) {
	playground := build(t, "PLINTH_PLAYGROUND_BINARY", "./hack/playground", "playground")

	env := &envtest.Environment{BinaryAssetsDirectory: testenv.AssetsDir()} // no CRDs: the playground installs them
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatal(err)
	}
	// Name the context and namespace as a user's kubeconfig would.
	raw.Contexts["team-a@lab"] = raw.Contexts[raw.CurrentContext]
	raw.Contexts["team-a@lab"].Namespace = "team-a"
	raw.CurrentContext = "team-a@lab"
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*raw, kubeconfig); err != nil {
		t.Fatal(err)
	}

	stub := filepath.Join(t.TempDir(), "operator")
	script := "#!/bin/sh\necho \"stub operator: KUBECONFIG=$KUBECONFIG\"\nexec sleep 600\n"
	if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	p := startPlayground(t, playground, []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir()}, "-cluster", "--operator", stub)
	output := p.output.String
	server := raw.Clusters[raw.Contexts["team-a@lab"].Cluster].Server
	says := fmt.Sprintf(`Using the cluster of your kubeconfig (context "team-a@lab", server %s)`, server)
	waitFor(t, time.Minute, "the operator against the cluster", func() bool {
		return strings.Contains(output(), "stub operator: KUBECONFIG="+kubeconfig+"\n")
	}, output)
	if !strings.Contains(output(), says) {
		t.Errorf("the playground does not say %q:\n%s", says, output())
	}
	if strings.Contains(output(), "local playground") {
		t.Errorf("the playground also started a local one:\n%s", output())
	}

	scheme := testenv.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: "baseimages.catalog.plinth.dev"}, &crd); err != nil {
		t.Fatalf("the CRDs are not installed: %v", err)
	}

	// A BaseImage in the context's namespace appears in the printed
	// catalog, not yet judged (the operator is a stub).
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Name: "alpine", Namespace: "team-a"}}
	bi.Spec.Image = "registry.example.com/base/alpine:3.22"
	bi.Spec.PolicyRef.Name = "standard"
	if err := c.Create(ctx, bi); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	waitFor(t, 20*time.Second, "the BaseImage in the printed catalog", func() bool {
		_, rows = lastTable(output())
		return len(rows) == 1 && rows[0]["NAME"] == "alpine"
	}, output)
	if got := rows[0]; got["IMAGE"] != "registry.example.com/base/alpine:3.22" || got["IMAGE AGE"] != "unknown" || got["APPROVED"] != "" {
		t.Errorf("row = %v, want the image, no verdict and an unknown age", got)
	}

	p.interrupt(t)
}

// listenDecoy listens on loopback for a cluster that must not be contacted,
// counting the connections it gets.
func listenDecoy(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conn.Close()
		}
	}()
	return l.Addr().String(), &n
}

// writeKubeconfig writes a kubeconfig whose current context names server.
func writeKubeconfig(t *testing.T, context, server string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "not-a-secret"}
	cfg.Contexts[context] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = context
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}
