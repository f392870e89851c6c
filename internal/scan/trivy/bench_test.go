package trivy

import (
	"context"
	"testing"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"

	"github.com/plinth-dev/plinth/internal/scan"
)

// BenchmarkScanCacheHit is a request for a digest already scanned under
// the current DB.
func BenchmarkScanCacheHit(b *testing.B) {
	e := newEnv(b, []vulndbtest.Advisory{muslCVE})
	d := e.push("base/alpine", alpine(b, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	e.mustScan(d)
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.scan(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(e.scanner.Stats().Scans), "scans")
}

// BenchmarkRescanWarmLayers is the re-evaluation of a digest after a DB
// update: manifests are fetched again, layers come from the layer cache.
func BenchmarkRescanWarmLayers(b *testing.B) {
	e := newEnv(b, []vulndbtest.Advisory{muslCVE})
	d := e.push("base/alpine", alpine(b, "", imagetest.Package{Name: "musl", Version: "1.2.5-r0"}))
	e.mustScan(d)
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.scanner.scan(context.Background(), scan.Request{Image: d, Transport: e.counter}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(e.scanner.Stats().LayerDownloads), "layer-downloads")
}
