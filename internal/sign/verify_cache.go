package sign

import (
	"container/list"
	"sync"
	"time"
)

// resultCache is a bounded least-recently-used map of verdicts with an
// expiry per entry. It is safe for concurrent use.
type resultCache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // front: most recently used; values are *cacheEntry
	entries map[cacheKey]*list.Element
}

type cacheKey struct {
	image string // repository@digest: signatures live next to the image
	trust string // Trust.Hash
}

type cacheEntry struct {
	key     cacheKey
	result  Result
	expires time.Time
}

func newResultCache(size int) *resultCache {
	return &resultCache{size: size, order: list.New(), entries: map[cacheKey]*list.Element{}}
}

// get returns the verdict for k unless it is absent or expired at now.
func (c *resultCache) get(k cacheKey, now time.Time) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, k)
		return Result{}, false
	}
	c.order.MoveToFront(el)
	return e.result, true
}

// put stores r for k until expires, evicting the least recently used entry
// when the cache is full.
func (c *resultCache) put(k cacheKey, r Result, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		e.result, e.expires = r, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[k] = c.order.PushFront(&cacheEntry{key: k, result: r, expires: expires})
}

// forget drops every verdict on image, whatever the trust.
func (c *resultCache) forget(image string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, el := range c.entries {
		if k.image == image {
			c.order.Remove(el)
			delete(c.entries, k)
		}
	}
}

// len returns the number of entries, expired ones included.
func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
