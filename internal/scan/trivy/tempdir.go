package trivy

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	xos "github.com/aquasecurity/trivy/pkg/x/os"
)

// UseTempDir makes dir the home of the scans' temporary files, emptying it
// first. Trivy copies every file of 100 MiB or more that an analyser reads
// to a temporary file while it is analysed; a process killed in the middle
// (an OOM kill, a deleted Pod) leaves it behind, and in a container whose
// temporary directory outlives the process it would stay there. Keeping
// the files in a directory of plinth's own, on the cache volume, lets the
// next process remove them. UseTempDir sets TMPDIR for the whole process:
// call it once, before the first scan, from main.
func UseTempDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the temporary files of an earlier process: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Setenv("TMPDIR", dir)
}

// RemoveTempFiles removes the temporary files of this process's scans. Call
// it once no scan runs any more, as the process ends.
func RemoveTempFiles() error {
	return xos.Cleanup()
}

// Trivy copies each file of 100 MiB or more that an analyser reads to a
// temporary file, and removes the copy once the file is analysed. When
// reading the layer fails in the middle of such a file (a layer over the
// inflation limit, a dropped connection), it keeps the partial copy, which
// can be as large as the inflation limit allows. The process's analyses are
// counted, and when the last one ends the copies are removed: none is in
// use then.
var analyses struct {
	mu     sync.Mutex
	active int
}

// beginAnalysis counts an analysis that may copy files; endAnalysis ends it.
func beginAnalysis() {
	analyses.mu.Lock()
	analyses.active++
	analyses.mu.Unlock()
}

func endAnalysis() {
	analyses.mu.Lock()
	defer analyses.mu.Unlock()
	analyses.active--
	if analyses.active > 0 {
		return
	}
	left, _ := filepath.Glob(filepath.Join(xos.TempDir(), "cached-file-*"))
	for _, f := range left {
		_ = os.Remove(f)
	}
}
