// Package e2e runs the built operator the way a user does: `make run`'s
// playground (local control plane, sample registry, sample catalog) and
// kubectl-shaped reads of the catalog.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/plinth-dev/plinth/test/testenv"
)

// build returns a binary of the project: the one named by the environment
// variable env when the Makefile built it, otherwise a fresh build of pkg.
func build(t *testing.T, env, pkg, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestPlaygroundShowsTheSampleCatalog(t *testing.T) {
	operator := build(t, "PLINTH_BINARY", ".", "plinth")
	playground := build(t, "PLINTH_PLAYGROUND_BINARY", "./hack/playground", "playground")
	state := t.TempDir()

	cmd := exec.Command(playground, "--operator", operator, "--registry-address", "127.0.0.1:0", "--state-dir", state)
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var output strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			output.WriteString(sc.Text() + "\n")
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})

	kubeconfig := filepath.Join(state, "kubeconfig")
	waitFor(t, 2*time.Minute, "the playground's kubeconfig", func() bool {
		_, err := os.Stat(kubeconfig)
		return err == nil
	}, output.String)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}

	// The server-side table is what kubectl prints.
	// The verdicts on the sample images under the sample vulnerability DB.
	want := map[string][]string{ // name: Approved, Stale, Critical, High, Ready
		"alpine":               {"True", "False", "0", "0", "True"},
		"debian":               {"True", "True", "0", "1", "True"},
		"python-legacy":        {"False", "True", "1", "1", "False"},
		"node-from-docker-hub": {"False", "", "", "", "False"},
	}
	var table *metav1.Table
	waitFor(t, time.Minute, "the sample catalog's verdicts", func() bool {
		table, err = baseImageTable(cfg)
		if err != nil {
			return false
		}
		return tableMatches(table, want)
	}, func() string { return fmt.Sprintf("table: %+v\nerror: %v\n%s", table, err, output.String()) })
	var columns []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			columns = append(columns, c.Name)
		}
	}
	if got := strings.Join(columns, ","); got != "Name,Image,Approved,Stale,Critical,High,Image Age,Last Scan,Ready,Age" {
		t.Errorf("columns = %s", got)
	}

	// kubectl itself, when installed, prints the same.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "baseimages").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get baseimages: %v\n%s", err, out)
		}
		t.Logf("kubectl get baseimages:\n%s", out)
		header := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
		if strings.Join(header, " ") != "NAME IMAGE APPROVED STALE CRITICAL HIGH IMAGE AGE LAST SCAN READY AGE" {
			t.Errorf("kubectl header = %q", header)
		}
	}

	// Ctrl-C stops everything: the playground exits cleanly and the control
	// plane no longer answers.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("playground exited with %v\n%s", err, output.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("playground did not stop\n%s", output.String())
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("the API server at %s still answers after Ctrl-C", u.Host)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig left behind: %v", err)
	}
}

// baseImageTable reads BaseImages as the server-side table kubectl prints.
func baseImageTable(cfg *rest.Config) (*metav1.Table, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{Group: "catalog.plinth.dev", Version: "v1alpha1"}
	c.APIPath = "/apis"
	c.NegotiatedSerializer = tableCodecs
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	var table metav1.Table
	err = rc.Get().Namespace("default").Resource("baseimages").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		Do(context.Background()).Into(&table)
	return &table, err
}

// tableMatches reports whether every wanted row is present with the wanted
// Approved, Stale, Critical, High and Ready cells.
func tableMatches(table *metav1.Table, want map[string][]string) bool {
	idx := map[string]int{}
	for i, c := range table.ColumnDefinitions {
		idx[c.Name] = i
	}
	seen := 0
	for _, row := range table.Rows {
		name := cell(row, idx["Name"])
		w, ok := want[name]
		if !ok {
			continue
		}
		got := []string{cell(row, idx["Approved"]), cell(row, idx["Stale"]), cell(row, idx["Critical"]), cell(row, idx["High"]), cell(row, idx["Ready"])}
		if strings.Join(got, ",") != strings.Join(w, ",") {
			return false
		}
		seen++
	}
	return seen == len(want)
}

// cell renders a table cell as kubectl does, an empty cell as "".
func cell(row metav1.TableRow, i int) string {
	if row.Cells[i] == nil {
		return ""
	}
	return fmt.Sprint(row.Cells[i])
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, explain())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
