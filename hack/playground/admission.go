package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/plinth-dev/plinth/internal/admission"
	imagetest "github.com/plinth-dev/plinth/test/images"
)

// appsNamespace is the playground's namespace in enforce mode.
const appsNamespace = "apps"

// sampleApps are the application images the playground pushes: one built
// FROM the approved alpine base, one FROM the refused python-legacy base.
type sampleApps struct {
	approved, unapproved string
}

// pushSampleApps builds the two sample applications on the sample bases
// (read back from the registry) and pushes them.
func pushSampleApps(ctx context.Context, host string) (sampleApps, error) {
	apps := sampleApps{approved: host + "/apps/hello:1", unapproved: host + "/apps/legacy-report:1"}
	for _, a := range []struct{ base, ref, file string }{
		{host + "/base/alpine:3.22", apps.approved, "usr/local/bin/hello"},
		{host + "/base/python:3.9", apps.unapproved, "srv/report.py"},
	} {
		ref, err := name.ParseReference(a.base)
		if err != nil {
			return sampleApps{}, err
		}
		base, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			return sampleApps{}, fmt.Errorf("reading %s: %w", a.base, err)
		}
		top, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{a.file: "sample application"}})
		if err != nil {
			return sampleApps{}, err
		}
		layers, err := top.Layers()
		if err != nil {
			return sampleApps{}, err
		}
		img, err := mutate.AppendLayers(base, layers...)
		if err != nil {
			return sampleApps{}, err
		}
		if _, err := imagetest.PushImage(ctx, a.ref, img); err != nil {
			return sampleApps{}, fmt.Errorf("pushing %s: %w", a.ref, err)
		}
	}
	return apps, nil
}

// enrollAppsNamespace creates the namespace whose Pods the webhook checks
// in enforce mode.
func enrollAppsNamespace(ctx context.Context, c client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appsNamespace,
		Labels: map[string]string{admission.ModeLabel: string(admission.Enforce)}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", appsNamespace, err)
	}
	return nil
}

// admissionFlags serve the operator's webhook where the control plane
// calls it, with the certificate the control plane trusts.
func admissionFlags(wo *envtest.WebhookInstallOptions) []string {
	return []string{
		"--admission-webhook",
		"--webhook-host=" + wo.LocalServingHost,
		"--webhook-port=" + strconv.Itoa(wo.LocalServingPort),
		"--webhook-certs=mounted",
		"--webhook-cert-dir=" + wo.LocalServingCertDir,
	}
}

// admissionCommands are the two kubectl commands the playground suggests:
// the first is admitted, the second denied.
func admissionCommands(kubeconfig string, apps sampleApps) [2]string {
	run := func(name, image string) string {
		return fmt.Sprintf("KUBECONFIG=%s kubectl run %s -n %s --image=%s", kubeconfig, name, appsNamespace, image)
	}
	return [2]string{run("hello", apps.approved), run("legacy-report", apps.unapproved)}
}
