package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

// The sample policy's exceptions must hold whatever the date the playground
// runs on, or the sample verdicts (and the end-to-end test) change with the
// calendar.
func TestSamplesExceptionsOutliveAnyDate(t *testing.T) {
	for _, day := range []time.Time{time.Now(), time.Date(2041, 2, 3, 4, 5, 6, 0, time.UTC)} {
		c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).Build()
		ctx := context.Background()
		if err := applySamples(ctx, c, filepath.Join(testenv.Root(), "config", "samples"), "team-a", "localhost:40123", day); err != nil {
			t.Fatal(err)
		}
		var policies catalogv1.ImagePolicyList
		if err := c.List(ctx, &policies, client.InNamespace("team-a")); err != nil {
			t.Fatal(err)
		}
		exceptions := 0
		for _, p := range policies.Items {
			for _, e := range p.Spec.Exceptions {
				exceptions++
				if left := e.Expires.Sub(day); left < 89*24*time.Hour || left > 90*24*time.Hour {
					t.Errorf("on %s, exception %s expires %s: %s later, want 90 days", day.Format(time.DateOnly), e.ID, e.Expires.UTC(), left)
				}
			}
		}
		if exceptions == 0 {
			t.Fatal("the samples have no exception; the test proves nothing")
		}
		var images catalogv1.BaseImageList
		if err := c.List(ctx, &images, client.InNamespace("team-a")); err != nil {
			t.Fatal(err)
		}
		if len(images.Items) == 0 {
			t.Fatal("no BaseImage applied")
		}
		if got := images.Items[0].Spec.Image; got != "localhost:40123/base/alpine:3.22" {
			t.Errorf("image = %s, want the sample registry's actual port", got)
		}
	}
}
