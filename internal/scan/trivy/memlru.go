package trivy

import "container/list"

// memLRU keeps the most recently used values by key, bounded in count and
// in approximate bytes (size tells a value's); the most recent one is kept
// whatever its size. It is not safe for concurrent use: its owner guards
// it.
type memLRU[V any] struct {
	maxLen   int
	maxBytes int64
	size     func(V) int64

	lru   *list.List // of *lruEntry[V], most recent first
	byKey map[string]*list.Element
	bytes int64
}

type lruEntry[V any] struct {
	key   string
	value V
}

func newMemLRU[V any](maxLen int, maxBytes int64, size func(V) int64) *memLRU[V] {
	return &memLRU[V]{maxLen: maxLen, maxBytes: maxBytes, size: size, lru: list.New(), byKey: map[string]*list.Element{}}
}

// get returns the value of key and makes it the most recent.
func (l *memLRU[V]) get(key string) (V, bool) {
	el, ok := l.byKey[key]
	if !ok {
		var zero V
		return zero, false
	}
	l.lru.MoveToFront(el)
	return el.Value.(*lruEntry[V]).value, true
}

// put sets the value of key, makes it the most recent and drops the least
// recent ones past the bounds.
func (l *memLRU[V]) put(key string, v V) {
	if el, ok := l.byKey[key]; ok {
		e := el.Value.(*lruEntry[V])
		l.bytes += l.size(v) - l.size(e.value)
		e.value = v
		l.lru.MoveToFront(el)
	} else {
		l.byKey[key] = l.lru.PushFront(&lruEntry[V]{key: key, value: v})
		l.bytes += l.size(v)
	}
	for l.lru.Len() > 1 && (l.lru.Len() > l.maxLen || l.bytes > l.maxBytes) {
		l.remove(l.lru.Back())
	}
}

// removeIf drops the values for which drop is true.
func (l *memLRU[V]) removeIf(drop func(V) bool) {
	for el := l.lru.Front(); el != nil; {
		next := el.Next()
		if drop(el.Value.(*lruEntry[V]).value) {
			l.remove(el)
		}
		el = next
	}
}

// len is the number of values held.
func (l *memLRU[V]) len() int { return l.lru.Len() }

func (l *memLRU[V]) remove(el *list.Element) {
	e := el.Value.(*lruEntry[V])
	l.lru.Remove(el)
	delete(l.byKey, e.key)
	l.bytes -= l.size(e.value)
}
