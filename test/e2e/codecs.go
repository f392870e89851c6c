package e2e

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// tableCodecs decodes metav1.Table responses.
var tableCodecs = func() runtime.NegotiatedSerializer {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	s.AddKnownTypes(metav1.SchemeGroupVersion, &metav1.Table{})
	return serializer.NewCodecFactory(s).WithoutConversion()
}()
