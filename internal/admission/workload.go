package admission

import (
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// container is one image field of a pod spec.
type container struct {
	// Path names the field as a user would find it, such as
	// "initContainers[0] (migrate)".
	Path string
	// Image is the field's value.
	Image string
}

// workload is what the webhook reads of an admitted object.
type workload struct {
	Meta       metav1.ObjectMeta
	Containers []container
}

// supported reports whether the webhook checks objects of kind gk.
func supported(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Kind: "Pod"},
		schema.GroupKind{Group: "apps", Kind: "Deployment"},
		schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "apps", Kind: "DaemonSet"},
		schema.GroupKind{Group: "apps", Kind: "ReplicaSet"},
		schema.GroupKind{Group: "batch", Kind: "Job"},
		schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return true
	}
	return false
}

// decodeWorkload reads the metadata and the pod spec of an object of kind
// gk from its JSON.
func decodeWorkload(gk schema.GroupKind, raw []byte) (workload, error) {
	if len(raw) == 0 {
		return workload{}, fmt.Errorf("the request holds no %s", gk.Kind)
	}
	var (
		meta *metav1.ObjectMeta
		spec *corev1.PodSpec
		obj  any
	)
	switch gk {
	case schema.GroupKind{Kind: "Pod"}:
		o := &corev1.Pod{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		o := &appsv1.Deployment{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.Template.Spec
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		o := &appsv1.StatefulSet{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.Template.Spec
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		o := &appsv1.DaemonSet{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.Template.Spec
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		o := &appsv1.ReplicaSet{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.Template.Spec
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		o := &batchv1.Job{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.Template.Spec
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		o := &batchv1.CronJob{}
		obj, meta, spec = o, &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		return workload{}, fmt.Errorf("plinth does not check objects of kind %s", gk)
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return workload{}, fmt.Errorf("the %s cannot be decoded: %w", gk.Kind, err)
	}
	return workload{Meta: *meta, Containers: containers(spec)}, nil
}

// containers lists every image field of spec: init, regular and ephemeral
// containers. Empty images (allowed in templates) are skipped.
func containers(spec *corev1.PodSpec) []container {
	var out []container
	add := func(field string, i int, name, image string) {
		if image == "" {
			return
		}
		p := field + "[" + strconv.Itoa(i) + "]"
		if name != "" {
			p += " (" + name + ")"
		}
		out = append(out, container{Path: p, Image: image})
	}
	for i, c := range spec.InitContainers {
		add("initContainers", i, c.Name, c.Image)
	}
	for i, c := range spec.Containers {
		add("containers", i, c.Name, c.Image)
	}
	for i, c := range spec.EphemeralContainers {
		add("ephemeralContainers", i, c.Name, c.Image)
	}
	return out
}
