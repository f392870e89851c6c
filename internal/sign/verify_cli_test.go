package sign

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// cosignCLI returns a runner of the cosign CLI named by PLINTH_COSIGN_CLI
// (see hack/cosign-cli.sh) and its working directory, or skips the test. Its environment keeps it off
// every network but loopback: a private HOME and TUF_ROOT, and proxies that
// refuse anything else (Go never proxies loopback addresses).
func cosignCLI(t *testing.T) (func(args ...string) (string, error), string) {
	t.Helper()
	bin := os.Getenv("PLINTH_COSIGN_CLI")
	if bin == "" {
		t.Skip("PLINTH_COSIGN_CLI is not set; hack/cosign-cli.sh builds the cosign CLI")
	}
	home := t.TempDir()
	env := append(os.Environ(),
		"HOME="+home,
		"TUF_ROOT="+filepath.Join(home, "tuf"),
		"COSIGN_PASSWORD=",
		"COSIGN_EXPERIMENTAL=0",
		"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1", "NO_PROXY=",
		"http_proxy=http://127.0.0.1:1", "https_proxy=http://127.0.0.1:1", "no_proxy=",
	)
	return func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = home
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}, home
}

// TestVerifyAcceptsWhatTheCosignCLISigns: a signature made by cosign sign
// with a key verifies with that key and no other.
func TestVerifyAcceptsWhatTheCosignCLISigns(t *testing.T) {
	cosign, dir := cosignCLI(t)
	e := newVerifyEnv(t)
	img := e.push("base/cli-signed", "a")

	if out, err := cosign("generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	if out, err := cosign("sign", "--key", filepath.Join(dir, "cosign.key"), "--tlog-upload=false",
		"--allow-insecure-registry", "--yes", img.Name()); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}

	r := mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{pub}, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeVerified)
	r = mustVerify(t, NewVerifier(VerifierOptions{}), img, Trust{Keys: [][]byte{newVerifyKey(t).pem}, IgnoreTlog: true}, e.registry())
	wantOutcome(t, r, OutcomeSignatureInvalid)
}

// TestCosignCLIAcceptsTheTestSignatures: the signatures these tests make,
// with a key or with a certificate from the test authority, are what
// cosign verify accepts, with the same trust.
func TestCosignCLIAcceptsTheTestSignatures(t *testing.T) {
	cosign, dir := cosignCLI(t)
	e := newVerifyEnv(t)

	keyed := e.push("base/cli-verified", "a")
	a := newVerifyKey(t)
	e.sign(keyed, keyed, a.signer, nil, nil)
	pubPath := filepath.Join(dir, "a.pub")
	if err := os.WriteFile(pubPath, a.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cosign("verify", "--key", pubPath, "--insecure-ignore-tlog", "--allow-insecure-registry", keyed.Name()); err != nil {
		t.Fatalf("cosign verify --key: %v\n%s", err, out)
	}

	keyless := e.push("base/cli-verified", "b")
	ca := newVerifyCA(t)
	signer, certPEM, chainPEM := ca.issue(t, verifySubject, verifyIssuer)
	e.sign(keyless, keyless, signer, certPEM, chainPEM)
	rootPath := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(rootPath, ca.trustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	verify := func(subject string) (string, error) {
		return cosign("verify", "--trusted-root", rootPath,
			"--certificate-identity", subject, "--certificate-oidc-issuer", verifyIssuer,
			"--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-insecure-registry", keyless.Name())
	}
	if out, err := verify(verifySubject); err != nil {
		t.Fatalf("cosign verify --trusted-root: %v\n%s", err, out)
	}
	if out, err := verify("other@example.com"); err == nil {
		t.Fatalf("cosign verify accepted another identity:\n%s", out)
	}
}
