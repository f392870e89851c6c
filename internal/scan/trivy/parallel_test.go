package trivy

import (
	"context"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// probeAnalyzer counts the analyses of files under probe/ that run at
// once. Trivy holds the content of each file under 100 MiB an analyser
// reads in memory while it is analysed, so this count bounds a scan's
// memory.
type probeAnalyzer struct{}

var probeRunning, probeMost atomic.Int64

func init() { analyzer.RegisterAnalyzer(probeAnalyzer{}) }

func (probeAnalyzer) Type() analyzer.Type { return "plinth-test-probe" }
func (probeAnalyzer) Version() int        { return 1 }

func (probeAnalyzer) Required(filePath string, _ os.FileInfo) bool {
	return strings.HasPrefix(filePath, "probe/")
}

func (probeAnalyzer) Analyze(_ context.Context, in analyzer.AnalysisInput) (*analyzer.AnalysisResult, error) {
	n := probeRunning.Add(1)
	defer probeRunning.Add(-1)
	for m := probeMost.Load(); n > m && !probeMost.CompareAndSwap(m, n); m = probeMost.Load() {
	}
	// Long enough for the walk to offer the next files meanwhile.
	time.Sleep(30 * time.Millisecond)
	_, err := io.Copy(io.Discard, in.Content)
	return nil, err
}

// A scan analyses one file of one layer at a time: two scans of images
// full of large files (--scan-concurrency 2) then hold two files each in
// memory rather than six, which kept the manager under its 1Gi limit
// (test/e2e's TestOperatorScansLargeImagesWithinItsMemoryLimit).
func TestScanAnalysesOneFileAtATime(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	var layers [][]byte
	for l := range 2 {
		var entries []imagetest.Entry
		for f := range 4 {
			entries = append(entries, imagetest.Entry{Name: "probe/" + string(rune('a'+l)) + string(rune('0'+f)), Content: strings.Repeat("x", 4096)})
		}
		b, err := imagetest.LayerTar(entries)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, b)
	}
	img, err := imagetest.AppendLayers(alpine(t, ""), layers...)
	if err != nil {
		t.Fatal(err)
	}
	probeMost.Store(0)
	e.mustScan(e.push("probe/image", img))
	if got := probeMost.Load(); got != 1 {
		t.Errorf("%d files were analysed at once in one scan, want 1", got)
	}
}
