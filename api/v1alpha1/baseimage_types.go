package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BaseImageKind is the kind of BaseImage objects.
const BaseImageKind = "BaseImage"

// MaxHistory is the number of digests kept in BaseImageStatus.History.
const MaxHistory = 10

// BaseImageSpec declares one entry of the catalog: a repository and tag (or a
// pinned digest) that teams may build on, and the policy that judges it.
// +kubebuilder:validation:XValidation:rule="!(has(self.digest) && self.image.matches(':[^/]*$'))",message="set either a tag in image or digest, not both"
// +kubebuilder:validation:XValidation:rule="has(self.digest) || has(self.tagPolicy) || self.image.matches(':[^/]*$')",message="image must carry a tag (repository:tag) unless digest pins it or tagPolicy chooses it"
// +kubebuilder:validation:XValidation:rule="!has(self.tagPolicy) || (!has(self.digest) && !self.image.matches(':[^/]*$'))",message="tagPolicy chooses the tag: give image as a repository, without tag or digest"
type BaseImageSpec struct {
	// image is the repository of the base image and, unless digest is set,
	// the tag plinth follows, e.g. registry.example.com/base/python:3.13-slim.
	// +required
	Image ImageReference `json:"image"`

	// tagPolicy makes the entry follow the newest tag of image's repository
	// within a semver range, instead of one tag; image is then a repository
	// without tag. The chosen tag is in status.latestTag.
	// +optional
	TagPolicy *TagPolicy `json:"tagPolicy,omitempty"`

	// digest pins the entry to one digest of image's repository instead of
	// following a tag. A pinned digest is never moved by plinth.
	// +optional
	Digest Digest `json:"digest,omitempty"`

	// policyRef names the ImagePolicy, in this namespace, that judges this
	// entry.
	// +required
	PolicyRef LocalObjectReference `json:"policyRef"`

	// description tells users what this base image is for. Catalog
	// documentation only.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// owner is the team or person responsible for this base image, e.g. an
	// e-mail address or a team name. Catalog documentation only.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Owner string `json:"owner,omitempty"`

	// intendedUse says which workloads should build on this base, e.g.
	// "Python web services". Catalog documentation only.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	IntendedUse string `json:"intendedUse,omitempty"`

	// upstream is the image this base is built from, e.g.
	// docker.io/library/debian:bookworm-slim. When upstream moves to a digest
	// other than the one the resolved image was built from, the entry becomes
	// Stale with reason UpstreamUpdated. The built-from digest is read from
	// the image's org.opencontainers.image.base.digest annotation when
	// present, otherwise it is the upstream digest seen when the resolved
	// digest first appeared. The same credentials as image are used.
	// +optional
	Upstream ImageReference `json:"upstream,omitempty"`

	// platforms limits which platforms of a multi-platform image (an index)
	// plinth evaluates, e.g. [linux/amd64, linux/arm64]. Empty means every
	// real platform of the index; attestation manifests are never evaluated.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Platforms []Platform `json:"platforms,omitempty"`

	// pullSecretRef names a Secret of type kubernetes.io/dockerconfigjson
	// (or kubernetes.io/dockercfg), in this namespace, holding credentials
	// for the registry. When it is set, serviceAccountName is not consulted.
	// +optional
	PullSecretRef *LocalObjectReference `json:"pullSecretRef,omitempty"`

	// serviceAccountName names a ServiceAccount, in this namespace, whose
	// imagePullSecrets hold credentials for the registry, as for a Pod.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// certSecretRef names a Secret, in this namespace, whose ca.crt key
	// holds PEM certificate authorities trusted for TLS to the registry of
	// image and upstream, in addition to the system's: for registries with
	// a private CA.
	// +optional
	CertSecretRef *LocalObjectReference `json:"certSecretRef,omitempty"`

	// insecure allows plain HTTP to the registry of image and upstream
	// (HTTPS is tried first). Defaults to false.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// rebuild says what to do when the entry becomes Stale: run a Job, call
	// a signed webhook, or both. Unset does nothing but report Stale (the
	// policy's rebuild webhook, if any, is still called).
	// +optional
	Rebuild *RebuildSpec `json:"rebuild,omitempty"`

	// suspend tells plinth to stop checking this entry; its last verdict is
	// kept, and Ready=False and Stalled=True say Suspended. Defaults to false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ApprovedDigestStatus is the current verdict on the approved digest,
// re-judged at every rescan and vulnerability DB update.
type ApprovedDigestStatus struct {
	// digest that is approved.
	// +required
	Digest string `json:"digest"`

	// approvedAt is when this digest was first approved.
	// +required
	ApprovedAt metav1.Time `json:"approvedAt"`

	// vulnDBVersion identifies the vulnerability DB build of the last
	// judgement; empty when vulnerabilities are not judged.
	// +optional
	VulnDBVersion string `json:"vulnDBVersion,omitempty"`

	// critical findings of the digest, blocking or not.
	// +optional
	Critical int32 `json:"critical,omitempty"`

	// high findings of the digest, blocking or not.
	// +optional
	High int32 `json:"high,omitempty"`

	// deadline is when the approval lapses unless something changes: the
	// end of the first remediation window running, or the expiry of an
	// exception the approval depends on. Unset when none applies.
	// +optional
	Deadline *metav1.Time `json:"deadline,omitempty"`
}

// SignatureStatus describes plinth's signature and attestations on an
// approved digest.
type SignatureStatus struct {
	// digest that is signed.
	// +required
	Digest string `json:"digest"`
	// keyFingerprint identifies the catalog key: SHA256 of its public key.
	// +required
	KeyFingerprint string `json:"keyFingerprint"`
	// signature is the reference of the signature image (cosign's .sig).
	// +required
	Signature string `json:"signature"`
	// attestations is the reference of the attestation image (cosign's
	// .att): approval, vuln and CycloneDX attestations.
	// +required
	Attestations string `json:"attestations"`
	// validUntil is the approval attestation's validUntil.
	// +required
	ValidUntil metav1.Time `json:"validUntil"`
	// vulnDBVersion is the DB version the attested verdict used.
	// +optional
	VulnDBVersion string `json:"vulnDBVersion,omitempty"`
	// policyGeneration is the policy generation of the attested verdict.
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`
}

// FirstSeenGroup records when blocking findings were first detected in an
// entry, so that remediation deadlines never restart.
type FirstSeenGroup struct {
	// since is when these findings were first detected.
	// +required
	Since metav1.Time `json:"since"`

	// findings are keys of the form id|package|installedVersion.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=512
	Findings []string `json:"findings"`
}

// MaxFirstSeen is the most findings BaseImageStatus.FindingsFirstSeen
// records; the oldest are kept.
const MaxFirstSeen = 100

// DigestRecord is one digest the entry has resolved to, with its lifecycle.
type DigestRecord struct {
	// digest of the image (the index digest for a multi-platform image).
	// +required
	Digest string `json:"digest"`

	// firstSeen is when plinth first resolved the entry to this digest.
	// +required
	FirstSeen metav1.Time `json:"firstSeen"`

	// approvedAt is when this digest was first approved by the policy.
	// +optional
	ApprovedAt *metav1.Time `json:"approvedAt,omitempty"`

	// supersededAt is when a newer digest replaced this one.
	// +optional
	SupersededAt *metav1.Time `json:"supersededAt,omitempty"`

	// upstreamDigest is the digest spec.upstream pointed at when this digest
	// first appeared.
	// +optional
	UpstreamDigest string `json:"upstreamDigest,omitempty"`

	// staleSince is when the entry became Stale while on this digest.
	// +optional
	StaleSince *metav1.Time `json:"staleSince,omitempty"`

	// timeToPatch is, for a digest approved after a stale one, how long the
	// entry was stale: from the previous digest's staleSince to this
	// digest's approval.
	// +optional
	TimeToPatch *metav1.Duration `json:"timeToPatch,omitempty"`

	// fixed lists blocking findings of the previous digests that this
	// digest, once approved, no longer has, with how long each stayed open
	// (at most 10, the longest open first).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Fixed []FixedFinding `json:"fixed,omitempty"`
}

// BaseImageStatus is what plinth observed and decided about a BaseImage.
type BaseImageStatus struct {
	// observedGeneration is the generation of the spec that this status
	// describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Scanned, Approved and Stale.
	// Approved is the verdict on resolvedDigest, Unknown while that digest
	// is not judged yet.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// resolvedDigest is the digest the tag (or pin) points at now.
	// +optional
	ResolvedDigest string `json:"resolvedDigest,omitempty"`

	// approvedDigest is the newest digest that passed the policy and still
	// does: a new digest that fails does not clear it, but it is itself
	// judged again at every rescan and vulnerability DB update and cleared
	// when it loses approval on its own merits.
	// +optional
	ApprovedDigest string `json:"approvedDigest,omitempty"`

	// approved is the current verdict on approvedDigest.
	// +optional
	Approved *ApprovedDigestStatus `json:"approved,omitempty"`

	// signature names plinth's signature and attestations on
	// approvedDigest, when the policy signs.
	// +optional
	Signature *SignatureStatus `json:"signature,omitempty"`

	// repository is the repository (registry and path, no tag) that
	// resolvedDigest, approvedDigest and history belong to. A change of
	// spec.image to another repository starts them afresh.
	// +optional
	Repository string `json:"repository,omitempty"`

	// inspectedGeneration is the generation of the spec the platforms
	// field was read for.
	// +optional
	InspectedGeneration int64 `json:"inspectedGeneration,omitempty"`

	// latestTag is the tag spec.tagPolicy chose.
	// +optional
	LatestTag string `json:"latestTag,omitempty"`

	// upstreamDigest is the digest spec.upstream points at now.
	// +optional
	UpstreamDigest string `json:"upstreamDigest,omitempty"`

	// baseDigest is the upstream digest the resolved image was built from,
	// when known.
	// +optional
	BaseDigest string `json:"baseDigest,omitempty"`

	// imageCreated is the creation time recorded in the resolved image's
	// configuration; for a multi-platform image, the oldest of the evaluated
	// platforms. Unset when the image records none, or records the Unix
	// epoch as reproducible builds do: the age is then unknown.
	// +optional
	ImageCreated *metav1.Time `json:"imageCreated,omitempty"`

	// platforms are the platforms of the resolved image that plinth
	// evaluates.
	// +optional
	// +listType=atomic
	Platforms []string `json:"platforms,omitempty"`

	// history lists the last digests the entry resolved to, newest first
	// (at most 10).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	History []DigestRecord `json:"history,omitempty"`

	// scannedDigest is the digest the vulnerability counts and findings
	// describe.
	// +optional
	ScannedDigest string `json:"scannedDigest,omitempty"`

	// lastScanTime is when scannedDigest was last evaluated against the
	// vulnerability DB.
	// +optional
	LastScanTime *metav1.Time `json:"lastScanTime,omitempty"`

	// vulnDBVersion identifies the vulnerability DB build the verdict used.
	// +optional
	VulnDBVersion string `json:"vulnDBVersion,omitempty"`

	// vulnerabilities counts the findings of scannedDigest by severity.
	// +optional
	Vulnerabilities *VulnerabilitySummary `json:"vulnerabilities,omitempty"`

	// hardening counts the hardening and secret findings of scannedDigest.
	// +optional
	Hardening *HardeningStatus `json:"hardening,omitempty"`

	// findingsFirstSeen records when each blocking (or excepted) finding of
	// resolvedDigest and approvedDigest was first detected, at most 100
	// findings, the oldest kept; remediation deadlines count from these.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	FindingsFirstSeen []FirstSeenGroup `json:"findingsFirstSeen,omitempty"`

	// topFindings lists at most 20 findings: blocking ones first, by
	// deadline and first detection, then by severity. The counts cover all.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	TopFindings []Finding `json:"topFindings,omitempty"`

	// rebuild records the last rebuild trigger.
	// +optional
	Rebuild *RebuildStatus `json:"rebuild,omitempty"`

	// notifications are the last transitions told to the policy's
	// notification targets (at most 16), with those still pending.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Notifications []NotificationRecord `json:"notifications,omitempty"`

	// lastHandledReconcileAt is the value of the
	// reconcile.plinth.dev/requestedAt annotation that was last acted on.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// consumers counts the running containers built on this entry, as the
	// inventory last found them. It is updated in batches, at most once a
	// minute, and only when a count changed.
	// +optional
	Consumers *ConsumersStatus `json:"consumers,omitempty"`
}

// ConsumersStatus counts the containers of running Pods built on a catalog
// entry: on one of its digests, or on a layer chain that starts with one.
type ConsumersStatus struct {
	// pods is the number of Pods with at least one such container.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pods int32 `json:"pods"`

	// namespaces is the number of namespaces of those Pods.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Namespaces int32 `json:"namespaces"`

	// containers is the number of such containers (init, ephemeral and
	// regular).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Containers int32 `json:"containers"`

	// superseded is the number of those containers on a digest of this
	// entry that is not approved now: they are due for a rebuild on the
	// approved digest.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Superseded int32 `json:"superseded"`
}

// BaseImage is one entry of the catalog of approved base images: a
// repository and tag (or pinned digest) that teams may build on. plinth
// resolves its digest, judges it against its ImagePolicy and reports the
// verdict in status conditions.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bimg,categories=plinth
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.resolvedDigest`,priority=1
// +kubebuilder:printcolumn:name="Approved",type=string,JSONPath=`.status.conditions[?(@.type=="Approved")].status`
// +kubebuilder:printcolumn:name="Stale",type=string,JSONPath=`.status.conditions[?(@.type=="Stale")].status`
// +kubebuilder:printcolumn:name="Critical",type=integer,JSONPath=`.status.vulnerabilities.critical.total`
// +kubebuilder:printcolumn:name="High",type=integer,JSONPath=`.status.vulnerabilities.high.total`
// +kubebuilder:printcolumn:name="Image Age",type=date,JSONPath=`.status.imageCreated`
// +kubebuilder:printcolumn:name="Last Scan",type=date,JSONPath=`.status.lastScanTime`
// +kubebuilder:printcolumn:name="Consumers",type=integer,JSONPath=`.status.consumers.pods`,description="Running Pods built on this entry"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BaseImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the entry.
	// +required
	Spec BaseImageSpec `json:"spec"`

	// status is what plinth observed and decided.
	// +optional
	Status BaseImageStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (in *BaseImage) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *BaseImage) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// +kubebuilder:object:root=true

// BaseImageList is a list of BaseImages.
type BaseImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BaseImage `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BaseImage{}, &BaseImageList{})
}
