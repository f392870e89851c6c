package signing

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth-dev/plinth/internal/sign"
)

// The cosign CLI verifies, with the catalog's public key alone and
// offline, the signature and each attestation the operator wrote.
func TestCosignCLIVerifiesWhatTheOperatorSigned(t *testing.T) {
	cli := os.Getenv("PLINTH_COSIGN_CLI")
	if cli == "" {
		t.Skip("PLINTH_COSIGN_CLI is not set: build the cosign CLI with hack/cosign-cli.sh and point PLINTH_COSIGN_CLI at it to run this test")
	}
	_, key, image, _ := signedAlpine(t)
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pub, key.pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = []string{
			"HOME=" + filepath.Join(dir, "home"),
			"TUF_ROOT=" + filepath.Join(dir, "tuf"),
			"PATH=" + os.Getenv("PATH"),
			// cosign looks for the public Sigstore root even with --key and no
			// tlog: a proxy on a closed loopback port keeps that attempt on this
			// machine (Go never proxies the loopback registry).
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9",
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	common := []string{"--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry"}
	out := run(append(append([]string{"verify"}, common...), image.String())...)
	if !strings.Contains(out, image.DigestStr()) {
		t.Errorf("cosign verify printed no payload naming the digest:\n%s", out)
	}
	for _, typ := range []string{sign.PredicateTypeApproval, "vuln", "cyclonedx"} {
		out := run(append(append([]string{"verify-attestation", "--type", typ}, common...), image.String())...)
		if !strings.Contains(out, "payload") {
			t.Errorf("cosign verify-attestation --type %s printed no envelope:\n%s", typ, out)
		}
	}
}
