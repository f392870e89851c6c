package vulndbtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

func TestBuildWritesTrivyLayout(t *testing.T) {
	dir := t.TempDir()
	built := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	path, err := Build(dir, []Advisory{{ID: "CVE-2099-0001", Distro: Alpine322, Package: "musl", FixedVersion: "1.2.5-r1", Severity: "CRITICAL"}}, built)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o444, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var adv dbtypes.Advisory
		raw := tx.Bucket([]byte("alpine 3.22")).Bucket([]byte("musl")).Get([]byte("CVE-2099-0001"))
		if err := json.Unmarshal(raw, &adv); err != nil || adv.FixedVersion != "1.2.5-r1" {
			t.Errorf("advisory %s: %v", raw, err)
		}
		var v dbtypes.Vulnerability
		if err := json.Unmarshal(tx.Bucket([]byte("vulnerability")).Get([]byte("CVE-2099-0001")), &v); err != nil || v.VendorSeverity["nvd"] != dbtypes.SeverityCritical {
			t.Errorf("vulnerability %+v: %v", v, err)
		}
		var src dbtypes.DataSource
		if err := json.Unmarshal(tx.Bucket([]byte("data-source")).Get([]byte("alpine 3.22")), &src); err != nil || src.ID != "alpine" {
			t.Errorf("data source %+v: %v", src, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := Build(t.TempDir(), []Advisory{{ID: "X", Distro: "alpine 3.1", Package: "p"}}, built); err == nil {
		t.Error("Build accepted an unknown distribution")
	}
}

func TestLayerEntries(t *testing.T) {
	dir := t.TempDir()
	if _, err := Build(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	b, err := Layer(dir, WithEntry(Entry{Name: "../escape", Body: []byte("x")}))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.ToSlash(h.Name))
	}
	if len(names) != 3 || names[0] != "trivy.db" || names[1] != "metadata.json" || names[2] != "../escape" {
		t.Errorf("entries %v", names)
	}

	cut, err := Layer(dir, WithTruncatedLayer())
	if err != nil {
		t.Fatal(err)
	}
	if full, _ := Layer(dir); len(cut) != len(full)/2 {
		t.Errorf("truncated layer has %d bytes, full %d", len(cut), len(full))
	}
}
