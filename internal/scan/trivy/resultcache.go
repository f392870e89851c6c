package trivy

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/plinth-dev/plinth/internal/scan"
)

// resultCache keeps reports by (digest, platforms, DB version): the most
// recent ones in memory (bounded in count and bytes), all of the current DB
// version on disk as one JSON
// file each, so a restart under an unchanged DB rescans nothing. Reports of
// other DB versions are dropped when a report of a new version is stored.
type resultCache struct {
	dir      string
	maxMem   int
	maxBytes int64

	mu      sync.Mutex
	lru     *list.List // of *memEntry, most recent first
	byKey   map[string]*list.Element
	bytes   int64  // approximate size of the reports in memory
	version string // DB version of the last stored report
}

type memEntry struct {
	key    string
	report *scan.Report
}

func newResultCache(dir string, maxMem int, maxBytes int64) (*resultCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &resultCache{dir: dir, maxMem: maxMem, maxBytes: maxBytes, lru: list.New(), byKey: map[string]*list.Element{}}, nil
}

// reportSize approximates the memory a report holds.
func reportSize(r *scan.Report) int64 {
	return int64(len(r.SBOM)) + int64(len(r.Findings))*256 + 256
}

// cacheKey names a report; platforms must be the normalised request filter.
func cacheKey(digest string, platforms []string, dbVersion string) string {
	return digest + "|" + strings.Join(platforms, ",") + "|" + dbVersion
}

func versionDir(dbVersion string) string {
	sum := sha256.Sum256([]byte(dbVersion))
	return "db-" + hex.EncodeToString(sum[:8])
}

func (c *resultCache) path(key, dbVersion string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, versionDir(dbVersion), hex.EncodeToString(sum[:])+".json")
}

// get returns a copy of the cached report and whether it came from disk.
func (c *resultCache) get(key, dbVersion string) (*scan.Report, bool, bool) {
	c.mu.Lock()
	if el, ok := c.byKey[key]; ok {
		c.lru.MoveToFront(el)
		r := el.Value.(*memEntry).report
		c.mu.Unlock()
		return cloneReport(r), false, true
	}
	c.mu.Unlock()

	b, err := os.ReadFile(c.path(key, dbVersion))
	if err != nil {
		return nil, false, false
	}
	var r scan.Report
	if err := json.Unmarshal(b, &r); err != nil || r.DBVersion != dbVersion {
		return nil, false, false
	}
	c.remember(key, &r)
	return cloneReport(&r), true, true
}

func (c *resultCache) put(key string, r *scan.Report) error {
	c.remember(key, cloneReport(r))
	c.mu.Lock()
	newVersion := c.version != r.DBVersion
	c.version = r.DBVersion
	c.mu.Unlock()
	if newVersion {
		c.dropOtherVersions(r.DBVersion)
	}

	p := c.path(key, r.DBVersion)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_, err := writeJSONAtomic(p, r)
	return err
}

func (c *resultCache) remember(key string, r *scan.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*memEntry)
		c.bytes += reportSize(r) - reportSize(e.report)
		e.report = r
		c.lru.MoveToFront(el)
	} else {
		c.byKey[key] = c.lru.PushFront(&memEntry{key: key, report: r})
		c.bytes += reportSize(r)
	}
	for c.lru.Len() > 1 && (c.lru.Len() > c.maxMem || c.bytes > c.maxBytes) {
		c.removeLocked(c.lru.Back())
	}
}

func (c *resultCache) removeLocked(el *list.Element) {
	e := el.Value.(*memEntry)
	c.lru.Remove(el)
	delete(c.byKey, e.key)
	c.bytes -= reportSize(e.report)
}

// dropOtherVersions forgets reports made under DB versions other than v.
func (c *resultCache) dropOtherVersions(v string) {
	c.mu.Lock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*memEntry)
		if e.report.DBVersion != v {
			c.removeLocked(el)
		}
		el = next
	}
	c.mu.Unlock()
	keep := versionDir(v)
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if de.IsDir() && de.Name() != keep && strings.HasPrefix(de.Name(), "db-") {
			_ = os.RemoveAll(filepath.Join(c.dir, de.Name()))
		}
	}
}

func cloneReport(r *scan.Report) *scan.Report {
	out := *r
	out.Findings = make([]scan.Finding, len(r.Findings))
	for i, f := range r.Findings {
		f.Platforms = append([]string(nil), f.Platforms...)
		out.Findings[i] = f
	}
	out.SBOM = append([]byte(nil), r.SBOM...)
	out.Platforms = append([]string(nil), r.Platforms...)
	return &out
}
