package catalog

import (
	"container/list"
	"sync"
	"time"
)

// lru is a cache bounded both in entries and in bytes (as estimated by the
// caller); the least recently used entries go first. An entry may expire.
// It is safe for concurrent use.
type lru[V any] struct {
	maxEntries int
	maxBytes   int64

	mu    sync.Mutex
	bytes int64
	ll    *list.List
	items map[string]*list.Element
}

type lruItem[V any] struct {
	key     string
	value   V
	size    int64
	expires time.Time // zero: never
}

func newLRU[V any](maxEntries int, maxBytes int64) *lru[V] {
	return &lru[V]{maxEntries: maxEntries, maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the value for key, unless absent or expired at now.
func (c *lru[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	e, ok := c.items[key]
	if !ok {
		return zero, false
	}
	it := e.Value.(*lruItem[V])
	if !it.expires.IsZero() && !now.Before(it.expires) {
		c.remove(e)
		return zero, false
	}
	c.ll.MoveToFront(e)
	return it.value, true
}

// add stores value under key with the given size; a zero expires never
// expires. A value larger than the whole budget is not stored.
func (c *lru[V]) add(key string, value V, size int64, expires time.Time) {
	size += int64(len(key)) + 64
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.remove(e)
	}
	c.items[key] = c.ll.PushFront(&lruItem[V]{key: key, value: value, size: size, expires: expires})
	c.bytes += size
	for c.ll.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.ll.Back())
	}
}

func (c *lru[V]) remove(e *list.Element) {
	it := e.Value.(*lruItem[V])
	c.ll.Remove(e)
	delete(c.items, it.key)
	c.bytes -= it.size
}

// len returns the number of entries and their estimated bytes.
func (c *lru[V]) len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}
