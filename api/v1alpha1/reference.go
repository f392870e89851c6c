package v1alpha1

// The validation rules below are CEL, checked by the API server. They are
// kept free of backslashes so they read the same in Go, in the CRD and in
// the API server's error messages.

// ImageReference is a repository with an optional tag, in the syntax of
// `docker pull`: [registry[:port]/]path[:tag]. It carries no digest; a digest
// is pinned with BaseImageSpec.Digest.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^((([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])([.]([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*)*)(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$')",message="must be an image reference such as registry.example.com/base/python:3.13-slim (lower-case repository path, optional :tag, no digest)"
type ImageReference string

// Digest is a content digest such as sha256:<64 hex digits>.
// +kubebuilder:validation:MaxLength=135
// +kubebuilder:validation:XValidation:rule="self.matches('^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$')",message="must be a digest such as sha256: followed by 64 lower-case hex digits"
type Digest string

// Platform is an OCI platform written os/architecture[/variant], such as
// linux/amd64 or linux/arm64/v8.
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9.]+)?$')",message="must be a platform such as linux/amd64 or linux/arm/v7"
type Platform string

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referenced object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}
