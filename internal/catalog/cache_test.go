package catalog

import (
	"fmt"
	"testing"
	"time"
)

func TestLRUBoundedByCountAndBytes(t *testing.T) {
	now := time.Now()
	c := newLRU[string](3, 1<<20)
	for i := range 5 {
		c.add(fmt.Sprint(i), "v", 1, time.Time{})
	}
	if n, _ := c.len(); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	if _, ok := c.get("0", now); ok {
		t.Error("the oldest entry is still cached")
	}
	if _, ok := c.get("4", now); !ok {
		t.Error("the newest entry is gone")
	}

	c = newLRU[string](100, 1000)
	c.add("a", "v", 400, time.Time{})
	c.add("b", "v", 400, time.Time{})
	c.get("a", now) // a is now the most recently used
	c.add("c", "v", 400, time.Time{})
	if _, b := c.len(); b > 1000 {
		t.Errorf("%d bytes kept, over the 1000 allowed", b)
	}
	if _, ok := c.get("b", now); ok {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := c.get("a", now); !ok {
		t.Error("a recently used entry was dropped")
	}
	c.add("huge", "v", 5000, time.Time{})
	if _, ok := c.get("huge", now); ok {
		t.Error("an entry larger than the budget was stored")
	}
}

func TestLRUExpiry(t *testing.T) {
	now := time.Now()
	c := newLRU[string](10, 1<<20)
	c.add("tag", "sha256:x", 8, now.Add(time.Minute))
	if _, ok := c.get("tag", now.Add(59*time.Second)); !ok {
		t.Error("entry expired early")
	}
	if _, ok := c.get("tag", now.Add(time.Minute)); ok {
		t.Error("entry outlived its expiry")
	}
}
