package trivy

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plinth-dev/plinth/internal/scan"
)

// resultCache keeps reports by (digest, platforms, DB version): the most
// recent ones in memory (bounded in count and bytes), and those of the
// current DB version on disk as one JSON file each (bounded in bytes,
// oldest deleted first), so a restart under an unchanged DB rescans
// nothing.
//
// Only reports of the current DB version are stored. When the DB version
// changes, the reports of every other version are dropped; a report of
// another version (a scan that began before a swap and ended after it) is
// handed to its callers but never stored, so it cannot evict the reports
// of the current version.
type resultCache struct {
	dir      string
	maxMem   int
	maxBytes int64
	current  func() string // the DB version in use

	mu    sync.Mutex
	lru   *list.List // of *memEntry, most recent first
	byKey map[string]*list.Element
	bytes int64 // approximate size of the reports in memory

	// diskMu serialises changes to the files, and guards what follows.
	diskMu    sync.Mutex
	version   string // DB version whose reports are on disk
	diskMax   int64  // <= 0: unbounded
	diskBytes int64
	files     map[string]diskEntry // path → entry, of version's directory
}

type memEntry struct {
	key    string
	report *scan.Report
}

type diskEntry struct {
	size    int64
	written time.Time
}

func newResultCache(dir string, maxMem int, maxBytes int64, current func() string) (*resultCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &resultCache{dir: dir, maxMem: maxMem, maxBytes: maxBytes, current: current,
		lru: list.New(), byKey: map[string]*list.Element{}, files: map[string]diskEntry{}}, nil
}

// reportSize approximates the memory a report holds.
func reportSize(r *scan.Report) int64 {
	return int64(len(r.SBOM)) + int64(len(r.Findings))*256 + 256
}

// reportSchema changes whenever a report gains facts, so that reports
// persisted by an older plinth, which lack them, are never read.
const reportSchema = "r2"

// cacheKey names a report; platforms must be the normalised request
// filter. The secret scanner's size limit is part of it: a report made
// under another limit says other things.
func cacheKey(digest string, platforms []string, dbVersion string) string {
	return fmt.Sprintf("%s|s%d|%s|%s|%s", reportSchema, maxSecretFileSize.Load(), digest, strings.Join(platforms, ","), dbVersion)
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

// put stores r if it was made under the current DB version, and reports
// whether it did.
func (c *resultCache) put(key string, r *scan.Report) (bool, error) {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	if r.DBVersion == "" || r.DBVersion != c.current() {
		return false, nil
	}
	c.setVersionLocked(r.DBVersion)
	c.remember(key, cloneReport(r))

	p := c.path(key, r.DBVersion)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	n, err := writeJSONAtomic(p, r)
	if err != nil {
		return false, err
	}
	c.diskBytes += n - c.files[p].size
	c.files[p] = diskEntry{size: n, written: time.Now()}
	c.pruneLocked()
	return true, nil
}

// setVersion makes v the DB version whose reports are kept; the reports
// of every other version are deleted.
func (c *resultCache) setVersion(v string) {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	c.setVersionLocked(v)
	c.pruneLocked()
}

// setDiskMax bounds the bytes of reports on disk.
func (c *resultCache) setDiskMax(n int64) {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	c.diskMax = n
	c.pruneLocked()
}

// diskSize is the bytes of reports on disk.
func (c *resultCache) diskSize() int64 {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	return c.diskBytes
}

func (c *resultCache) setVersionLocked(v string) {
	if v == c.version {
		return
	}
	c.version = v
	c.dropOtherVersions(v)
	// Index the reports of v a previous process left.
	c.files, c.diskBytes = map[string]diskEntry{}, 0
	dir := filepath.Join(c.dir, versionDir(v))
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		info, err := de.Info()
		if err != nil || de.IsDir() {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if strings.HasPrefix(de.Name(), ".tmp") {
			_ = os.Remove(p)
			continue
		}
		c.files[p] = diskEntry{size: info.Size(), written: info.ModTime()}
		c.diskBytes += info.Size()
	}
}

// pruneLocked deletes the oldest reports until the rest fit diskMax.
func (c *resultCache) pruneLocked() {
	if c.diskMax <= 0 || c.diskBytes <= c.diskMax {
		return
	}
	paths := make([]string, 0, len(c.files))
	for p := range c.files {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		if d := c.files[a].written.Compare(c.files[b].written); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, p := range paths {
		if c.diskBytes <= c.diskMax {
			break
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			continue
		}
		c.diskBytes -= c.files[p].size
		delete(c.files, p)
	}
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
