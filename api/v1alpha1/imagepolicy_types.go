package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImagePolicyKind is the kind of ImagePolicy objects.
const ImagePolicyKind = "ImagePolicy"

// DefaultRescanInterval is how often a BaseImage is re-evaluated when its
// policy sets no rescanInterval.
const DefaultRescanInterval = 24 * time.Hour

// ImagePolicySpec is the standard a BaseImage must meet.
type ImagePolicySpec struct {
	// allowedRegistries lists glob patterns of the registries (and,
	// optionally, repositories) base images may come from. A pattern without
	// a slash matches the registry host (with port), e.g.
	// "registry.example.com" or "*.example.com"; a pattern with a slash
	// matches the repository, e.g. "registry.example.com/base/*". Docker Hub
	// images match "docker.io". An image matching none is not approved
	// (UnapprovedRegistry) and nothing is fetched from its registry. Empty
	// allows every registry.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`

	// allowedUpstreamRegistries lists glob patterns, as allowedRegistries
	// does, of the registries a BaseImage's spec.upstream may come from.
	// Unset means allowedRegistries applies to upstreams too. An upstream
	// matching none is never read; its entry's Stale condition is Unknown
	// (UpstreamNotAllowed), and the image itself is judged as usual.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	AllowedUpstreamRegistries []string `json:"allowedUpstreamRegistries,omitempty"`

	// maxAge is the rebuild cadence: an image created longer ago than this is
	// Stale with reason MaxAgeExceeded, e.g. "720h". Unset means age alone
	// never makes an entry stale.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration such as 720h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// rescanInterval is how often each BaseImage under this policy is
	// re-evaluated: its tag resolved again and its verdict recomputed, e.g.
	// "1h". Defaults to 24h; at least 1m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="rescanInterval must be a duration of at least 1m such as 24h"
	RescanInterval *metav1.Duration `json:"rescanInterval,omitempty"`

	// vulnerabilities says which vulnerabilities block approval. Unset
	// means findings of CRITICAL and HIGH severity block it.
	// +optional
	Vulnerabilities *VulnerabilityPolicy `json:"vulnerabilities,omitempty"`

	// verification checks the publisher's signature on every digest before
	// it can be approved. Unset checks nothing.
	// +optional
	Verification *VerificationPolicy `json:"verification,omitempty"`

	// signing signs every approved digest with the catalog's key and
	// attaches plinth's attestations next to it: the approval (policy,
	// verdict, DB version, valid-until), the vulnerability report and the
	// SBOM. Unset signs nothing.
	// +optional
	Signing *SigningPolicy `json:"signing,omitempty"`

	// hardening checks the image's configuration and final filesystem:
	// non-root user, setuid files, shells, package managers, size and
	// annotations. Unset checks none of these. Secrets found in the layers
	// block approval whatever this says.
	// +optional
	Hardening *HardeningPolicy `json:"hardening,omitempty"`

	// exceptions accept named vulnerabilities, hardening findings and
	// secrets until they expire. An expired exception stops applying by
	// itself.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Exceptions []VulnerabilityException `json:"exceptions,omitempty"`

	// tags sets rules on the tags entries follow.
	// +optional
	Tags *TagRules `json:"tags,omitempty"`

	// rebuild holds rebuild defaults for this policy's BaseImages: a
	// webhook called when an entry becomes Stale, and the least interval
	// between triggers.
	// +optional
	Rebuild *PolicyRebuild `json:"rebuild,omitempty"`

	// notifications are signed webhooks told when an entry of this policy
	// loses approval, becomes Stale, has its approved digest revoked, or
	// depends on an exception about to expire. Each transition is
	// delivered once to each target.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Notifications []NotificationTarget `json:"notifications,omitempty"`

	// exceptionExpiryWarning is how long before an exception the approval
	// depends on expires the ExceptionExpiring notification fires, e.g.
	// "168h". Defaults to 168h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	ExceptionExpiryWarning *metav1.Duration `json:"exceptionExpiryWarning,omitempty"`
}

// VerificationMode says what a missing or invalid publisher signature
// means.
// +kubebuilder:validation:Enum=Enforce;Warn;Disabled
type VerificationMode string

// Verification modes.
const (
	// VerificationEnforce refuses approval to a digest without a valid
	// signature (Approved=False SignatureRequired).
	VerificationEnforce VerificationMode = "Enforce"
	// VerificationWarn approves such a digest and says so in the Approved
	// message and the Verified condition.
	VerificationWarn VerificationMode = "Warn"
	// VerificationDisabled checks nothing.
	VerificationDisabled VerificationMode = "Disabled"
)

// VerificationPolicy is what a publisher's signature (cosign's format) must
// satisfy: made by one of keys, or keyless with a certificate that chains to
// the trusted root and names one of identities.
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'Disabled') || (has(self.keys) && size(self.keys) > 0) || (has(self.identities) && size(self.identities) > 0)",message="verification needs keys or identities unless its mode is Disabled"
type VerificationPolicy struct {
	// mode: Enforce, Warn or Disabled. Defaults to Enforce.
	// +optional
	// +kubebuilder:default=Enforce
	Mode VerificationMode `json:"mode,omitempty"`

	// keys are trusted public keys; a signature by any one verifies.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Keys []TrustedKey `json:"keys,omitempty"`

	// identities are trusted keyless signers: certificate issuer and
	// subject, each exact or a regular expression.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Identities []KeylessIdentity `json:"identities,omitempty"`

	// trustedRoot is a Sigstore trusted_root.json, in a ConfigMap or a
	// Secret of this namespace: the certificate authorities keyless
	// certificates chain to, and the logs whose entries are checked.
	// Unset means the public Sigstore trusted root, which the operator
	// fetches with TUF from its configured mirror; an operator running
	// offline has none, and keyless identities or transparency-log checks
	// then need trustedRoot (TrustRootUnavailable). Keys with ignoreTlog
	// need no trusted root.
	// +optional
	TrustedRoot *TrustedRootSource `json:"trustedRoot,omitempty"`

	// ignoreTlog does not require a transparency-log entry on signatures.
	// Defaults to false.
	// +optional
	IgnoreTlog bool `json:"ignoreTlog,omitempty"`

	// ignoreSCT does not require a certificate-transparency timestamp on
	// keyless certificates. Defaults to false.
	// +optional
	IgnoreSCT bool `json:"ignoreSCT,omitempty"`
}

// TrustedKey is one trusted public key: inline PEM or a Secret's key.
// +kubebuilder:validation:XValidation:rule="has(self.pem) != has(self.secretRef)",message="set either pem or secretRef"
type TrustedKey struct {
	// pem is a PEM public key, e.g. the content of cosign.pub.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	PEM string `json:"pem,omitempty"`

	// secretRef names a key of a Secret, in this namespace, that holds a PEM
	// public key.
	// +optional
	SecretRef *KeyReference `json:"secretRef,omitempty"`
}

// KeyReference names one key of a Secret or ConfigMap in the same
// namespace.
type KeyReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key within its data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// KeylessIdentity is a trusted keyless signer.
// +kubebuilder:validation:XValidation:rule="has(self.issuer) != has(self.issuerRegExp)",message="set either issuer or issuerRegExp"
// +kubebuilder:validation:XValidation:rule="has(self.subject) != has(self.subjectRegExp)",message="set either subject or subjectRegExp"
type KeylessIdentity struct {
	// issuer is the OIDC issuer of the certificate, exactly, e.g.
	// https://token.actions.githubusercontent.com.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`
	// issuerRegExp matches the issuer with a regular expression.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	IssuerRegExp string `json:"issuerRegExp,omitempty"`
	// subject is the certificate's subject (an e-mail address or URI),
	// exactly.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`
	// subjectRegExp matches the subject with a regular expression.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// TrustedRootSource names a trusted_root.json in a ConfigMap or a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.secretRef)",message="set either configMapRef or secretRef"
type TrustedRootSource struct {
	// configMapRef names a ConfigMap key holding the trusted root.
	// +optional
	ConfigMapRef *KeyReference `json:"configMapRef,omitempty"`
	// secretRef names a Secret key holding the trusted root.
	// +optional
	SecretRef *KeyReference `json:"secretRef,omitempty"`
}

// DefaultValidityGrace is how long an approval attestation stays valid
// past the next rescan when a policy sets no validityGrace.
const DefaultValidityGrace = 24 * time.Hour

// SigningPolicy says how plinth signs approved digests. Signatures and
// attestations use cosign's formats and layout, with no transparency-log
// upload, so cosign, Kyverno and sigstore policy-controller read them.
type SigningPolicy struct {
	// keySecretRef names a Secret, in this namespace, holding the catalog
	// key: cosign.key (cosign-encrypted, with the passphrase in
	// cosign.password) or a plain PEM private key under tls.key or key.pem;
	// ECDSA P-256 or Ed25519. Rotating the key re-signs.
	// +required
	KeySecretRef LocalObjectReference `json:"keySecretRef"`

	// repository stores signatures and attestations in this repository
	// instead of next to each image, as COSIGN_REPOSITORY does, e.g.
	// registry.example.com/signatures. It is reached with pushSecretRef's
	// credentials, or else each BaseImage's.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches(':[^/]*$')",message="repository takes no tag"
	Repository ImageReference `json:"repository,omitempty"`

	// pushSecretRef names a kubernetes.io/dockerconfigjson Secret, in this
	// namespace, whose credentials push the signatures and attestations
	// (to repository, or next to each image), so that the BaseImages' pull
	// credentials can stay read-only. A registry the Secret has no entry
	// for is reached with the BaseImage's credentials. Unset pushes with
	// the BaseImage's credentials.
	// +optional
	PushSecretRef *LocalObjectReference `json:"pushSecretRef,omitempty"`

	// transparencyLog uploads the signature and each attestation to a
	// Rekor transparency log before pushing them; each then carries the
	// log's signed entry timestamp, so that verifiers can require it
	// (cosign verify without --insecure-ignore-tlog). Unset uploads
	// nothing.
	// +optional
	TransparencyLog *TransparencyLogPolicy `json:"transparencyLog,omitempty"`

	// validityGrace is added to the next rescan deadline to give the
	// approval attestation's validUntil, e.g. "24h". An approval that is
	// revoked is not re-signed, so its validUntil runs out. Defaults to 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="validityGrace must be at least 1m"
	ValidityGrace *metav1.Duration `json:"validityGrace,omitempty"`
}

// TransparencyLogPolicy names the Rekor transparency log signatures are
// uploaded to.
type TransparencyLogPolicy struct {
	// url of the Rekor server, e.g. https://rekor.sigstore.dev. Entries
	// are public there: they name the catalog key and the digests it
	// signs.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^/?#]+(/[^?#]*)?$`
	URL string `json:"url"`
}

// ValidityGraceOrDefault returns validityGrace, or DefaultValidityGrace.
func (in *SigningPolicy) ValidityGraceOrDefault() time.Duration {
	if in == nil || in.ValidityGrace == nil {
		return DefaultValidityGrace
	}
	return in.ValidityGrace.Duration
}

// VerificationModeOrDisabled returns the mode of verification, Disabled
// when it is unset.
func (in *ImagePolicySpec) VerificationModeOrDisabled() VerificationMode {
	if in.Verification == nil {
		return VerificationDisabled
	}
	if in.Verification.Mode == "" {
		return VerificationEnforce
	}
	return in.Verification.Mode
}

// RescanIntervalOrDefault returns spec.rescanInterval, or
// DefaultRescanInterval when it is unset.
func (in *ImagePolicySpec) RescanIntervalOrDefault() time.Duration {
	if in.RescanInterval == nil {
		return DefaultRescanInterval
	}
	return in.RescanInterval.Duration
}

// ImagePolicyStatus is what plinth observed about an ImagePolicy.
type ImagePolicyStatus struct {
	// observedGeneration is the generation of the spec that this status
	// describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Stalled when the spec is invalid.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// exceptions counts the policy's exceptions by state.
	// +optional
	Exceptions *ExceptionCounts `json:"exceptions,omitempty"`

	// expiringExceptions lists the ids of exceptions that expire within
	// seven days (at most 32).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	ExpiringExceptions []string `json:"expiringExceptions,omitempty"`
}

// ExceptionCounts counts a policy's exceptions by state.
type ExceptionCounts struct {
	// active exceptions: not expired, including expiring ones.
	Active int32 `json:"active"`
	// expiring exceptions: active, and expiring within seven days.
	Expiring int32 `json:"expiring"`
	// expired exceptions, which no longer apply.
	Expired int32 `json:"expired"`
}

// ImagePolicy is the standard a BaseImage must meet: where it may come from,
// how old it may be and how often it is re-evaluated. One policy usually
// serves many BaseImages in its namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bipol,categories=plinth
// +kubebuilder:printcolumn:name="Max Age",type=string,JSONPath=`.spec.maxAge`
// +kubebuilder:printcolumn:name="Rescan",type=string,JSONPath=`.spec.rescanInterval`
// +kubebuilder:printcolumn:name="Exceptions",type=integer,JSONPath=`.status.exceptions.active`
// +kubebuilder:printcolumn:name="Expiring",type=integer,JSONPath=`.status.exceptions.expiring`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the policy.
	// +required
	Spec ImagePolicySpec `json:"spec"`

	// status is what plinth observed.
	// +optional
	Status ImagePolicyStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (in *ImagePolicy) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *ImagePolicy) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// +kubebuilder:object:root=true

// ImagePolicyList is a list of ImagePolicies.
type ImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImagePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImagePolicy{}, &ImagePolicyList{})
}
