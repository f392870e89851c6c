// Package vulndbtest builds small, real Trivy vulnerability databases for
// tests and publishes them as the OCI artifact Trivy downloads, so scanners
// can run offline against a registry on loopback.
//
// The bolt file has the layout trivy-db writes: one bucket per distribution
// release ("alpine 3.22", "debian 12") holding a bucket per source package
// with one key per advisory, the merged "vulnerability" bucket with
// severities, and the "data-source" bucket naming each feed. It is written
// with bbolt directly, not through trivy-db's process-wide handle, so
// building a DB never disturbs a DB a scanner in the same process has open.
package vulndbtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

// Distribution buckets the builder knows data sources for.
const (
	Alpine322 = "alpine 3.22"
	Debian12  = "debian 12"
)

// SchemaVersion is the trivy-db schema version written to metadata.json.
const SchemaVersion = 2

// Advisory is one vulnerability affecting one source package of one
// distribution release.
type Advisory struct {
	// ID is the vulnerability ID, such as "CVE-2025-0001".
	ID string
	// Distro is the release bucket: Alpine322 or Debian12.
	Distro string
	// Package is the source package name ("musl", "openssl").
	Package string
	// FixedVersion is the first fixed version; empty means no fix yet.
	FixedVersion string
	// Severity is CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN, recorded as the
	// NVD severity of ID.
	Severity string
}

var dataSources = map[string]dbtypes.DataSource{
	Alpine322: {ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"},
	Debian12:  {ID: "debian", Name: "Debian Security Tracker", URL: "https://salsa.debian.org/security-tracker-team/security-tracker"},
}

// Metadata mirrors trivy-db's metadata.json.
type Metadata struct {
	Version      int `json:",omitempty"`
	NextUpdate   time.Time
	UpdatedAt    time.Time
	DownloadedAt time.Time
}

// Build writes trivy.db and metadata.json into dir (created if missing)
// with advs, and returns the path of trivy.db. updatedAt is the DB's build
// time; NextUpdate is six hours later, as for the public DB.
func Build(dir string, advs []Advisory, updatedAt time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating DB directory: %w", err)
	}
	dbPath := filepath.Join(dir, "trivy.db")
	_ = os.Remove(dbPath)
	bdb, err := bolt.Open(dbPath, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return "", fmt.Errorf("creating bolt file: %w", err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { return write(tx, advs) })
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	meta := Metadata{
		Version:    SchemaVersion,
		UpdatedAt:  updatedAt.UTC(),
		NextUpdate: updatedAt.UTC().Add(6 * time.Hour),
	}
	if err := WriteMetadata(dir, meta); err != nil {
		return "", err
	}
	return dbPath, nil
}

// WriteMetadata replaces dir/metadata.json with m.
func WriteMetadata(dir string, m Metadata) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), b, 0o644); err != nil {
		return fmt.Errorf("writing metadata.json: %w", err)
	}
	return nil
}

func write(tx *bolt.Tx, advs []Advisory) error {
	vulnBkt, err := tx.CreateBucketIfNotExists([]byte("vulnerability"))
	if err != nil {
		return err
	}
	srcBkt, err := tx.CreateBucketIfNotExists([]byte("data-source"))
	if err != nil {
		return err
	}
	for _, a := range advs {
		src, ok := dataSources[a.Distro]
		if !ok {
			return fmt.Errorf("advisory %s: unknown distribution %q (want %q or %q)", a.ID, a.Distro, Alpine322, Debian12)
		}
		if a.ID == "" || a.Package == "" {
			return fmt.Errorf("advisory %+v: ID and Package are required", a)
		}
		if err := putJSON(srcBkt, a.Distro, src); err != nil {
			return err
		}
		distro, err := tx.CreateBucketIfNotExists([]byte(a.Distro))
		if err != nil {
			return err
		}
		pkg, err := distro.CreateBucketIfNotExists([]byte(a.Package))
		if err != nil {
			return err
		}
		if err := putJSON(pkg, a.ID, dbtypes.Advisory{FixedVersion: a.FixedVersion}); err != nil {
			return err
		}
		sevName := strings.ToUpper(a.Severity)
		if sevName == "" {
			sevName = "UNKNOWN"
		}
		sev, err := dbtypes.NewSeverity(sevName)
		if err != nil {
			return fmt.Errorf("advisory %s: %w", a.ID, err)
		}
		vuln := dbtypes.Vulnerability{
			Title:          a.ID + " in " + a.Package,
			Severity:       sevName,
			VendorSeverity: dbtypes.VendorSeverity{"nvd": sev},
		}
		if err := putJSON(vulnBkt, a.ID, vuln); err != nil {
			return err
		}
	}
	return nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
