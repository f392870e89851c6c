package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

// approvalType is the predicate type of plinth's approval attestation.
const approvalType = "https://plinth.dev/attestations/approval/v1"

// checkCatalogSignature checks that the playground prints the one cosign
// command that verifies the approval of the alpine sample with the
// catalog's public key, and, when PLINTH_COSIGN_CLI names a cosign binary,
// that the command verifies once alpine is signed and shows the approval
// the BaseImage's status reports.
func checkCatalogSignature(t *testing.T, cfg *rest.Config, state string, output func() string) {
	t.Helper()
	m := regexp.MustCompile(`registry:\s+(localhost:\d+) `).FindStringSubmatch(output())
	if m == nil {
		t.Fatalf("the playground does not say where its registry is:\n%s", output())
	}
	pub := filepath.Join(state, "catalog.pub")
	want := "cosign verify-attestation --key " + pub + " --type " + approvalType +
		" --insecure-ignore-tlog --allow-insecure-registry --allow-http-registry " + m[1] + "/base/alpine:3.22"
	var command string
	for _, l := range strings.Split(output(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "cosign ") {
			if command != "" {
				t.Errorf("the playground prints more than one cosign command:\n%s\n%s", command, l)
			}
			command = l
		}
	}
	if command != want {
		t.Fatalf("cosign command = %q\nwant %q\n%s", command, want, output())
	}
	if _, err := os.Stat(pub); err != nil {
		t.Fatalf("the command's public key: %v", err)
	}

	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var bi catalogv1.BaseImage
	waitFor(t, time.Minute, "alpine to be Signed", func() bool {
		err = c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "alpine"}, &bi)
		return err == nil && apimeta.IsStatusConditionTrue(bi.Status.Conditions, catalogv1.SignedCondition) && bi.Status.Signature != nil
	}, func() string { return "error: " + errString(err) + "\nstatus: " + jsonString(bi.Status) })

	cosign := os.Getenv("PLINTH_COSIGN_CLI")
	if cosign == "" {
		t.Log("PLINTH_COSIGN_CLI is not set: the cosign command is not run")
		return
	}
	args := strings.Fields(strings.TrimPrefix(command, "cosign "))
	cmd := exec.Command(cosign, args...)
	// cosign looks for the public Sigstore root even with --key and no
	// tlog; the proxy keeps that attempt on this machine (Go never proxies
	// the registry on localhost).
	cmd.Env = append(os.Environ(), "TUF_ROOT="+t.TempDir(), "HOME="+t.TempDir(),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=", "https_proxy=", "http_proxy=", "no_proxy=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", command, err, stderr.String())
	}

	// The verified approval is the one status reports.
	var approvals []map[string]any
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var env struct{ Payload string }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("cosign printed %q: %v", sc.Text(), err)
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			PredicateType string         `json:"predicateType"`
			Predicate     map[string]any `json:"predicate"`
		}
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		if st.PredicateType == approvalType {
			approvals = append(approvals, st.Predicate)
		}
	}
	if len(approvals) == 0 {
		t.Fatalf("cosign verified no approval:\n%s\n%s", stdout.String(), stderr.String())
	}
	sig := bi.Status.Signature
	for _, a := range approvals {
		if a["verdict"] != "approved" || a["digest"] != sig.Digest || a["digest"] != bi.Status.ApprovedDigest ||
			a["validUntil"] != sig.ValidUntil.UTC().Format(time.RFC3339) {
			t.Errorf("verified approval %v\ndoes not match status.signature %s", a, jsonString(sig))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
