package trivy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aquasecurity/trivy/pkg/cache"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
)

// layerCache is Trivy's analysis cache kept on disk as one JSON file per
// key: per layer (keyed by diffID and analyser versions) the packages and
// OS found in it, per image config the config analysis. The total size is
// bounded: when a write takes it over maxBytes, the least recently used
// entries go, except those used within the last grace period, so a scan
// never loses the entries it has just written before it reads them back.
type layerCache struct {
	dir      string
	maxBytes int64
	grace    time.Duration
	now      func() time.Time
	// salt goes in front of every key: settings of plinth's own
	// analysers that Trivy's keys do not cover.
	salt string

	mu      sync.Mutex
	size    int64
	entries map[string]*cacheEntry // file name → entry
}

type cacheEntry struct {
	size int64
	used time.Time
}

var _ cache.Cache = (*layerCache)(nil)

const (
	blobPrefix     = "blob-"
	artifactPrefix = "artifact-"
)

func newLayerCache(dir string, maxBytes int64, now func() time.Time) (*layerCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating layer cache directory: %w", err)
	}
	c := &layerCache{dir: dir, maxBytes: maxBytes, grace: 10 * time.Minute, now: now, entries: map[string]*cacheEntry{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading layer cache directory: %w", err)
	}
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		if strings.HasPrefix(de.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(dir, de.Name()))
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		c.entries[de.Name()] = &cacheEntry{size: info.Size(), used: info.ModTime()}
		c.size += info.Size()
	}
	return c, nil
}

func (c *layerCache) fileKey(prefix, key string) string {
	return prefix + strings.NewReplacer(":", "-", "/", "_").Replace(c.salt+key) + ".json"
}

// setMax changes the bound and evicts to fit it.
func (c *layerCache) setMax(n int64) {
	c.mu.Lock()
	c.maxBytes = n
	c.mu.Unlock()
	c.evict()
}

// Size is the number of bytes the cache holds.
func (c *layerCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *layerCache) has(file string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[file]
	return ok
}

func (c *layerCache) read(file string, v any) error {
	b, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		c.forget(file)
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.forget(file)
		_ = os.Remove(filepath.Join(c.dir, file))
		return err
	}
	c.touch(file)
	return nil
}

func (c *layerCache) touch(file string) {
	now := c.now()
	c.mu.Lock()
	if e, ok := c.entries[file]; ok {
		e.used = now
	}
	c.mu.Unlock()
	_ = os.Chtimes(filepath.Join(c.dir, file), now, now)
}

func (c *layerCache) forget(file string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[file]; ok {
		c.size -= e.size
		delete(c.entries, file)
	}
}

func (c *layerCache) write(file string, v any) error {
	n, err := writeJSONAtomic(filepath.Join(c.dir, file), v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if old, ok := c.entries[file]; ok {
		c.size -= old.size
	}
	c.entries[file] = &cacheEntry{size: n, used: c.now()}
	c.size += n
	c.mu.Unlock()
	c.evict()
	return nil
}

// evict removes least recently used entries until the cache fits.
func (c *layerCache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxBytes <= 0 || c.size <= c.maxBytes {
		return
	}
	type kv struct {
		file string
		e    *cacheEntry
	}
	all := make([]kv, 0, len(c.entries))
	for f, e := range c.entries {
		all = append(all, kv{f, e})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].e.used.Before(all[j].e.used) })
	cutoff := c.now().Add(-c.grace)
	for _, x := range all {
		if c.size <= c.maxBytes {
			return
		}
		if x.e.used.After(cutoff) {
			return
		}
		if err := os.Remove(filepath.Join(c.dir, x.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			continue
		}
		c.size -= x.e.size
		delete(c.entries, x.file)
	}
}

// MissingBlobs implements cache.ArtifactCache.
func (c *layerCache) MissingBlobs(_ context.Context, artifactID string, blobIDs []string) (bool, []string, error) {
	var missing []string
	for _, id := range blobIDs {
		var bi ftypes.BlobInfo
		if err := c.getIfPresent(c.fileKey(blobPrefix, id), &bi); err != nil || bi.SchemaVersion != ftypes.BlobJSONSchemaVersion {
			missing = append(missing, id)
		}
	}
	var ai ftypes.ArtifactInfo
	missingArtifact := c.getIfPresent(c.fileKey(artifactPrefix, artifactID), &ai) != nil || ai.SchemaVersion != ftypes.ArtifactJSONSchemaVersion
	return missingArtifact, missing, nil
}

func (c *layerCache) getIfPresent(file string, v any) error {
	if !c.has(file) {
		return os.ErrNotExist
	}
	return c.read(file, v)
}

// PutArtifact implements cache.ArtifactCache.
func (c *layerCache) PutArtifact(_ context.Context, artifactID string, info ftypes.ArtifactInfo) error {
	return c.write(c.fileKey(artifactPrefix, artifactID), info)
}

// PutBlob implements cache.ArtifactCache.
func (c *layerCache) PutBlob(_ context.Context, blobID string, info ftypes.BlobInfo) error {
	return c.write(c.fileKey(blobPrefix, blobID), info)
}

// DeleteBlobs implements cache.ArtifactCache.
func (c *layerCache) DeleteBlobs(_ context.Context, blobIDs []string) error {
	for _, id := range blobIDs {
		f := c.fileKey(blobPrefix, id)
		c.forget(f)
		_ = os.Remove(filepath.Join(c.dir, f))
	}
	return nil
}

// GetArtifact implements cache.LocalArtifactCache.
func (c *layerCache) GetArtifact(_ context.Context, artifactID string) (ftypes.ArtifactInfo, error) {
	var ai ftypes.ArtifactInfo
	if err := c.getIfPresent(c.fileKey(artifactPrefix, artifactID), &ai); err != nil {
		return ftypes.ArtifactInfo{}, fmt.Errorf("artifact %s not in the layer cache: %w", artifactID, err)
	}
	return ai, nil
}

// GetBlob implements cache.LocalArtifactCache.
func (c *layerCache) GetBlob(_ context.Context, blobID string) (ftypes.BlobInfo, error) {
	var bi ftypes.BlobInfo
	if err := c.getIfPresent(c.fileKey(blobPrefix, blobID), &bi); err != nil {
		return ftypes.BlobInfo{}, fmt.Errorf("layer %s not in the layer cache: %w", blobID, err)
	}
	return bi, nil
}

// Close implements cache.LocalArtifactCache.
func (c *layerCache) Close() error { return nil }

// Clear implements cache.LocalArtifactCache.
func (c *layerCache) Clear(_ context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f := range c.entries {
		_ = os.Remove(filepath.Join(c.dir, f))
	}
	c.entries = map[string]*cacheEntry{}
	c.size = 0
	return nil
}

// holds tells whether the analysis of an image (its artifact and every
// layer) is in the cache, without reading it.
func (c *layerCache) holds(artifactID string, blobIDs []string) bool {
	if !c.has(c.fileKey(artifactPrefix, artifactID)) {
		return false
	}
	for _, id := range blobIDs {
		if !c.has(c.fileKey(blobPrefix, id)) {
			return false
		}
	}
	return true
}
