package catalog

import (
	"sync"
	"time"
)

// platformChain is the layer chain of one platform manifest of a catalog
// digest.
type platformChain struct {
	base     string   // the catalog digest (an index or an image manifest)
	manifest string   // the platform manifest's digest
	layers   []string // layer digests, bottom first
}

// chainState is what is known of a catalog digest's layers.
type chainState struct {
	chains []*platformChain
	// gone: the registry says the digest does not exist; it has no chain.
	gone bool
}

// chainStore keeps the layer chains of catalog digests, looked up by their
// top layer and by platform manifest digest.
type chainStore struct {
	mu         sync.RWMutex
	loaded     map[string]chainState       // by catalog digest
	failed     map[string]time.Time        // catalog digest -> do not retry before
	byTop      map[string][]*platformChain // by last layer digest
	byManifest map[string]string           // platform manifest digest -> catalog digest
}

func newChainStore() *chainStore {
	return &chainStore{
		loaded:     map[string]chainState{},
		failed:     map[string]time.Time{},
		byTop:      map[string][]*platformChain{},
		byManifest: map[string]string{},
	}
}

// state returns what is known of digest d: loaded, or failed until a time.
func (c *chainStore) state(d string) (loaded bool, retryAt time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if _, ok := c.loaded[d]; ok {
		return true, time.Time{}
	}
	return false, c.failed[d]
}

// put records catalog digest d's chains.
func (c *chainStore) put(d string, st chainState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.loaded[d]; ok {
		return
	}
	c.loaded[d] = st
	delete(c.failed, d)
	for _, pc := range st.chains {
		c.byManifest[pc.manifest] = d
		if len(pc.layers) > 0 {
			top := pc.layers[len(pc.layers)-1]
			c.byTop[top] = append(c.byTop[top], pc)
		}
	}
}

// fail records that d could not be read, not to be retried before until.
func (c *chainStore) fail(d string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed[d] = until
}

// baseOfManifest returns the catalog digest whose platform manifest is m.
func (c *chainStore) baseOfManifest(m string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.byManifest[m]
	return d, ok
}

// longest returns the chains that are the longest prefix of layers (all of
// the same length), or nil.
func (c *chainStore) longest(layers []string) []*platformChain {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i := len(layers) - 1; i >= 0; i-- {
		var found []*platformChain
		for _, pc := range c.byTop[layers[i]] {
			if len(pc.layers) == i+1 && equal(pc.layers, layers[:i+1]) {
				found = append(found, pc)
			}
		}
		if found != nil {
			return found
		}
	}
	return nil
}

// prune forgets the chains of digests that keep does not hold.
func (c *chainStore) prune(keep map[string][]digestRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dropped := false
	for d := range c.loaded {
		if _, ok := keep[d]; !ok {
			delete(c.loaded, d)
			dropped = true
		}
	}
	for d := range c.failed {
		if _, ok := keep[d]; !ok {
			delete(c.failed, d)
		}
	}
	if !dropped {
		return
	}
	c.byTop = map[string][]*platformChain{}
	c.byManifest = map[string]string{}
	for d, st := range c.loaded {
		for _, pc := range st.chains {
			c.byManifest[pc.manifest] = d
			if len(pc.layers) > 0 {
				top := pc.layers[len(pc.layers)-1]
				c.byTop[top] = append(c.byTop[top], pc)
			}
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
