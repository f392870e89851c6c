package trivy

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// writeJSONAtomic writes v as JSON to path through a temporary file in the
// same directory and a rename, so a reader (or a crash) never sees half a
// file. It returns the number of bytes written.
func writeJSONAtomic(path string, v any) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.json")
	if err != nil {
		return 0, err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return 0, err
	}
	return int64(len(b)), nil
}
