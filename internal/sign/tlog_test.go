package sign

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/plinth-dev/plinth/test/rekorlog"
)

// trustedRootWithLog is a trusted_root.json listing log as its only
// transparency log.
func trustedRootWithLog(t testing.TB, log *rekorlog.Log) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, nil,
		map[string]*root.TransparencyLog{hex.EncodeToString(log.ID): log.Authority()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signaturesOf returns image's signatures as stored.
func (e *publishEnv) signaturesOf(image name.Digest) []oci.Signature {
	e.t.Helper()
	sigs, err := ociremote.SignedUnknown(image, e.ociOptions()...).Signatures()
	if err != nil {
		e.t.Fatal(err)
	}
	list, err := sigs.Get()
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// With a transparency log, the signature and each attestation are uploaded
// and carry the log's bundle, which verifies offline with the log's key in
// a trusted root; publishing the same content again uploads nothing.
func TestPublishUploadsToTheTransparencyLog(t *testing.T) {
	e := newPublishEnv(t)
	log := rekorlog.New(t)
	image := e.push("base/alpine", "tlog")
	key := testKey(t)
	var s Signer
	p := testPublication(judged.Add(24 * time.Hour))
	p.TransparencyLog = log.URL

	if _, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil {
		t.Fatal(err)
	}
	if n := len(log.Entries()); n != 4 {
		t.Fatalf("%d entries logged, want the signature and 3 attestations", n)
	}
	sigs := e.signaturesOf(image)
	if len(sigs) != 1 || !logged(sigs[0]) {
		t.Fatalf("%d signatures; want 1 with a transparency-log bundle", len(sigs))
	}
	for _, att := range e.attestations(image) {
		if !logged(att) {
			t.Errorf("an attestation carries no transparency-log bundle")
		}
	}
	before := e.writes.Load()
	if got, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil || got.Changed || e.writes.Load() != before || len(log.Entries()) != 4 {
		t.Errorf("publishing unchanged content: %+v, %v; %d entries", got, err, len(log.Entries()))
	}

	// plinth's own verification, transparency log required: the log's key
	// in the trusted root verifies it, another log's does not.
	offline(t)
	trust := Trust{Keys: [][]byte{key.PublicKeyPEM()}, TrustedRoot: trustedRootWithLog(t, log)}
	reg := Registry{Transport: e.reg.Transport()}
	wantOutcome(t, mustVerify(t, NewVerifier(VerifierOptions{}), image, trust, reg), OutcomeVerified)
	trust.TrustedRoot = trustedRootWithLog(t, rekorlog.New(t))
	wantOutcome(t, mustVerify(t, NewVerifier(VerifierOptions{}), image, trust, reg), OutcomeSignatureInvalid)
}

// Turning the transparency log on adds a logged signature and replaces the
// attestations that were not logged.
func TestPublishLogsWhatWasSignedBefore(t *testing.T) {
	e := newPublishEnv(t)
	log := rekorlog.New(t)
	image := e.push("base/alpine", "tlog-later")
	key := testKey(t)
	var s Signer
	p := testPublication(judged.Add(24 * time.Hour))
	if _, err := s.Publish(context.Background(), image, key, p, e.registry()); err != nil {
		t.Fatal(err)
	}
	p.TransparencyLog = log.URL
	got, err := s.Publish(context.Background(), image, key, p, e.registry())
	if err != nil {
		t.Fatal(err)
	}
	if !got.SignatureAdded || len(got.AttestationsWritten) != 3 {
		t.Fatalf("publish with the log turned on: %+v; want a signature and 3 attestations written", got)
	}
	if n := len(log.Entries()); n != 4 {
		t.Errorf("%d entries logged, want 4", n)
	}
	for _, att := range e.attestations(image) {
		if !logged(att) {
			t.Errorf("an attestation carries no transparency-log bundle")
		}
	}
}

// A log that refuses the entry stops the publication before anything is
// pushed, with a stable message.
func TestPublishLogRefusalPushesNothing(t *testing.T) {
	e := newPublishEnv(t)
	log := rekorlog.New(t)
	log.SetRefusing(true)
	image := e.push("base/alpine", "tlog-refused")
	p := testPublication(judged.Add(24 * time.Hour))
	p.TransparencyLog = log.URL
	before := e.writes.Load()
	_, err := new(Signer).Publish(context.Background(), image, testKey(t), p, e.registry())
	if !errors.Is(err, ErrTransparencyLogRefused) {
		t.Fatalf("error %v, want ErrTransparencyLogRefused", err)
	}
	if msg := err.Error(); strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "HTTP 400") {
		t.Errorf("message %q", msg)
	}
	if n := e.writes.Load() - before; n != 0 {
		t.Errorf("%d registry writes after the log refused", n)
	}
}

// The cosign CLI verifies, with the transparency log required, what plinth
// signed and logged, given a trusted root that lists the log; and refuses
// it with a trusted root that lists another log.
func TestCosignCLIVerifiesTheLoggedPublication(t *testing.T) {
	cli := os.Getenv("PLINTH_COSIGN_CLI")
	if cli == "" {
		t.Skip("PLINTH_COSIGN_CLI is not set: build the cosign CLI with hack/cosign-cli.sh and point PLINTH_COSIGN_CLI at it to run this test")
	}
	e := newPublishEnv(t)
	log := rekorlog.New(t)
	image := e.push("base/alpine", "tlog-cli")
	key := testKey(t)
	p := testPublication(judged.Add(24 * time.Hour))
	p.TransparencyLog = log.URL
	if _, err := new(Signer).Publish(context.Background(), image, key, p, e.registry()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pub := write("pub.pem", key.PublicKeyPEM())
	ours := write("trusted_root.json", trustedRootWithLog(t, log))
	theirs := write("other_root.json", trustedRootWithLog(t, rekorlog.New(t)))
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = []string{
			"HOME=" + filepath.Join(dir, "home"),
			"TUF_ROOT=" + filepath.Join(dir, "tuf"),
			"PATH=" + os.Getenv("PATH"),
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9",
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	common := func(trustedRoot string) []string {
		return []string{"--key", pub, "--trusted-root", trustedRoot, "--offline", "--allow-insecure-registry", "--allow-http-registry"}
	}
	out, err := run(append(append([]string{"verify"}, common(ours)...), image.String())...)
	if err != nil {
		t.Fatalf("cosign verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, "transparency log was verified offline") {
		t.Errorf("cosign verify did not check the transparency log:\n%s", out)
	}
	for _, typ := range []string{"vuln", "cyclonedx", PredicateTypeApproval} {
		if out, err := run(append(append([]string{"verify-attestation", "--type", typ}, common(ours)...), image.String())...); err != nil {
			t.Errorf("cosign verify-attestation --type %s: %v\n%s", typ, err, out)
		}
	}
	if out, err := run(append(append([]string{"verify"}, common(theirs)...), image.String())...); err == nil {
		t.Errorf("cosign verify accepted a bundle from a log the trusted root does not list:\n%s", out)
	}
}
