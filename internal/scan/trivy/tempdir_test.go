package trivy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUseTempDirRemovesWhatAnEarlierProcessLeft(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmp")
	left := filepath.Join(dir, "trivy-123", "cached-file-456")
	if err := os.MkdirAll(filepath.Dir(left), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, []byte("a large file's copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())

	if err := UseTempDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the earlier process's temporary file is still there: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the directory is not there to use: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("the directory holds %d entries, want none", len(entries))
	}
	if got := os.TempDir(); got != dir {
		t.Errorf("os.TempDir() = %s, want %s", got, dir)
	}
}
