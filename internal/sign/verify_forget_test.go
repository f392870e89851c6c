package sign

import (
	"testing"
	"time"
)

func TestForgetDropsEveryVerdictOnAnImage(t *testing.T) {
	c := newResultCache(8)
	now := time.Now()
	a, b := cacheKey{image: "r/a@sha256:1", trust: "x"}, cacheKey{image: "r/b@sha256:2", trust: "x"}
	a2 := cacheKey{image: a.image, trust: "y"}
	for _, k := range []cacheKey{a, a2, b} {
		c.put(k, Result{Outcome: OutcomeSignatureMissing}, now.Add(time.Hour))
	}
	c.forget(a.image)
	for _, k := range []cacheKey{a, a2} {
		if _, ok := c.get(k, now); ok {
			t.Errorf("%v still cached", k)
		}
	}
	if _, ok := c.get(b, now); !ok {
		t.Error("another image's verdict was dropped")
	}
}
