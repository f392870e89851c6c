package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheByObject restricts what the manager's cache holds of the kinds the
// controllers watch but do not own entirely: of Jobs, only plinth's
// rebuild Jobs, so that a cluster's other Jobs cost no memory; of Pods,
// only the names, phase and images the inventory reads, so that a large
// cluster does not pay for every Pod's full spec.
func CacheByObject() map[client.Object]cache.ByObject {
	req, err := labels.NewRequirement(RebuildJobLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return map[client.Object]cache.ByObject{
		&batchv1.Job{}: {Label: labels.NewSelector().Add(*req)},
		&corev1.Pod{}:  {Transform: stripPod},
	}
}
