package controllers

import "sync"

// verdictCache keeps the inventory's verdicts by image and digest, each
// valid for the catalog generation it was made at. It is bounded: when
// full, an eighth of the entries, stale ones first, make room.
type verdictCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedVerdict
}

type cachedVerdict struct {
	gen uint64
	v   verdict
}

func newVerdictCache(max int) *verdictCache {
	return &verdictCache{max: max, m: map[string]cachedVerdict{}}
}

// get returns the verdict on key made at catalog generation gen.
func (c *verdictCache) get(key string, gen uint64) (verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.gen != gen {
		return verdict{}, false
	}
	return e.v, true
}

// put records the verdict on key made at catalog generation gen.
func (c *verdictCache) put(key string, gen uint64, v verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		c.evict(gen)
	}
	c.m[key] = cachedVerdict{gen: gen, v: v}
}

// evict drops stale verdicts, or else an eighth of the entries.
func (c *verdictCache) evict(gen uint64) {
	for k, e := range c.m {
		if e.gen != gen {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max-c.max/8 {
			return
		}
		delete(c.m, k)
	}
}
