package trivy

import (
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

	mu      sync.Mutex
	reports *memLRU[*scan.Report]
	// Analyses of digests, which hold for every DB version: the most
	// recent in memory, bounded like the reports, and on disk, within the
	// reports' bound.
	analyses *memLRU[*analysis]

	// diskMu serialises changes to the files, and guards what follows.
	diskMu    sync.Mutex
	version   string // DB version whose reports are on disk
	diskMax   int64  // <= 0: unbounded
	diskBytes int64
	files     map[string]diskEntry // path → entry, of version's directory
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
		reports:  newMemLRU(maxMem, maxBytes, reportSize),
		analyses: newMemLRU(maxMem, maxBytes, analysisSize),
		files:    map[string]diskEntry{}}, nil
}

// analysisDir holds the analyses, apart from the reports of each DB
// version.
const analysisDir = "analysis"

// analysisKey names the analysis of a digest; platforms must be the
// normalised request filter.
func analysisKey(digest string, platforms []string) string {
	return fmt.Sprintf("a1|s%d|%s|%s", maxSecretFileSize.Load(), digest, strings.Join(platforms, ","))
}

func (c *resultCache) analysisPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, analysisDir, hex.EncodeToString(sum[:])+".json")
}

// getAnalysis returns the analysis stored under key. It is shared: callers
// do not change it.
func (c *resultCache) getAnalysis(key string) (*analysis, bool) {
	c.mu.Lock()
	a, ok := c.analyses.get(key)
	c.mu.Unlock()
	if ok {
		return a, true
	}
	b, err := os.ReadFile(c.analysisPath(key))
	if err != nil {
		return nil, false
	}
	a = &analysis{}
	if err := json.Unmarshal(b, a); err != nil || len(a.Platforms) == 0 {
		return nil, false
	}
	c.rememberAnalysis(key, a)
	return a, true
}

// putAnalysis stores a, in memory and on disk.
func (c *resultCache) putAnalysis(key string, a *analysis) error {
	c.rememberAnalysis(key, a)
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	p := c.analysisPath(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	n, err := writeJSONAtomic(p, a)
	if err != nil {
		return err
	}
	c.diskBytes += n - c.files[p].size
	c.files[p] = diskEntry{size: n, written: time.Now()}
	c.pruneLocked()
	return nil
}

func (c *resultCache) rememberAnalysis(key string, a *analysis) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.analyses.put(key, a)
}

// reportSize approximates the memory a report holds.
func reportSize(r *scan.Report) int64 {
	return int64(len(r.SBOM)) + int64(len(r.Findings))*256 + 256
}

// reportSchema changes whenever a report gains facts, so that reports
// persisted by an older plinth, which lack them, are never read.
const reportSchema = "r3"

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
// A report on disk holds no SBOM: it is its digest's analysis's, stored
// once for every DB version, under akey.
func (c *resultCache) get(key, akey, dbVersion string) (*scan.Report, bool, bool) {
	c.mu.Lock()
	mem, ok := c.reports.get(key)
	c.mu.Unlock()
	if ok {
		return cloneReport(mem), false, true
	}

	b, err := os.ReadFile(c.path(key, dbVersion))
	if err != nil {
		return nil, false, false
	}
	var r scan.Report
	if err := json.Unmarshal(b, &r); err != nil || r.DBVersion != dbVersion {
		return nil, false, false
	}
	a, ok := c.getAnalysis(akey)
	if !ok {
		return nil, false, false
	}
	r.SBOM = a.SBOM
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
	onDisk := *r
	onDisk.SBOM = nil
	n, err := writeJSONAtomic(p, &onDisk)
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
	// Index the reports of v, and the analyses, a previous process left.
	c.files, c.diskBytes = map[string]diskEntry{}, 0
	for _, sub := range []string{versionDir(v), analysisDir} {
		c.indexLocked(filepath.Join(c.dir, sub))
	}
}

// indexLocked adds the files of dir to the index.
func (c *resultCache) indexLocked(dir string) {
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
	c.reports.put(key, r)
}

// dropOtherVersions forgets reports made under DB versions other than v.
func (c *resultCache) dropOtherVersions(v string) {
	c.mu.Lock()
	c.reports.removeIf(func(r *scan.Report) bool { return r.DBVersion != v })
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
