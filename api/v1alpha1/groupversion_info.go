// Package v1alpha1 contains the catalog.plinth.dev/v1alpha1 API: BaseImage,
// one entry of the catalog of approved base images, and ImagePolicy, the
// standard a BaseImage must meet.
//
// +kubebuilder:object:generate=true
// +groupName=catalog.plinth.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "catalog.plinth.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
