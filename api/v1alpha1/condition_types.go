package v1alpha1

// Condition types. Every BaseImage and ImagePolicy reports Ready; the others
// are documented on the type that sets them.
const (
	// ReadyCondition summarises the object: True when it is usable, otherwise
	// False with the reason of the first failing condition.
	ReadyCondition = "Ready"

	// ReconcilingCondition is present (True) only while work is in progress,
	// including retries after a transient failure.
	ReconcilingCondition = "Reconciling"

	// StalledCondition is present (True) only when plinth cannot progress
	// without someone acting: fixing the spec, a credential or the policy.
	StalledCondition = "Stalled"

	// ScannedCondition says whether the resolved digest was scanned against
	// the current vulnerability DB (not whether it passed).
	ScannedCondition = "Scanned"

	// ApprovedCondition is the policy verdict on the resolved digest.
	ApprovedCondition = "Approved"

	// StaleCondition says whether a rebuild of the base image is due.
	StaleCondition = "Stale"

	// VerifiedCondition says whether the publisher's signature on the
	// resolved digest checks out; present only when the policy verifies.
	VerifiedCondition = "Verified"

	// SignedCondition says whether plinth's own signature and attestations
	// are on the approved digest; present only when the policy signs.
	SignedCondition = "Signed"
)

// Reasons used by the Signed condition.
const (
	// SignedReason means the approved digest carries plinth's signature and
	// current attestations.
	SignedReason = "Signed"
	// SigningFailedReason means signing or attaching failed; the message
	// says why (key, passphrase, registry refusing the push).
	SigningFailedReason = "SigningFailed"
	// PushSecretNotFoundReason means the policy's signing.pushSecretRef
	// names a Secret that does not exist; nothing is pushed until it does.
	PushSecretNotFoundReason = "PushSecretNotFound"
	// PushSecretInvalidReason means the policy's signing.pushSecretRef is
	// not a valid kubernetes.io/dockerconfigjson (or dockercfg) Secret.
	PushSecretInvalidReason = "PushSecretInvalid"
	// SigningDisabledReason means the policy signs but this operator runs
	// without scanning, so it has no findings or SBOM to attest.
	SigningDisabledReason = "SigningDisabled"
	// NothingToSignReason means no digest is approved.
	NothingToSignReason = "NothingToSign"
)

// Reasons used by the Verified condition.
const (
	// VerifiedReason means a signature by a trusted key or identity covers
	// the digest.
	VerifiedReason = "Verified"
	// SignatureMissingReason means the digest carries no signature.
	SignatureMissingReason = "SignatureMissing"
	// SignatureInvalidReason means signatures exist but none verifies with
	// the trusted keys or root.
	SignatureInvalidReason = "SignatureInvalid"
	// UntrustedIdentityReason means a keyless signature chains to the
	// trusted root but names an identity the policy does not trust.
	UntrustedIdentityReason = "UntrustedIdentity"
	// TrustConfigInvalidReason (on Stalled and Ready) means the policy's
	// verification cannot be used: a key or trusted root it names is
	// missing or malformed.
	TrustConfigInvalidReason = "TrustConfigInvalid"
	// TrustRootUnavailableReason means the policy names no trustedRoot
	// and needs one (keyless identities, transparency-log checks), and the
	// public Sigstore trusted root cannot be had: the operator runs
	// offline (Stalled), or its TUF mirror cannot be reached now (retried
	// with backoff; the last verdict is kept).
	TrustRootUnavailableReason = "TrustRootUnavailable"
)

// Reasons used by the Ready, Reconciling and Stalled conditions.
const (
	// SucceededReason means the object is usable.
	SucceededReason = "Succeeded"

	// ProgressingReason means plinth is working on the object.
	ProgressingReason = "Progressing"

	// ProgressingWithRetryReason means a transient failure happened and plinth
	// will retry with backoff.
	ProgressingWithRetryReason = "ProgressingWithRetry"

	// SuspendedReason means spec.suspend is true: plinth leaves the entry
	// alone and keeps its last status.
	SuspendedReason = "Suspended"

	// NoMatchingTagReason: no tag of the repository is within the entry's
	// tagPolicy range.
	NoMatchingTagReason = "NoMatchingTag"

	// InvalidSpecReason means the spec cannot be acted on (for example an
	// image reference the registry client cannot parse).
	InvalidSpecReason = "InvalidSpec"

	// AuthenticationFailedReason means the registry refused the credentials
	// (HTTP 401 or 403), or asked for credentials and none were given.
	AuthenticationFailedReason = "AuthenticationFailed"

	// PullSecretNotFoundReason means spec.pullSecretRef, or an
	// imagePullSecret of spec.serviceAccountName, names a Secret that does
	// not exist.
	PullSecretNotFoundReason = "PullSecretNotFound"

	// PullSecretInvalidReason means the pull secret is not a valid
	// kubernetes.io/dockerconfigjson (or dockercfg) Secret.
	PullSecretInvalidReason = "PullSecretInvalid"

	// ServiceAccountNotFoundReason means spec.serviceAccountName names a
	// ServiceAccount that does not exist.
	ServiceAccountNotFoundReason = "ServiceAccountNotFound"

	// ImageNotFoundReason means the registry answered 404 for the tag or
	// pinned digest.
	ImageNotFoundReason = "ImageNotFound"

	// InvalidImageReason means the registry returned a manifest or
	// configuration plinth cannot use (malformed, too large, or of an
	// unexpected media type), or a platform filter matched nothing.
	InvalidImageReason = "InvalidImage"

	// TLSVerificationFailedReason means TLS to the registry failed
	// verification (unknown certificate authority, a certificate for
	// another host name, an expired certificate). Set spec.certSecretRef
	// for a private CA. Retried at the policy's rescanInterval.
	TLSVerificationFailedReason = "TLSVerificationFailed"

	// CertSecretInvalidReason means spec.certSecretRef names a Secret that
	// is missing or holds no PEM certificate under ca.crt.
	CertSecretInvalidReason = "CertSecretInvalid"

	// RegistryUnavailableReason means the registry could not be reached or
	// answered with a server error; plinth retries with backoff.
	RegistryUnavailableReason = "RegistryUnavailable"

	// PolicyNotFoundReason means spec.policyRef names an ImagePolicy that
	// does not exist in the BaseImage's namespace. The entry recovers by
	// itself when the policy appears.
	PolicyNotFoundReason = "PolicyNotFound"

	// PolicyNotReadyReason means the referenced ImagePolicy exists but is
	// not valid.
	PolicyNotReadyReason = "PolicyNotReady"

	// PolicyDeniedReason means the policy refuses the entry outright (for
	// example its registry is not allowed), so nothing is fetched until the
	// spec or the policy changes.
	PolicyDeniedReason = "PolicyDenied"
)

// Reasons used by the Scanned condition.
const (
	// ScanSucceededReason means the resolved digest was scanned against the
	// current vulnerability DB.
	ScanSucceededReason = "ScanSucceeded"

	// ScanFailedReason means the scan failed; the message says what failed.
	// The last verdict of the digest, if any, is kept.
	ScanFailedReason = "ScanFailed"

	// VulnDBUnavailableReason means no vulnerability DB is loaded yet, so
	// nothing can be scanned.
	VulnDBUnavailableReason = "VulnDBUnavailable"

	// VulnDBStaleReason means the vulnerability DB is older than the
	// operator's limit (its mirror cannot be reached, for example); the
	// verdict uses the old DB.
	VulnDBStaleReason = "VulnDBStale"

	// LayerLimitExceededReason means the image is over the operator's
	// limits on layer count or size and was not scanned.
	LayerLimitExceededReason = "LayerLimitExceeded"
)

// Reasons used by the Approved condition.
const (
	// PolicyPassedReason means the resolved digest meets every rule of the
	// policy.
	PolicyPassedReason = "PolicyPassed"

	// VulnerabilitiesExceedThresholdReason means the digest has findings
	// the policy does not allow.
	VulnerabilitiesExceedThresholdReason = "VulnerabilitiesExceedThreshold"

	// HardeningViolationReason means the digest breaks a hardening check
	// of the policy (non-root user, setuid files, shells, package
	// managers, size, annotations) that no exception covers.
	HardeningViolationReason = "HardeningViolation"

	// SecretFoundReason means the secret scanner found a secret, such as
	// a cloud access key, in a layer of the digest and no exception covers
	// it. The message names the rule, the file and the layer, never the
	// secret.
	SecretFoundReason = "SecretFound"

	// ExceptionExpiredReason means the digest passed only thanks to an
	// exception that has now expired.
	ExceptionExpiredReason = "ExceptionExpired"

	// MutableTagReason: the policy forbids mutable tags and the entry
	// follows latest or a tag without a version number.
	MutableTagReason = "MutableTag"

	// NotJudgedReason (with status Unknown) means the resolved digest has
	// not been judged yet: it is new and could not be scanned so far (no
	// vulnerability DB yet, a failed scan, an image over the scan limits).
	// The message says why; approvedDigest is kept.
	NotJudgedReason = "NotJudged"

	// SignatureRequiredReason means the policy enforces publisher
	// verification and the digest has no valid signature.
	SignatureRequiredReason = "SignatureRequired"

	// UnapprovedRegistryReason means the image's registry or repository
	// matches none of the policy's allowedRegistries.
	UnapprovedRegistryReason = "UnapprovedRegistry"
)

// Reasons used by the Stale condition.
const (
	// MaxAgeExceededReason means the image is older than the policy's
	// maxAge: a rebuild is due even without a vulnerability.
	MaxAgeExceededReason = "MaxAgeExceeded"

	// UpstreamUpdatedReason means spec.upstream now points at a digest other
	// than the one the resolved image was built from.
	UpstreamUpdatedReason = "UpstreamUpdated"

	// FixAvailableReason means a blocking vulnerability has a fix: a
	// rebuild would remove it.
	FixAvailableReason = "FixAvailable"

	// UpToDateReason (with status False) means no rebuild is due.
	UpToDateReason = "UpToDate"

	// UpstreamUnavailableReason (with status Unknown) means spec.upstream
	// could not be read, so whether it moved is unknown. The image itself is
	// judged as usual.
	UpstreamUnavailableReason = "UpstreamUnavailable"

	// UpstreamNotAllowedReason (with status Unknown) means spec.upstream
	// comes from a registry the policy does not allow; it is never read.
	UpstreamNotAllowedReason = "UpstreamNotAllowed"
)

// Reasons of events that no condition carries.
const (
	// NewDigestReason: the tag moved to a new digest.
	NewDigestReason = "NewDigest"

	// ApprovalRevokedReason: the approved digest lost its approval on its
	// own merits (a remediation window passed, an exception expired, the
	// policy changed, or its registry is no longer allowed).
	ApprovalRevokedReason = "ApprovalRevoked"

	// RebuildTriggeredReason: plinth created a rebuild Job or delivered the
	// rebuild webhook for a stale digest.
	RebuildTriggeredReason = "RebuildTriggered"

	// RebuildSucceededReason: the rebuild Job succeeded.
	RebuildSucceededReason = "RebuildSucceeded"

	// RebuildFailedReason: a rebuild could not be triggered, or its Job
	// failed; the next trigger backs off.
	RebuildFailedReason = "RebuildFailed"

	// ApprovalLostReason: the Approved condition went from True to False.
	ApprovalLostReason = "ApprovalLost"

	// ExceptionExpiringReason: an exception the approval depends on
	// expires soon.
	ExceptionExpiringReason = "ExceptionExpiring"

	// NotificationFailedReason: a notification could not be delivered and
	// plinth gave up on it.
	NotificationFailedReason = "NotificationFailed"
)
