package trivy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzMaxDB is the DB size limit of the fuzz target: small, so that the
// limit itself is reachable.
const fuzzMaxDB = 4096

// tarEntry is one entry of a seed archive.
type tarEntry struct {
	hdr  tar.Header
	body string
}

// gzipTar writes entries as a gzip-compressed tar.
func gzipTar(tb testing.TB, entries ...tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name, body string) tarEntry { return tarEntry{hdr: tar.Header{Name: name}, body: body} }

// FuzzExtractDB feeds arbitrary bytes to the reader of the DB archive: it
// must never panic, never write outside its directory, and either extract
// exactly trivy.db and metadata.json within their limits or refuse with a
// DBError naming a reason.
func FuzzExtractDB(f *testing.F) {
	meta := `{"Version":2,"NextUpdate":"2099-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z"}`
	good := gzipTar(f, reg("trivy.db", "bolt"), reg("metadata.json", meta))
	seeds := [][]byte{
		good,
		gzipTar(f, reg("./metadata.json", meta), reg("./trivy.db", "bolt")),
		gzipTar(f, reg("trivy.db", "bolt")),
		gzipTar(f, reg("trivy.db", "a"), reg("./trivy.db", "b"), reg("metadata.json", meta)),
		gzipTar(f, reg("../trivy.db", "bolt"), reg("metadata.json", meta)),
		gzipTar(f, reg("/etc/trivy.db", "bolt"), reg("metadata.json", meta)),
		gzipTar(f, reg(`db\trivy.db`, "bolt"), reg("metadata.json", meta)),
		gzipTar(f, reg("db/trivy.db", "bolt"), reg("metadata.json", meta)),
		gzipTar(f, tarEntry{hdr: tar.Header{Name: "trivy.db", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}, reg("metadata.json", meta)),
		gzipTar(f, tarEntry{hdr: tar.Header{Name: "trivy.db", Typeflag: tar.TypeLink, Linkname: "metadata.json"}}, reg("metadata.json", meta)),
		gzipTar(f, tarEntry{hdr: tar.Header{Name: "trivy.db", Typeflag: tar.TypeDir}}, reg("metadata.json", meta)),
		gzipTar(f, reg("trivy.db", string(make([]byte, fuzzMaxDB+1))), reg("metadata.json", meta)),
		gzipTar(f, reg("trivy.db", "bolt"), reg("metadata.json", meta), reg("extra", "x")),
		good[:len(good)/2],
		good[:len(good)-4],
		{},
		[]byte("not gzip"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "db")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		err := extractDB(bytes.NewReader(archive), dir, fuzzMaxDB)

		// Nothing is ever written beside the directory.
		if ents, rerr := os.ReadDir(parent); rerr != nil || len(ents) != 1 || ents[0].Name() != "db" {
			t.Fatalf("the parent directory holds %v (%v)", ents, rerr)
		}
		ents, rerr := os.ReadDir(dir)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			var dbe *DBError
			if !errors.As(err, &dbe) || dbe.Reason == "" {
				t.Fatalf("error %v is not a DBError with a reason", err)
			}
			for _, e := range ents {
				if e.Name() != dbFileName && e.Name() != metadataName {
					t.Fatalf("refused archive left %s behind", e.Name())
				}
			}
			return
		}
		if len(ents) != 2 {
			t.Fatalf("extracted %d files, want trivy.db and metadata.json", len(ents))
		}
		limits := map[string]int64{dbFileName: fuzzMaxDB, metadataName: maxMetadataSize}
		for _, e := range ents {
			limit, ok := limits[e.Name()]
			if !ok {
				t.Fatalf("extracted unexpected file %s", e.Name())
			}
			fi, err := os.Lstat(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() {
				t.Fatalf("%s is %v, want a regular file", e.Name(), fi.Mode())
			}
			if fi.Size() > limit {
				t.Fatalf("%s has %d bytes, limit %d", e.Name(), fi.Size(), limit)
			}
		}
	})
}
