package trivy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/google/go-containerregistry/pkg/authn"
	bolt "go.etcd.io/bbolt"

	"github.com/plinth-dev/plinth/internal/scan"
)

// Default locations of the vulnerability DB artifact, in the order Trivy
// v0.74 tries them.
const (
	DefaultDBRepository         = "mirror.gcr.io/aquasec/trivy-db:2"
	DefaultFallbackDBRepository = "ghcr.io/aquasecurity/trivy-db:2"
)

// Defaults of DBOptions.
const (
	DefaultDBUpdateInterval = time.Hour
	DefaultMaxDBLayerSize   = int64(1) << 30 // compressed
	DefaultMaxDBSize        = int64(4) << 30 // uncompressed trivy.db
)

// DBOptions configure a DBManager.
type DBOptions struct {
	// Repositories are tagged references of the DB artifact, tried in
	// order until one answers. Default: DefaultDBRepository, then
	// DefaultFallbackDBRepository.
	Repositories []string
	// CacheDir holds the downloaded DB; required. A DB found there is
	// loaded at start without touching the network.
	CacheDir string
	// Keychain resolves credentials for the repositories; nil means
	// anonymous.
	Keychain authn.Keychain
	// Transport reaches the repositories; nil means a clone of
	// http.DefaultTransport trusting CAPool when set.
	Transport http.RoundTripper
	// CAPool, when set and Transport is nil, is the set of CAs trusted for
	// TLS to the repositories (a private mirror).
	CAPool *x509.CertPool
	// Insecure lets the repositories be reached over plain HTTP (the
	// registry is parsed with go-containerregistry's name.Insecure).
	// Loopback registries use plain HTTP anyway.
	Insecure bool
	// UpdateInterval is how often Run checks for a new DB. Default 1h. A
	// check costs one manifest request when the DB has not changed.
	UpdateInterval time.Duration
	// MaxLayerSize bounds the compressed DB layer, in bytes. Default 1 GiB.
	MaxLayerSize int64
	// MaxDBSize bounds the uncompressed trivy.db, in bytes. Default 4 GiB.
	MaxDBSize int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnUpdate, when set, is called after every update attempt (by Run or
	// Update) with its error, nil when it succeeded whether or not the DB
	// changed. It runs on the updating goroutine, after the attempt's
	// outcome is visible in Status; it must not call Update. Use it to
	// count failures and successes in metrics.
	OnUpdate func(err error)
}

// DBStatus is the state of the vulnerability DB and of its updates.
type DBStatus struct {
	// Version identifies the loaded DB build (see Version); "" when none.
	Version string
	// UpdatedAt is when the loaded DB was built; zero when none.
	UpdatedAt time.Time
	// Size is the size of the loaded trivy.db in bytes; 0 when none.
	Size int64
	// LastSuccess is when an update attempt last succeeded (the repository
	// answered and the DB was current or replaced); zero if none has since
	// the process started.
	LastSuccess time.Time
	// LastError is the stable message of the last attempt's failure, with
	// no URL or credential; "" when it succeeded.
	LastError string
	// ConsecutiveFailures counts the failed attempts since the last
	// success.
	ConsecutiveFailures int
	// TotalFailures counts every failed attempt since the process started.
	TotalFailures int64
}

// DBManager owns the process-wide Trivy vulnerability DB: it loads it
// from disk, downloads and verifies new builds from an OCI repository, and
// swaps them in while scans are running. Only one DBManager may be open in
// a process, because Trivy keeps a single global DB handle.
type DBManager struct {
	opts DBOptions
	dir  string // <CacheDir>/db

	// mu guards the global Trivy DB handle: scans hold it for reading
	// while they query advisories, a swap holds it for writing.
	mu      sync.RWMutex
	current *dbState

	updateMu sync.Mutex // one update at a time

	errMu       sync.Mutex
	lastErr     error
	lastCheck   time.Time
	lastSuccess time.Time
	consecutive int
	failures    int64

	subMu sync.Mutex
	subs  []chan string
}

// dbState describes the loaded DB.
type dbState struct {
	version string
	dir     string
	meta    dbMetadata
	source  dbSource
	size    int64 // of trivy.db
}

// dbMetadata is trivy-db's metadata.json.
type dbMetadata struct {
	Version      int `json:",omitempty"`
	NextUpdate   time.Time
	UpdatedAt    time.Time
	DownloadedAt time.Time
}

// dbSource records where a DB came from, next to it on disk.
type dbSource struct {
	Repository     string `json:"repository"`
	ManifestDigest string `json:"manifestDigest"`
	LayerDigest    string `json:"layerDigest"`
}

var (
	activeMu sync.Mutex
	active   *DBManager
)

const (
	dbSubdir     = "db"
	currentLink  = "current"
	sourceFile   = "source.json"
	metadataName = "metadata.json"
	dbFileName   = "trivy.db"
)

// NewDBManager opens the DB cache in o.CacheDir and loads the DB found
// there, if any, without network access. Call Close when done.
func NewDBManager(o DBOptions) (*DBManager, error) {
	if o.CacheDir == "" {
		return nil, errors.New("vulnerability database cache directory is required")
	}
	if len(o.Repositories) == 0 {
		o.Repositories = []string{DefaultDBRepository, DefaultFallbackDBRepository}
	}
	if o.UpdateInterval <= 0 {
		o.UpdateInterval = DefaultDBUpdateInterval
	}
	if o.MaxLayerSize <= 0 {
		o.MaxLayerSize = DefaultMaxDBLayerSize
	}
	if o.MaxDBSize <= 0 {
		o.MaxDBSize = DefaultMaxDBSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if o.CAPool != nil {
			t.TLSClientConfig = &tls.Config{RootCAs: o.CAPool, MinVersion: tls.VersionTLS12}
		}
		o.Transport = t
	}

	activeMu.Lock()
	defer activeMu.Unlock()
	if active != nil {
		return nil, errors.New("another vulnerability database manager is open in this process")
	}

	m := &DBManager{opts: o, dir: filepath.Join(o.CacheDir, dbSubdir)}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating vulnerability database directory: %w", err)
	}
	// Downloads interrupted by a previous process are of no use.
	if tmps, err := filepath.Glob(filepath.Join(m.dir, "download-*")); err == nil {
		for _, p := range tmps {
			_ = os.RemoveAll(p)
		}
	}
	if err := m.loadExisting(); err != nil {
		// A broken cache is not fatal: the next update replaces it.
		m.setErr(err)
	}
	active = m
	return m, nil
}

// loadExisting opens the DB the current link points to.
func (m *DBManager) loadExisting() error {
	target, err := os.Readlink(filepath.Join(m.dir, currentLink))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return dbErr("CacheUnreadable", err)
	}
	dir := filepath.Join(m.dir, filepath.Base(target))
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if err := checkBolt(filepath.Join(dir, dbFileName)); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := trivydb.Init(dir, trivydb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})); err != nil {
		return dbErr("OpenFailed", err)
	}
	m.current = st
	m.removeStale(dir)
	return nil
}

func readState(dir string) (*dbState, error) {
	meta, err := readMetadata(filepath.Join(dir, metadataName))
	if err != nil {
		return nil, err
	}
	var src dbSource
	b, err := os.ReadFile(filepath.Join(dir, sourceFile))
	if err != nil {
		return nil, dbErr("CacheUnreadable", err)
	}
	if err := json.Unmarshal(b, &src); err != nil {
		return nil, dbErr("CacheUnreadable", err)
	}
	st := &dbState{version: versionOf(meta, src.LayerDigest), dir: dir, meta: meta, source: src}
	if fi, err := os.Stat(filepath.Join(dir, dbFileName)); err == nil {
		st.size = fi.Size()
	}
	return st, nil
}

// versionOf builds the DB version string: the build time from
// metadata.json in RFC 3339 (UTC), "+", and the first 12 hex digits of the
// DB layer's digest, such as "2025-11-26T00:55:12Z+4a1b2c3d4e5f". Two
// builds with the same time still differ, and the same artifact always
// gives the same string, including after a restart.
func versionOf(meta dbMetadata, layerDigest string) string {
	hex := strings.TrimPrefix(layerDigest, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return meta.UpdatedAt.UTC().Format(time.RFC3339) + "+" + hex
}

// Close releases the Trivy DB handle. The DBManager must not be used
// afterwards.
func (m *DBManager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.current != nil {
		err = trivydb.Close()
		m.current = nil
	}
	activeMu.Lock()
	if active == m {
		active = nil
	}
	activeMu.Unlock()
	m.subMu.Lock()
	for _, c := range m.subs {
		close(c)
	}
	m.subs = nil
	m.subMu.Unlock()
	return err
}

// Version identifies the loaded DB build (see versionOf); "" when no DB is
// loaded.
func (m *DBManager) Version() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.current == nil {
		return ""
	}
	return m.current.version
}

// UpdatedAt is when the loaded DB was built, from its metadata; zero when
// no DB is loaded.
func (m *DBManager) UpdatedAt() time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.current == nil {
		return time.Time{}
	}
	return m.current.meta.UpdatedAt
}

// Age is how old the loaded DB is at now, counted from its build time;
// zero when no DB is loaded.
func (m *DBManager) Age(now time.Time) time.Duration {
	u := m.UpdatedAt()
	if u.IsZero() {
		return 0
	}
	return now.Sub(u)
}

// LastError is the error of the most recent load or update, nil when it
// succeeded (including when the DB had not changed).
func (m *DBManager) LastError() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.lastErr
}

// Status returns the DB's state and the outcome of its updates.
func (m *DBManager) Status() DBStatus {
	var st DBStatus
	m.mu.RLock()
	if m.current != nil {
		st.Version, st.UpdatedAt, st.Size = m.current.version, m.current.meta.UpdatedAt, m.current.size
	}
	m.mu.RUnlock()
	m.errMu.Lock()
	defer m.errMu.Unlock()
	st.LastSuccess = m.lastSuccess
	st.LastError = stableError(m.lastErr)
	st.ConsecutiveFailures = m.consecutive
	st.TotalFailures = m.failures
	return st
}

// DiskReserve is the room the DB needs on the cache volume, as
// scan.DBReserve computes it: twice the loaded trivy.db, or MaxDBSize
// while none is loaded.
func (m *DBManager) DiskReserve() int64 {
	m.mu.RLock()
	var size int64
	if m.current != nil {
		size = m.current.size
	}
	m.mu.RUnlock()
	return scan.DBReserve(size, m.opts.MaxDBSize)
}

// LastCheck is when the repository was last asked for a new DB
// successfully.
func (m *DBManager) LastCheck() time.Time {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.lastCheck
}

// Subscribe returns a channel that receives the new version after every
// swap. Sends do not block: a slow reader sees only the latest versions
// that fit the channel's buffer of one. The channel closes on Close.
func (m *DBManager) Subscribe() <-chan string {
	c := make(chan string, 1)
	m.subMu.Lock()
	m.subs = append(m.subs, c)
	m.subMu.Unlock()
	return c
}

func (m *DBManager) notify(version string) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for _, c := range m.subs {
		select {
		case c <- version:
		default:
			// Drop the stale pending version and send the newest.
			select {
			case <-c:
			default:
			}
			select {
			case c <- version:
			default:
			}
		}
	}
}

func (m *DBManager) setErr(err error) {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	m.lastErr = err
}

// acquire takes a read hold on the loaded DB for the duration of a scan's
// advisory lookups. The caller must call release.
func (m *DBManager) acquire() (version string, release func(), err error) {
	m.mu.RLock()
	if m.current == nil {
		m.mu.RUnlock()
		return "", nil, scan.ErrDBUnavailable
	}
	return m.current.version, m.mu.RUnlock, nil
}

// Run updates the DB at once and then every UpdateInterval (with up to
// 10% jitter) until ctx ends. Errors are kept in LastError; the previous
// DB stays in use.
func (m *DBManager) Run(ctx context.Context) {
	for {
		_, _ = m.Update(ctx)
		interval := m.opts.UpdateInterval
		jitter := time.Duration(rand.Int64N(int64(interval)/10 + 1))
		t := time.NewTimer(interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Update checks the repositories for a DB build other than the loaded one
// and, when there is one, downloads, verifies and swaps it in. It reports
// whether the DB changed. On error the loaded DB stays in use and the
// error is also kept for LastError and Status. Every attempt is reported
// to DBOptions.OnUpdate.
func (m *DBManager) Update(ctx context.Context) (bool, error) {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	changed, err := m.update(ctx)
	m.errMu.Lock()
	m.lastErr = err
	if err != nil {
		m.consecutive++
		m.failures++
	} else {
		m.consecutive = 0
		m.lastSuccess = m.opts.Now()
	}
	m.errMu.Unlock()
	if m.opts.OnUpdate != nil {
		m.opts.OnUpdate(err)
	}
	return changed, err
}

func (m *DBManager) update(ctx context.Context) (bool, error) {
	var cur dbSource
	m.mu.RLock()
	if m.current != nil {
		cur = m.current.source
	}
	m.mu.RUnlock()

	art, err := m.resolve(ctx)
	if err != nil {
		return false, err
	}
	m.errMu.Lock()
	m.lastCheck = m.opts.Now()
	m.errMu.Unlock()
	if art.layer.Digest.String() == cur.LayerDigest {
		return false, nil
	}

	tmp, err := os.MkdirTemp(m.dir, "download-")
	if err != nil {
		return false, dbErr("CacheUnwritable", err)
	}
	defer os.RemoveAll(tmp)

	if err := m.download(ctx, art, tmp); err != nil {
		return false, err
	}
	meta, err := readMetadata(filepath.Join(tmp, metadataName))
	if err != nil {
		return false, err
	}
	if err := checkBolt(filepath.Join(tmp, dbFileName)); err != nil {
		return false, err
	}
	meta.DownloadedAt = m.opts.Now().UTC()
	if _, err := writeJSONAtomic(filepath.Join(tmp, metadataName), meta); err != nil {
		return false, dbErr("CacheUnwritable", err)
	}
	src := dbSource{Repository: art.repo, ManifestDigest: art.manifestDigest, LayerDigest: art.layer.Digest.String()}
	if _, err := writeJSONAtomic(filepath.Join(tmp, sourceFile), src); err != nil {
		return false, dbErr("CacheUnwritable", err)
	}

	final := filepath.Join(m.dir, "v-"+strings.TrimPrefix(src.LayerDigest, "sha256:"))
	_ = os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return false, dbErr("CacheUnwritable", err)
	}
	st := &dbState{version: versionOf(meta, src.LayerDigest), dir: final, meta: meta, source: src}
	if fi, err := os.Stat(filepath.Join(final, dbFileName)); err == nil {
		st.size = fi.Size()
	}
	if err := m.swap(st); err != nil {
		_ = os.RemoveAll(final)
		return false, err
	}
	m.notify(st.version)
	// The new DB is in use; if the link cannot be written, only a restart
	// misses it (and downloads it again).
	if err := m.pointCurrent(final); err != nil {
		return true, err
	}
	m.removeStale(final)
	return true, nil
}

// swap makes st the process-wide DB. It waits for running scans to finish
// their advisory lookups; new lookups wait for the swap.
func (m *DBManager) swap(st *dbState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.current
	if old != nil {
		if err := trivydb.Close(); err != nil {
			return dbErr("CloseFailed", err)
		}
	}
	opts := trivydb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err := trivydb.Init(st.dir, opts); err != nil {
		if old != nil {
			if rerr := trivydb.Init(old.dir, opts); rerr != nil {
				m.current = nil
				return dbErr("OpenFailed", errors.Join(err, rerr))
			}
		}
		return dbErr("OpenFailed", err)
	}
	m.current = st
	return nil
}

// pointCurrent atomically replaces the current link with one to dir.
func (m *DBManager) pointCurrent(dir string) error {
	tmp := filepath.Join(m.dir, currentLink+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
		return dbErr("CacheUnwritable", err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, currentLink)); err != nil {
		return dbErr("CacheUnwritable", err)
	}
	return nil
}

// removeStale deletes DB directories other than keep; they are closed.
func (m *DBManager) removeStale(keep string) {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(m.dir, e.Name())
		if !e.IsDir() || p == keep || strings.HasPrefix(e.Name(), "download-") {
			continue
		}
		_ = os.RemoveAll(p)
	}
}

func readMetadata(path string) (dbMetadata, error) {
	var meta dbMetadata
	b, err := os.ReadFile(path)
	if err != nil {
		return meta, dbErr("MetadataMissing", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, dbErr("MetadataInvalid", err)
	}
	if meta.Version != trivydb.SchemaVersion {
		return meta, dbErrf("SchemaMismatch", "metadata.json has schema version %d, want %d", meta.Version, trivydb.SchemaVersion)
	}
	if meta.UpdatedAt.IsZero() {
		return meta, dbErrf("MetadataInvalid", "metadata.json has no UpdatedAt")
	}
	return meta, nil
}

// checkBolt opens the bolt file read-only and checks it has the buckets
// every Trivy DB has.
func checkBolt(path string) error {
	bdb, err := bolt.Open(path, 0o444, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return dbErr("DBInvalid", err)
	}
	defer bdb.Close()
	return bdb.View(func(tx *bolt.Tx) error {
		for _, b := range []string{"vulnerability", "data-source"} {
			if tx.Bucket([]byte(b)) == nil {
				return dbErrf("DBInvalid", "bucket %q is missing", b)
			}
		}
		return nil
	})
}
