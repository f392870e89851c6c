package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plinth-dev/plinth/internal/inventory"
)

// containerImage is one container of a Pod as the inventory sees it.
type containerImage struct {
	name   string // the container's name
	image  string // spec image
	digest string // manifest digest from the status's imageID, or ""
}

// podImages lists the containers of a Pod that the runtime has pulled
// (init, regular and ephemeral), each with the manifest digest its status
// reports, or "" when the status reports only a configuration id. A
// container whose status has no imageID yet (its image is not pulled, or
// cannot be) runs nothing and is left out.
func podImages(pod *corev1.Pod) []containerImage {
	ids := map[string]string{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses,
		pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, s := range list {
			ids[s.Name] = s.ImageID
		}
	}
	out := make([]containerImage, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+len(pod.Spec.EphemeralContainers))
	add := func(n, image string) {
		id, ok := ids[n]
		if !ok || id == "" {
			return
		}
		out = append(out, containerImage{name: n, image: image, digest: inventory.DigestFromImageID(id)})
	}
	for _, c := range pod.Spec.InitContainers {
		add(c.Name, c.Image)
	}
	for _, c := range pod.Spec.Containers {
		add(c.Name, c.Image)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		add(c.Name, c.Image)
	}
	return out
}

func sameImages(a, b []containerImage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stripPod keeps of a Pod only what the inventory reads: its name, its
// phase, and the name, image and image id of each container. The cache
// then holds a few hundred bytes per Pod rather than its whole spec.
func stripPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			DeletionTimestamp: pod.DeletionTimestamp,
		},
		Status: corev1.PodStatus{Phase: pod.Status.Phase},
	}
	for _, c := range pod.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range pod.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	for _, c := range pod.Spec.EphemeralContainers {
		out.Spec.EphemeralContainers = append(out.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image}})
	}
	strip := func(in []corev1.ContainerStatus) []corev1.ContainerStatus {
		var s []corev1.ContainerStatus
		for _, c := range in {
			s = append(s, corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.ImageID})
		}
		return s
	}
	out.Status.InitContainerStatuses = strip(pod.Status.InitContainerStatuses)
	out.Status.ContainerStatuses = strip(pod.Status.ContainerStatuses)
	out.Status.EphemeralContainerStatuses = strip(pod.Status.EphemeralContainerStatuses)
	return out, nil
}
