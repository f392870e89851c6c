package catalog_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"

	"github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
)

// BenchmarkMatchKnownDigest matches an image whose digest is one of 1,000
// catalog digests (100 entries with 10 history digests each), the common
// case for the admission webhook and the inventory. It reports the heap
// bytes the index holds as index-bytes.
func BenchmarkMatchKnownDigest(b *testing.B) {
	var bis []v1alpha1.BaseImage
	var digests []string
	for i := range 100 {
		var hist []string
		for j := range 10 {
			hist = append(hist, fmt.Sprintf("sha256:%x", sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, j))))
		}
		digests = append(digests, hist...)
		bis = append(bis, baseImage("platform", fmt.Sprintf("base-%d", i), fmt.Sprintf("registry.example.com/base/image-%d:1", i), hist[0], hist[0], hist...))
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix := catalog.NewIndex()
	ix.Update(bis)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(bis)
	if _, n := ix.Len(); n != 1000 {
		b.Fatalf("%d catalog digests, want 1000", n)
	}

	m, err := catalog.NewMatcher(ix, catalog.Options{Client: registry.New(registry.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	images := make([]string, len(digests))
	for i, d := range digests {
		images[i] = "registry.example.com/apps/web@" + d
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res, err := m.Match(ctx, images[i%len(images)], "")
		if err != nil || res.Class == catalog.Unknown || res.Class == catalog.Unapproved {
			b.Fatalf("got %s, %v", res.Class, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "index-bytes")
	runtime.KeepAlive(ix)
}
