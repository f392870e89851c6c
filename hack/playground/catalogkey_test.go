package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

// The playground's catalog key is a pair: the Secret the sample policy signs
// with holds the private half, catalog.pub the public half cosign verifies
// with.
func TestCatalogKeyIsAPairTheSamplePolicySignsWith(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).Build()
	state := t.TempDir()
	pubPath, err := createCatalogKey(ctx, c, "team-a", state)
	if err != nil {
		t.Fatal(err)
	}
	if pubPath != filepath.Join(state, "catalog.pub") {
		t.Errorf("public key written to %s", pubPath)
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "catalog-signing-key"}, &sec); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(sec.Data["key.pem"])
	if block == nil {
		t.Fatalf("key.pem is not PEM: %q", sec.Data["key.pem"])
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("private key is %T, want ECDSA P-256", priv)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pem.Decode(pubPEM)
	if pb == nil || pb.Type != "PUBLIC KEY" {
		t.Fatalf("catalog.pub is not a PEM public key: %q", pubPEM)
	}
	pub, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !ec.PublicKey.Equal(pub) {
		t.Error("catalog.pub is not the public key of the Secret's private key")
	}

	// The sample policy names that Secret.
	if err := applySamples(ctx, c, filepath.Join(testenv.Root(), "config", "samples"), "team-a", "localhost:40123", now); err != nil {
		t.Fatal(err)
	}
	var policies catalogv1.ImagePolicyList
	if err := c.List(ctx, &policies, client.InNamespace("team-a")); err != nil {
		t.Fatal(err)
	}
	if len(policies.Items) == 0 {
		t.Fatal("no sample policy")
	}
	for _, p := range policies.Items {
		if p.Spec.Signing == nil || p.Spec.Signing.KeySecretRef.Name != sec.Name {
			t.Errorf("policy %s does not sign with %s: %+v", p.Name, sec.Name, p.Spec.Signing)
		}
	}
}

func TestVerifyCommandChecksTheApprovalOfTheApprovedSample(t *testing.T) {
	got := verifyCommand("/state/catalog.pub", "localhost:40123")
	want := "cosign verify-attestation --key /state/catalog.pub --type https://plinth.dev/attestations/approval/v1 " +
		"--insecure-ignore-tlog --allow-insecure-registry --allow-http-registry localhost:40123/base/alpine:3.22"
	if got != want {
		t.Errorf("command:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "5050") {
		t.Error("the command names the samples' port, not the registry's")
	}
}
