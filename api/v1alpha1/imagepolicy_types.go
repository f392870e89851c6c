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

	// exceptions accept named vulnerabilities until they expire. An expired
	// exception stops applying by itself.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Exceptions []VulnerabilityException `json:"exceptions,omitempty"`
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
