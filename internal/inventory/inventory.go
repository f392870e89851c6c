// Package inventory keeps what runs on the catalog: for every Pod, the
// class of the base of each of its containers (approved, superseded,
// unapproved or unknown) and the catalog entry it is built on. It holds
// no Kubernetes client: the inventory controller fills it, and the
// metrics and the consumer counts of the BaseImages read it.
package inventory

import (
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plinth-dev/plinth/internal/catalog"
)

// Classes lists every class, in the order metrics report them.
var Classes = []catalog.Class{catalog.Approved, catalog.Superseded, catalog.Unapproved, catalog.Unknown}

// Label returns the metric label value of a class: its name in lower case.
func Label(c catalog.Class) string { return strings.ToLower(string(c)) }

// Container is the verdict on one container of a Pod.
type Container struct {
	// Name is the container's name.
	Name string
	// Class is the class of its base.
	Class catalog.Class
	// Base names the catalog entry it is built on; zero when none.
	Base types.NamespacedName
}

// ClassCounts counts containers by class.
type ClassCounts map[catalog.Class]int

// Total returns the number of containers of every class.
func (c ClassCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Consumers counts the containers built on one catalog entry.
type Consumers struct {
	// Pods is the number of Pods with at least one such container.
	Pods int
	// Namespaces is the number of namespaces of those Pods.
	Namespaces int
	// Containers is the number of such containers.
	Containers int
	// Superseded is the number of those containers on a digest of the
	// entry that is not approved now.
	Superseded int
	// ByClass counts the containers by class (Approved or Superseded).
	ByClass ClassCounts
}

// Summary is the inventory at one moment.
type Summary struct {
	// Cluster counts every container by class.
	Cluster ClassCounts
	// Namespaces counts containers by namespace and class.
	Namespaces map[string]ClassCounts
	// Bases counts the consumers of each catalog entry that has any.
	Bases map[types.NamespacedName]*Consumers
}

// Store is the inventory: the containers of each Pod. It is safe for
// concurrent use.
type Store struct {
	mu   sync.RWMutex
	pods map[types.NamespacedName][]Container
}

// NewStore returns an empty inventory.
func NewStore() *Store {
	return &Store{pods: map[types.NamespacedName][]Container{}}
}

// Set records the containers of a Pod, replacing what was known of it.
// It reports whether anything changed.
func (s *Store) Set(pod types.NamespacedName, containers []Container) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pods[pod]; ok && equal(old, containers) {
		return false
	}
	s.pods[pod] = containers
	return true
}

// Delete forgets a Pod.
func (s *Store) Delete(pod types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pods, pod)
}

// Pods returns the names of the Pods the inventory holds, sorted.
func (s *Store) Pods() []types.NamespacedName {
	s.mu.RLock()
	out := make([]types.NamespacedName, 0, len(s.pods))
	for k := range s.pods {
		out = append(out, k)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Summary counts the containers by class, per namespace and per catalog
// entry. It walks the whole inventory; callers read it at a scrape or a
// batch, not per Pod event.
func (s *Store) Summary() Summary {
	sum := Summary{
		Cluster:    ClassCounts{},
		Namespaces: map[string]ClassCounts{},
		Bases:      map[types.NamespacedName]*Consumers{},
	}
	type baseNS struct {
		base types.NamespacedName
		ns   string
	}
	seenNS := map[baseNS]bool{}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for pod, cs := range s.pods {
		ns := sum.Namespaces[pod.Namespace]
		if ns == nil {
			ns = ClassCounts{}
			sum.Namespaces[pod.Namespace] = ns
		}
		var counted []types.NamespacedName // bases this Pod already counts for
		for _, c := range cs {
			sum.Cluster[c.Class]++
			ns[c.Class]++
			if c.Base.Name == "" {
				continue
			}
			b := sum.Bases[c.Base]
			if b == nil {
				b = &Consumers{ByClass: ClassCounts{}}
				sum.Bases[c.Base] = b
			}
			b.Containers++
			b.ByClass[c.Class]++
			if c.Class == catalog.Superseded {
				b.Superseded++
			}
			if !contains(counted, c.Base) {
				counted = append(counted, c.Base)
				b.Pods++
				if k := (baseNS{c.Base, pod.Namespace}); !seenNS[k] {
					seenNS[k] = true
					b.Namespaces++
				}
			}
		}
	}
	return sum
}

func contains(l []types.NamespacedName, n types.NamespacedName) bool {
	for _, v := range l {
		if v == n {
			return true
		}
	}
	return false
}

func equal(a, b []Container) bool {
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
