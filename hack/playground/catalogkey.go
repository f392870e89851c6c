package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// catalogKeySecret is the Secret the sample policy's spec.signing names.
const catalogKeySecret = "catalog-signing-key"

// catalogKeyFile is the key of catalogKeySecret that holds the private key.
const catalogKeyFile = "key.pem"

// catalogPubFile is the file in the state directory that holds the catalog's
// public key, for cosign to verify with.
const catalogPubFile = "catalog.pub"

// verifiedSample is the sample whose approval the printed cosign command
// checks: it is approved and up to date.
const verifiedSample = "base/alpine:3.22"

// createCatalogKey makes a catalog key pair for this run: an ECDSA P-256
// private key, as plain PEM, goes into the Secret catalogKeySecret of
// namespace, and its public key into catalogPubFile in stateDir. It returns
// the public key's path.
func createCatalogKey(ctx context.Context, c client.Client, namespace, stateDir string) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return "", err
	}
	pubPath := filepath.Join(stateDir, catalogPubFile)
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return "", err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: catalogKeySecret, Namespace: namespace},
		Data:       map[string][]byte{catalogKeyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
	}
	if err := c.Create(ctx, secret); err != nil {
		return "", fmt.Errorf("creating the Secret %s: %w", catalogKeySecret, err)
	}
	return pubPath, nil
}

// verifyCommand is the cosign command that checks the approval attestation
// of the sample image on registryHost with the catalog's public key.
func verifyCommand(pubPath, registryHost string) string {
	return strings.Join([]string{
		"cosign verify-attestation",
		"--key", pubPath,
		"--type", "https://plinth.dev/attestations/approval/v1",
		"--insecure-ignore-tlog --allow-insecure-registry --allow-http-registry",
		registryHost + "/" + verifiedSample,
	}, " ")
}
