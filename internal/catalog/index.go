package catalog

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/types"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// Entry is what the index keeps of one BaseImage.
type Entry struct {
	// Name is the BaseImage's namespace and name.
	Name types.NamespacedName
	// Image is spec.image.
	Image string
	// Repository is the repository the digests belong to (status.repository,
	// or else spec.image without its tag), with the registry host in lower
	// case.
	Repository string
	// ApprovedDigest is status.approvedDigest: approved by definition.
	ApprovedDigest string
	// ResolvedDigest is status.resolvedDigest.
	ResolvedDigest string
	// History lists the digests of status.history, newest first.
	History []string

	leaf     string // last path element of Repository
	approved string // Image@ApprovedDigest
}

// role is what a digest is to an entry, best first.
type role int

const (
	roleApproved role = iota
	roleResolved
	roleHistory
)

// digestRef is one entry's use of a digest.
type digestRef struct {
	entry *Entry
	role  role
}

// class returns the verdict on an image on this digest.
func (r digestRef) class() Class {
	if r.role == roleApproved {
		return Approved
	}
	return Superseded
}

// reason returns a stable explanation of the verdict.
func (r digestRef) reason() string {
	switch r.role {
	case roleApproved:
		return fmt.Sprintf("on the approved digest of %s", r.entry.Name)
	case roleResolved:
		return fmt.Sprintf("on the current digest of %s, which is not approved", r.entry.Name)
	default:
		return fmt.Sprintf("on an older digest of %s", r.entry.Name)
	}
}

// better reports whether r should be preferred to o for the same image.
func (r digestRef) better(o digestRef) bool {
	if r.role != o.role {
		return r.role < o.role
	}
	return r.entry.Name.String() < o.entry.Name.String()
}

// snapshot is an immutable view of the catalog.
type snapshot struct {
	entries  map[types.NamespacedName]*Entry
	byDigest map[string][]digestRef
	approved []*Entry // entries with an approved digest, by name
}

// Index is an in-memory catalog of BaseImage digests and their layer chains.
// Content changes are atomic: a reader sees the catalog before or after an
// Update, never a mix. Layer chains are kept by digest across updates (a
// digest's layers never change) and dropped when no entry refers to the
// digest any more. It is safe for concurrent use.
type Index struct {
	mu      sync.Mutex // serializes writers
	snap    atomic.Pointer[snapshot]
	chains  *chainStore
	gen     atomic.Uint64
	changed chan struct{} // closed at the next change; guarded by mu
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	ix := &Index{chains: newChainStore(), changed: make(chan struct{})}
	ix.snap.Store(build(nil))
	return ix
}

// Generation counts the changes of the index's content. Two reads that
// return the same generation saw the same catalog, so a verdict computed
// at one generation holds until it moves.
func (ix *Index) Generation() uint64 { return ix.gen.Load() }

// Changed returns a channel that is closed at the next change of the
// index's content, for watchers that re-match what they matched before.
func (ix *Index) Changed() <-chan struct{} {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.changed
}

// EntryFrom returns the index entry for bi. Digests that are not well
// formed are left out.
func EntryFrom(bi *catalogv1.BaseImage) Entry {
	e := Entry{
		Name:           types.NamespacedName{Namespace: bi.Namespace, Name: bi.Name},
		Image:          string(bi.Spec.Image),
		Repository:     normalizeRepository(bi.Status.Repository),
		ApprovedDigest: validDigest(bi.Status.ApprovedDigest),
		ResolvedDigest: validDigest(bi.Status.ResolvedDigest),
	}
	if e.Repository == "" {
		if ref, err := name.ParseReference(e.Image); err == nil {
			e.Repository = repositoryOf(ref.Context())
		}
	}
	e.leaf = path.Base(e.Repository)
	if e.ApprovedDigest != "" {
		e.approved = e.Image + "@" + e.ApprovedDigest
	}
	for _, h := range bi.Status.History {
		if d := validDigest(h.Digest); d != "" {
			e.History = append(e.History, d)
		}
	}
	return e
}

// Update replaces the index's content with bis, atomically: a full list,
// as read from the cluster or from an exported catalog.
func (ix *Index) Update(bis []catalogv1.BaseImage) {
	entries := make(map[types.NamespacedName]*Entry, len(bis))
	for i := range bis {
		e := EntryFrom(&bis[i])
		entries[e.Name] = &e
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.store(build(entries))
}

// Upsert adds or replaces one entry. It copies the catalog, so it costs
// time in proportion to the catalog's size.
func (ix *Index) Upsert(bi *catalogv1.BaseImage) {
	e := EntryFrom(bi)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old, ok := ix.snap.Load().entries[e.Name]; ok && old.equal(&e) {
		// Most status writes leave the digests alone.
		return
	}
	entries := clone(ix.snap.Load().entries)
	entries[e.Name] = &e
	ix.store(build(entries))
}

// Delete removes the entry named n, if present.
func (ix *Index) Delete(n types.NamespacedName) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	cur := ix.snap.Load()
	if _, ok := cur.entries[n]; !ok {
		return
	}
	entries := clone(cur.entries)
	delete(entries, n)
	ix.store(build(entries))
}

// Len returns the number of entries and of distinct catalog digests.
func (ix *Index) Len() (entries, digests int) {
	s := ix.snap.Load()
	return len(s.entries), len(s.byDigest)
}

// Entries returns a copy of the entries, sorted by namespace and name.
func (ix *Index) Entries() []Entry {
	s := ix.snap.Load()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		c := *e
		c.History = slices.Clone(e.History)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name.String(), b.Name.String()) })
	return out
}

func (ix *Index) store(s *snapshot) {
	ix.snap.Store(s)
	ix.chains.prune(s.byDigest)
	ix.gen.Add(1)
	close(ix.changed)
	ix.changed = make(chan struct{})
}

// equal reports whether e and o hold the same catalog content.
func (e *Entry) equal(o *Entry) bool {
	return e.Name == o.Name && e.Image == o.Image && e.Repository == o.Repository &&
		e.ApprovedDigest == o.ApprovedDigest && e.ResolvedDigest == o.ResolvedDigest &&
		slices.Equal(e.History, o.History)
}

func clone(m map[types.NamespacedName]*Entry) map[types.NamespacedName]*Entry {
	out := make(map[types.NamespacedName]*Entry, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func build(entries map[types.NamespacedName]*Entry) *snapshot {
	if entries == nil {
		entries = map[types.NamespacedName]*Entry{}
	}
	s := &snapshot{entries: entries, byDigest: make(map[string][]digestRef, len(entries)*2)}
	add := func(d string, r digestRef) {
		for _, o := range s.byDigest[d] {
			if o.entry == r.entry {
				return // the entry already names d in a better role
			}
		}
		s.byDigest[d] = append(s.byDigest[d], r)
	}
	for _, e := range entries {
		if e.ApprovedDigest != "" {
			add(e.ApprovedDigest, digestRef{e, roleApproved})
			s.approved = append(s.approved, e)
		}
		if e.ResolvedDigest != "" {
			add(e.ResolvedDigest, digestRef{e, roleResolved})
		}
		for _, h := range e.History {
			add(h, digestRef{e, roleHistory})
		}
	}
	for _, refs := range s.byDigest {
		slices.SortFunc(refs, func(a, b digestRef) int {
			if a.better(b) {
				return -1
			}
			if b.better(a) {
				return 1
			}
			return 0
		})
	}
	slices.SortFunc(s.approved, func(a, b *Entry) int { return strings.Compare(a.Name.String(), b.Name.String()) })
	return s
}

// validDigest returns d when it is a well-formed digest, else "".
func validDigest(d string) string {
	if d == "" {
		return ""
	}
	if _, err := name.NewDigest("example.invalid/x@"+d, name.StrictValidation); err != nil {
		return ""
	}
	return d
}

// repositoryOf returns repo's full name with the registry host in lower
// case (host names are case-insensitive; repository paths are lower case
// by the distribution specification).
func repositoryOf(repo name.Repository) string {
	return strings.ToLower(repo.RegistryStr()) + "/" + repo.RepositoryStr()
}

// normalizeRepository lower-cases the registry host of a repository name,
// or returns "" when s does not parse.
func normalizeRepository(s string) string {
	if s == "" {
		return ""
	}
	r, err := name.NewRepository(s)
	if err != nil {
		return ""
	}
	return repositoryOf(r)
}
