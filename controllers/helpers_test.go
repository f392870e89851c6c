package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
)

// createPolicy creates an ImagePolicy.
func createPolicy(t *testing.T, ns, name string, spec catalogv1.ImagePolicySpec) *catalogv1.ImagePolicy {
	t.Helper()
	p := &catalogv1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), p); err != nil {
		t.Fatalf("creating ImagePolicy: %v", err)
	}
	return p
}

// createBaseImage creates a BaseImage and returns its key.
func createBaseImage(t *testing.T, ns, name string, spec catalogv1.BaseImageSpec) client.ObjectKey {
	t.Helper()
	b := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), b); err != nil {
		t.Fatalf("creating BaseImage: %v", err)
	}
	return client.ObjectKeyFromObject(b)
}

// pushImage pushes a small Alpine-like image created at the given time
// (varying content gives a new digest) and returns its digest.
func pushImage(t *testing.T, ref string, created time.Time, content string, opts ...remote.Option) string {
	t.Helper()
	img, err := imagetest.Image(imagetest.ImageOptions{
		Created: created,
		Files:   map[string]string{"etc/motd": content},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), ref, img, opts...)
	if err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return d
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
