package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	"github.com/plinth-dev/plinth/internal/sign"
)

// maxCachedKeys bounds the cache of parsed catalog keys; when it is full
// the cache starts over.
const maxCachedKeys = 64

// keyCache holds parsed catalog keys by the content of their Secret.
// Decrypting a cosign key runs scrypt, which takes a large part of a
// second of CPU; the Secret is read at every reconcile of a signed entry
// (so that a rotated key is used at once), and an unchanged one is not
// decrypted again. The zero value is ready to use.
type keyCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*sign.Key
}

// load returns the key of a Secret's data, parsing it only when no Secret
// with the same data was parsed before.
func (c *keyCache) load(data map[string][]byte) (*sign.Key, error) {
	id := dataID(data)
	c.mu.Lock()
	k, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := sign.LoadKey(data, nil)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = map[[sha256.Size]byte]*sign.Key{}
	}
	c.m[id] = k
	return k, nil
}

// dataID hashes a Secret's data: every entry, name and value, in name
// order, each prefixed by its length.
func dataID(data map[string][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, name := range slices.Sorted(maps.Keys(data)) {
		for _, b := range [][]byte{[]byte(name), data[name]} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}
