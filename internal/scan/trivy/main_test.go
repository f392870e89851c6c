package trivy

import (
	"os"
	"testing"
)

// TestMain removes the directory where Trivy keeps this process's
// temporary files, as the operator does when it stops.
func TestMain(m *testing.M) {
	code := m.Run()
	_ = RemoveTempFiles()
	os.Exit(code)
}
