package controllers

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/registry"
)

// credentialError is a problem with a BaseImage's credentials that someone
// must fix; it carries the condition reason to report.
type credentialError struct {
	reason  string
	message string
}

func (e *credentialError) Error() string { return e.message }

// caCertKey is the key of a certSecretRef Secret that holds the CA bundle,
// as in Flux's and cert-manager's Secrets.
const caCertKey = "ca.crt"

// accessFor builds how plinth reaches a BaseImage's registry: its
// credentials, the CA bundle of spec.certSecretRef and spec.insecure.
func accessFor(ctx context.Context, reader client.Reader, bi *catalogv1.BaseImage) (registry.Access, error) {
	kc, err := keychainFor(ctx, reader, bi)
	if err != nil {
		return registry.Access{}, err
	}
	a := registry.Access{Keychain: kc, Insecure: bi.Spec.Insecure}
	if ref := bi.Spec.CertSecretRef; ref != nil {
		var s corev1.Secret
		err := reader.Get(ctx, types.NamespacedName{Namespace: bi.Namespace, Name: ref.Name}, &s)
		if apierrors.IsNotFound(err) {
			return a, &credentialError{catalogv1.CertSecretInvalidReason, fmt.Sprintf("certificate Secret %q not found", ref.Name)}
		}
		if err != nil {
			return a, err
		}
		pem := s.Data[caCertKey]
		if !hasPEMCertificate(pem) {
			return a, &credentialError{catalogv1.CertSecretInvalidReason,
				fmt.Sprintf("certificate Secret %q holds no PEM certificate under %s", ref.Name, caCertKey)}
		}
		a.CAPEM = pem
	}
	return a, nil
}

// hasPEMCertificate tells whether b holds at least one PEM certificate.
func hasPEMCertificate(b []byte) bool {
	for len(b) > 0 {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return false
		}
		if blk.Type == "CERTIFICATE" {
			return true
		}
	}
	return false
}

// keychainFor builds the registry keychain of a BaseImage from its
// pullSecretRef, or else from its ServiceAccount's imagePullSecrets, as the
// kubelet does for a Pod. Secrets and ServiceAccounts are read directly from
// the API server rather than cached, so the operator does not keep every
// Secret of the cluster in memory.
func keychainFor(ctx context.Context, reader client.Reader, bi *catalogv1.BaseImage) (authn.Keychain, error) {
	var names []string
	switch {
	case bi.Spec.PullSecretRef != nil:
		names = []string{bi.Spec.PullSecretRef.Name}
	case bi.Spec.ServiceAccountName != "":
		var sa corev1.ServiceAccount
		err := reader.Get(ctx, types.NamespacedName{Namespace: bi.Namespace, Name: bi.Spec.ServiceAccountName}, &sa)
		if apierrors.IsNotFound(err) {
			return nil, &credentialError{catalogv1.ServiceAccountNotFoundReason,
				fmt.Sprintf("ServiceAccount %q not found", bi.Spec.ServiceAccountName)}
		}
		if err != nil {
			return nil, err
		}
		for _, ref := range sa.ImagePullSecrets {
			names = append(names, ref.Name)
		}
	default:
		return authn.NewMultiKeychain(), nil
	}

	secrets := make([]corev1.Secret, 0, len(names))
	for _, name := range names {
		var s corev1.Secret
		err := reader.Get(ctx, types.NamespacedName{Namespace: bi.Namespace, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			return nil, &credentialError{catalogv1.PullSecretNotFoundReason, fmt.Sprintf("pull secret %q not found", name)}
		}
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, s)
	}
	kc, err := registry.KeychainFromPullSecrets(secrets)
	if errors.Is(err, registry.ErrInvalidPullSecret) {
		return nil, &credentialError{catalogv1.PullSecretInvalidReason, err.Error()}
	}
	return kc, err
}
