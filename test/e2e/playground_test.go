// Package e2e runs the built operator the way a user does: `make run`'s
// playground (local control plane, sample registry, sample catalog) and
// kubectl-shaped reads of the catalog.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

	// A cluster is configured, but make run without CLUSTER=1 must leave it
	// alone: not one connection reaches it.
	decoy, decoyConnections := listenDecoy(t)
	decoyKubeconfig := writeKubeconfig(t, "someone-elses-cluster", "https://"+decoy)

	p := startPlayground(t, playground, []string{"KUBECONFIG=" + decoyKubeconfig, "HOME=" + t.TempDir()},
		"--operator", operator, "--registry-address", "127.0.0.1:0", "--state-dir", state)
	output := p.output.String

	kubeconfig := filepath.Join(state, "kubeconfig")
	waitFor(t, 2*time.Minute, "the playground's kubeconfig", func() bool {
		_, err := os.Stat(kubeconfig)
		return err == nil
	}, output)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, says := range []string{
		"Using a local playground",
		`Your kubeconfig's cluster (context "someone-elses-cluster", server https://` + decoy + `) is left alone`,
	} {
		if !strings.Contains(output(), says) {
			t.Errorf("the playground does not say %q:\n%s", says, output())
		}
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
	}, func() string { return fmt.Sprintf("table: %+v\nerror: %v\n%s", table, err, output()) })
	var columns []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			columns = append(columns, c.Name)
		}
	}
	if got := strings.Join(columns, ","); got != "Name,Image,Approved,Stale,Critical,High,Image Age,Last Scan,Consumers,Ready,Age" {
		t.Errorf("columns = %s", got)
	}

	// The playground prints the same verdicts itself, for a user without
	// kubectl, with the image ages the samples were built with.
	var rows []map[string]string
	waitFor(t, 10*time.Second, "the playground's catalog table", func() bool {
		_, rows = lastTable(output())
		return printedTableMatches(rows, want)
	}, func() string { return fmt.Sprintf("rows: %v\n%s", rows, output()) })
	ages := map[string]string{}
	for _, r := range rows {
		ages[r["NAME"]] = r["IMAGE AGE"]
	}
	if ages["alpine"] != "3d" || ages["debian"] != "5d" || ages["node-from-docker-hub"] != "unknown" {
		t.Errorf("image ages = %v, want alpine 3d, debian 5d, node-from-docker-hub unknown", ages)
	}
	if !strings.Contains(output(), "kubectl get baseimages -o wide -w") {
		t.Errorf("the playground no longer shows the kubectl command:\n%s", output())
	}
	// The sample policy signs: what it approves is signed, what it refuses
	// is not.
	signed := map[string]string{}
	for _, r := range rows {
		signed[r["NAME"]] = r["SIGNED"]
	}
	if signed["alpine"] != "True" || signed["debian"] != "True" || signed["python-legacy"] != "False" {
		t.Errorf("SIGNED = %v, want alpine and debian True, python-legacy False", signed)
	}
	checkCatalogSignature(t, cfg, state, output)
	checkAdmission(t, output)
	t.Logf("the playground's last table:\n%s", output()[strings.LastIndex(output(), "NAME "):])

	// kubectl itself, when installed, prints the same.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "baseimages").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl get baseimages: %v\n%s", err, out)
		}
		t.Logf("kubectl get baseimages:\n%s", out)
		header := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
		if strings.Join(header, " ") != "NAME IMAGE APPROVED STALE CRITICAL HIGH IMAGE AGE LAST SCAN CONSUMERS READY AGE" {
			t.Errorf("kubectl header = %q", header)
		}
	}

	// Ctrl-C stops everything: the playground exits cleanly and the control
	// plane no longer answers.
	p.interrupt(t)
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("the API server at %s still answers after Ctrl-C", u.Host)
	}
	for _, f := range []string{kubeconfig, filepath.Join(state, "catalog.pub")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", filepath.Base(f), err)
		}
	}
	if n := decoyConnections.Load(); n != 0 {
		t.Errorf("the playground connected %d times to the cluster of KUBECONFIG", n)
	}
}

// printedTableMatches reports whether the playground's table has every
// wanted row with the wanted Approved, Stale, Critical, High and Ready cells.
func printedTableMatches(rows []map[string]string, want map[string][]string) bool {
	seen := 0
	for _, r := range rows {
		w, ok := want[r["NAME"]]
		if !ok {
			continue
		}
		got := []string{r["APPROVED"], r["STALE"], r["CRITICAL"], r["HIGH"], r["READY"]}
		if strings.Join(got, ",") != strings.Join(w, ",") {
			return false
		}
		seen++
	}
	return seen == len(want)
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

// checkAdmission runs the two commands the playground prints for its
// enforced namespace: the Pod built on the approved base is admitted, the
// one built on the refused base is denied with the approved bases to use.
func checkAdmission(t *testing.T, output func() string) {
	t.Helper()
	var admitted, denied string
	for _, line := range strings.Split(output(), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "kubectl run hello "):
			admitted = line
		case strings.Contains(line, "kubectl run legacy-report "):
			denied = line
		}
	}
	if admitted == "" || denied == "" {
		t.Fatalf("the playground does not print the two admission commands:\n%s", output())
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: the admission commands are not run")
	}
	run := func(cmd string) (string, error) {
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		return string(out), err
	}
	// The index follows the catalog's status within moments.
	var out string
	var err error
	waitFor(t, 30*time.Second, "the Pod on the approved base to be admitted", func() bool {
		out, err = run(admitted)
		return err == nil
	}, func() string { return fmt.Sprintf("%s\n%v: %s", admitted, err, out) })
	out, err = run(denied)
	if err == nil {
		t.Fatalf("%s: admitted, want a denial:\n%s", denied, out)
	}
	for _, says := range []string{"denied the request", "apps/legacy-report:1", "not on an approved base", "/base/alpine:3.22"} {
		if !strings.Contains(out, says) {
			t.Errorf("the denial does not say %q:\n%s", says, out)
		}
	}
	t.Logf("%s\n%s", denied, out)
}
