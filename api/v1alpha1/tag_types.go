package v1alpha1

// TagPolicy chooses the tag an entry follows: the newest version within a
// semver range.
type TagPolicy struct {
	// semver is the range of versions to follow, e.g. ">=3.13.0 <3.14.0"
	// or "~3.13". Tags that are not versions are ignored, and so are
	// pre-releases unless the range names one.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Semver string `json:"semver"`

	// filterTags reads the version out of tags such as
	// 3.13.2-slim-bookworm; tags it does not match are ignored.
	// +optional
	FilterTags *TagFilter `json:"filterTags,omitempty"`
}

// TagFilter selects tags by a regular expression and reads their version.
type TagFilter struct {
	// pattern is a regular expression (Go syntax) tags must match, e.g.
	// "^(?P<version>[0-9.]+)-slim-bookworm$".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Pattern string `json:"pattern"`

	// extract is the version within a matching tag, from the pattern's
	// groups: "$version", "${1}". Defaults to the first group, or the whole
	// tag when the pattern has none.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Extract string `json:"extract,omitempty"`
}

// TagRules are a policy's rules on the tags entries follow.
type TagRules struct {
	// forbidMutable refuses entries that follow latest or a tag without a
	// version number (stable, bookworm-slim): Approved=False with reason
	// MutableTag. Entries pinned by digest or following a tagPolicy pass.
	// +optional
	ForbidMutable bool `json:"forbidMutable,omitempty"`
}
