package install

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func deploymentOf(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, find(t, objs, "Deployment", deployment))
}

func managerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatal("the Deployment has no manager container")
	return corev1.Container{}
}

// TestManagerSecurity checks the manager's pod against what the operator's
// users are promised: non-root, read-only root filesystem, no privilege
// escalation or capabilities, the runtime's seccomp profile, bounded
// resources, probes, and a Go memory limit under the container's.
func TestManagerSecurity(t *testing.T) {
	d := deploymentOf(t, render(t, "config/default"))
	pod := d.Spec.Template.Spec
	c := managerContainer(t, d)
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("the manager container has no securityContext")
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}

	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		t.Error("runAsNonRoot is not true")
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid != 65532 {
		t.Errorf("runAsUser = %v, want 65532 (the image's nonroot user)", uid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the container is privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", seccomp)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the pod shares a host namespace")
	}

	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("%s: request %v and limit %v must both be set", r, req.String(), lim.String())
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s exceeds limit %s", r, req.String(), lim.String())
		}
	}

	memLimit := c.Resources.Limits[corev1.ResourceMemory]
	gomemlimit := ""
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomemlimit = e.Value
			if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
				gomemlimit = memLimit.String()
			}
		}
	}
	switch n, err := parseGoMemLimit(gomemlimit); {
	case gomemlimit == "":
		t.Error("GOMEMLIMIT is not set")
	case err != nil:
		t.Errorf("GOMEMLIMIT=%q: %v", gomemlimit, err)
	case n > memLimit.Value():
		t.Errorf("GOMEMLIMIT=%s exceeds the memory limit %s", gomemlimit, memLimit.String())
	case n < memLimit.Value()*3/4:
		t.Errorf("GOMEMLIMIT=%s wastes more than a quarter of the memory limit %s", gomemlimit, memLimit.String())
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		port := probe.HTTPGet.Port.IntVal
		if probe.HTTPGet.Port.StrVal != "" {
			port = ports[probe.HTTPGet.Port.StrVal]
		}
		if probe.HTTPGet.Path != want || port != 8081 {
			t.Errorf("%s probe GET %s on port %d, want %s on 8081", name, probe.HTTPGet.Path, port, want)
		}
	}
	for _, arg := range []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %q lack %s", c.Args, arg)
		}
	}
	if ports["https"] != 8443 {
		t.Errorf("container port https = %d, want 8443", ports["https"])
	}

	// The writable places, on size-limited emptyDirs.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, path := range []string{"/var/cache/plinth", "/tmp"} {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
		if i < 0 {
			t.Errorf("nothing is mounted at %s", path)
			continue
		}
		v := volumes[c.VolumeMounts[i].Name]
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.IsZero() {
			t.Errorf("%s is not an emptyDir with a sizeLimit: %+v", path, v.VolumeSource)
		}
	}
}

// TestImageFollowsVersion checks that config/default deploys the image of
// the Makefile's VERSION, the version the bundle carries.
func TestImageFollowsVersion(t *testing.T) {
	c := managerContainer(t, deploymentOf(t, render(t, "config/default")))
	if want := "ghcr.io/plinth-dev/plinth:" + makeVar(t, "VERSION"); c.Image != want {
		t.Errorf("image = %s, want %s", c.Image, want)
	}
}

// parseGoMemLimit reads a GOMEMLIMIT value as the Go runtime does: a byte
// count with an optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a Go memory limit: %w", err)
	}
	return n * mult, nil
}
