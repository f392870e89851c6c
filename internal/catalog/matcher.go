package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"

	"github.com/plinth-dev/plinth/internal/registry"
)

// Defaults applied to zero Options fields.
const (
	DefaultMaxCachedManifests = 20000
	DefaultMaxCacheBytes      = 32 << 20
	DefaultTagTTL             = time.Minute
	DefaultFetchTimeout       = 30 * time.Second
	DefaultRetryFailedAfter   = time.Minute
	DefaultConcurrency        = 8
)

var timeZero time.Time

// Options configures a Matcher.
type Options struct {
	// Client reads registries; its transport applies the per-host rate
	// limit, timeouts and Retry-After. Required.
	Client *registry.Client
	// ImageAccess returns how to reach the registry of an image being
	// matched. Nil means anonymous access.
	ImageAccess func(repo name.Repository) registry.Access
	// EntryAccess returns how to reach the registry of a catalog entry
	// (its pull secret). Nil means anonymous access.
	EntryAccess func(e Entry) registry.Access
	// MaxCachedManifests bounds the number of manifests kept. Default
	// DefaultMaxCachedManifests.
	MaxCachedManifests int
	// MaxCacheBytes bounds the estimated bytes of the manifests kept.
	// Default DefaultMaxCacheBytes.
	MaxCacheBytes int64
	// TagTTL is how long a tag's digest is trusted. Default DefaultTagTTL.
	TagTTL time.Duration
	// FetchTimeout bounds one registry read, whatever the callers'
	// deadlines. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// RetryFailedAfter is how long a catalog digest that could not be read
	// is not read again. Default DefaultRetryFailedAfter.
	RetryFailedAfter time.Duration
	// Concurrency bounds the catalog digests read at once. Default
	// DefaultConcurrency.
	Concurrency int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Matcher classifies images against an Index. It is safe for concurrent
// use.
type Matcher struct {
	index        *Index
	client       *registry.Client
	imageAccess  func(name.Repository) registry.Access
	entryAccess  func(Entry) registry.Access
	tagTTL       time.Duration
	fetchTimeout time.Duration
	retryFailed  time.Duration
	concurrency  int
	now          func() time.Time

	manifests *lru[*manifestInfo]
	tags      *lru[string]
	flight    singleflight.Group
}

// NewMatcher returns a Matcher of images against ix.
func NewMatcher(ix *Index, o Options) (*Matcher, error) {
	if ix == nil || o.Client == nil {
		return nil, errors.New("catalog matcher needs an index and a registry client")
	}
	m := &Matcher{
		index:        ix,
		client:       o.Client,
		imageAccess:  o.ImageAccess,
		entryAccess:  o.EntryAccess,
		tagTTL:       positiveOr(o.TagTTL, DefaultTagTTL),
		fetchTimeout: positiveOr(o.FetchTimeout, DefaultFetchTimeout),
		retryFailed:  positiveOr(o.RetryFailedAfter, DefaultRetryFailedAfter),
		concurrency:  positiveOr(o.Concurrency, DefaultConcurrency),
		now:          o.Now,
	}
	if m.imageAccess == nil {
		m.imageAccess = func(name.Repository) registry.Access { return registry.Access{} }
	}
	if m.entryAccess == nil {
		m.entryAccess = func(Entry) registry.Access { return registry.Access{} }
	}
	if m.now == nil {
		m.now = time.Now
	}
	maxBytes := positiveOr(o.MaxCacheBytes, DefaultMaxCacheBytes)
	m.manifests = newLRU[*manifestInfo](positiveOr(o.MaxCachedManifests, DefaultMaxCachedManifests), maxBytes)
	m.tags = newLRU[string](positiveOr(o.MaxCachedManifests, DefaultMaxCachedManifests), maxBytes/8)
	return m, nil
}

func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// ParseImage parses an image reference as a container runtime would
// (docker.io and library/ are implied; a registry host may be written in
// any case). Repository paths must be lower case; a reference with both a
// tag and a digest keeps the digest.
func ParseImage(image string) (name.Reference, error) {
	image = strings.TrimSpace(image)
	if image == "" {
		return nil, errors.New("empty image reference")
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: repository paths must be lower case, tags at most 128 characters of [A-Za-z0-9_.-], digests algorithm:hex", truncate(image, 256))
	}
	return ref, nil
}

// Match classifies image (a reference string, see ParseImage). digest, when
// not empty, is the image's digest as already known (for example a
// container's imageID), which spares resolving a tag. See MatchReference.
func (m *Matcher) Match(ctx context.Context, image, digest string) (Result, error) {
	ref, err := ParseImage(image)
	if err != nil {
		return Result{Class: Unknown, Reason: "invalid image reference", Err: err}, err
	}
	return m.MatchReference(ctx, ref, digest)
}

// MatchReference classifies ref. The error is set only for bad input (a
// malformed digest, or one that contradicts ref's); failures to read a
// registry give an Unknown result with a nil error.
//
// The image's digest is ref's, or digest, or else the tag is resolved with
// one manifest HEAD (cached for the tag TTL). Then, in order:
//
//  1. Digest: the image's digest is a catalog digest (approved, resolved or
//     in the history of an entry), or a platform manifest of one.
//  2. Annotation: the image's org.opencontainers.image.base.digest
//     annotation (on the index, or else on its first platform manifest)
//     names a catalog digest or one of its platform manifests.
//  3. LayerChain: the layers of one of the image's platform manifests (for
//     an index, any platform; attestations are ignored) start with all the
//     layers, in order, of a platform manifest of a catalog digest. The
//     longest such chain wins; on a tie the approved digest wins.
//
// A digest several entries share is classified by its best use: Approved
// before Superseded, then by entry name. When nothing matches, the image is
// Unapproved, unless a catalog digest's layers could not be read: then the
// verdict is Unknown, since that base might have matched. An image that
// cannot be read, or a deadline that passes, gives Unknown at once.
func (m *Matcher) MatchReference(ctx context.Context, ref name.Reference, digest string) (Result, error) {
	res := Result{Image: ref.Name(), Class: Unknown}
	snap := m.index.snap.Load()
	if d, ok := ref.(name.Digest); ok {
		if digest != "" && digest != d.DigestStr() {
			err := fmt.Errorf("digest %s contradicts the reference's digest %s", truncate(digest, 80), d.DigestStr())
			res.Reason = "invalid image reference"
			res.Err = err
			return res, err
		}
		digest = d.DigestStr()
	} else if digest != "" && validDigest(digest) == "" {
		err := fmt.Errorf("invalid digest %q: want algorithm:hex such as sha256:<64 hex digits>", truncate(digest, 80))
		res.Reason = "invalid digest"
		res.Err = err
		return res, err
	}

	// 1. Exact catalog digest: no registry read.
	if digest != "" {
		res.Digest = digest
		if refs := snap.byDigest[digest]; len(refs) > 0 {
			return m.matched(snap, res, refs[0], MethodDigest, digest), nil
		}
	}

	repo := ref.Context()
	access := m.imageAccess(repo)
	if digest == "" {
		d, err := m.resolve(ctx, ref, access)
		if err != nil {
			return unknown(res, "the image's tag could not be resolved", err), nil
		}
		digest = d
		res.Digest = d
		if refs := snap.byDigest[digest]; len(refs) > 0 {
			return m.matched(snap, res, refs[0], MethodDigest, digest), nil
		}
	}

	img, err := m.manifest(ctx, repo, digest, access)
	if err != nil {
		return unknown(res, "the image's manifest could not be read", err), nil
	}
	platforms := []*manifestInfo{img}
	if img.index {
		platforms = platforms[:0]
		for _, c := range img.children {
			p, err := m.manifest(ctx, repo, c, access)
			if err != nil {
				return unknown(res, "the image's platform manifest could not be read", err), nil
			}
			platforms = append(platforms, p)
		}
	}
	baseDigest, baseName := img.baseDigest, img.baseName
	if baseDigest == "" && baseName == "" && img.index && len(platforms) > 0 {
		baseDigest, baseName = platforms[0].baseDigest, platforms[0].baseName
	}
	baseDigest = validDigest(baseDigest)
	res.BaseName = baseName

	// 2. Annotation naming a catalog digest.
	if refs := snap.byDigest[baseDigest]; baseDigest != "" && len(refs) > 0 {
		return m.matched(snap, res, refs[0], MethodAnnotation, baseDigest), nil
	}

	// Platform manifests and layer chains need the catalog's chains.
	pending, ctxErr := m.loadChains(ctx, snap)
	if ctxErr != nil {
		return unknown(res, "the deadline passed before the catalog's layers were read", ctxErr), nil
	}
	if d, ok := m.index.chains.baseOfManifest(digest); ok {
		if refs := snap.byDigest[d]; len(refs) > 0 {
			return m.matched(snap, res, refs[0], MethodDigest, d), nil
		}
	}
	if baseDigest != "" {
		if d, ok := m.index.chains.baseOfManifest(baseDigest); ok {
			if refs := snap.byDigest[d]; len(refs) > 0 {
				return m.matched(snap, res, refs[0], MethodAnnotation, d), nil
			}
		}
	}

	// 3. Layer chain.
	var best digestRef
	bestBase, bestLen := "", 0
	for _, p := range platforms {
		for _, pc := range m.index.chains.longest(p.layers) {
			for _, r := range snap.byDigest[pc.base] {
				if n := len(pc.layers); n > bestLen || (n == bestLen && r.better(best)) {
					best, bestBase, bestLen = r, pc.base, n
				}
			}
		}
	}
	if bestBase != "" {
		return m.matched(snap, res, best, MethodLayerChain, bestBase), nil
	}

	if pending > 0 {
		return unknown(res, fmt.Sprintf("%d catalog digests could not be read", pending), nil), nil
	}
	res.Class = Unapproved
	res.Reason = "matches no base in the catalog"
	var near *Entry
	if baseDigest != "" || baseName != "" {
		res.Method = MethodAnnotation
		res.BaseDigest = baseDigest
		res.Reason = "built on a base that is not in the catalog"
		if near = entryOfRepository(snap, baseName); near != nil {
			res.Reason = fmt.Sprintf("built on a digest of %s that the catalog does not record", near.Name)
		}
	}
	res.Alternatives = alternatives(snap, near, repositoryOf(repo), baseName)
	return res, nil
}

// entryOfRepository returns the first entry, by name, of the repository
// reference ref names, or nil.
func entryOfRepository(snap *snapshot, ref string) *Entry {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil
	}
	repo := repositoryOf(r.Context())
	var found *Entry
	for _, e := range snap.entries {
		if e.Repository == repo && (found == nil || e.Name.String() < found.Name.String()) {
			found = e
		}
	}
	return found
}

// matched fills res for an image on catalog digest base, used by r.
func (m *Matcher) matched(snap *snapshot, res Result, r digestRef, how Method, base string) Result {
	res.Class = r.class()
	res.Method = how
	res.BaseImage = r.entry.Name
	res.BaseDigest = base
	res.Reason = r.reason()
	if res.Class != Approved {
		res.Alternatives = alternatives(snap, r.entry, r.entry.Repository, "")
	}
	return res
}

func unknown(res Result, reason string, err error) Result {
	res.Class = Unknown
	res.Reason = reason
	res.Err = err
	if err != nil {
		var re *registry.Error
		if errors.As(err, &re) {
			res.Reason = reason + ": " + re.Error()
		} else if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			res.Reason = reason + " before the deadline"
		}
	}
	return res
}

// alternatives lists approved entries, most relevant first: entry itself,
// then entries of repo, then entries whose repository has the same last
// path element as repo or baseName (python for base/python), then the
// rest by name.
func alternatives(snap *snapshot, entry *Entry, repo, baseName string) []Alternative {
	leaf := path.Base(repo)
	if baseName != "" {
		if r, err := name.ParseReference(baseName); err == nil {
			leaf = path.Base(r.Context().RepositoryStr())
		}
	}
	var ranked [4][]*Entry
	for _, e := range snap.approved {
		r := 3
		switch {
		case e == entry:
			r = 0
		case e.Repository == repo:
			r = 1
		case e.leaf == leaf:
			r = 2
		}
		if len(ranked[r]) < MaxAlternatives {
			ranked[r] = append(ranked[r], e)
		}
	}
	out := make([]Alternative, 0, MaxAlternatives)
	for _, es := range ranked {
		for _, e := range es {
			if len(out) == MaxAlternatives {
				return out
			}
			out = append(out, Alternative{BaseImage: e.Name, Image: e.Image, Reference: e.approved})
		}
	}
	return out
}

// loadChains reads the layer chains of the catalog digests not known yet,
// a few at a time. It returns how many could not be read (and are not
// known to be gone), or ctx's error when the deadline passed.
func (m *Matcher) loadChains(ctx context.Context, snap *snapshot) (int, error) {
	now := m.now()
	type job struct {
		digest string
		entry  *Entry
	}
	var jobs []job
	pending := 0
	for d, refs := range snap.byDigest {
		loaded, retryAt := m.index.chains.state(d)
		if loaded {
			continue
		}
		if !retryAt.IsZero() && now.Before(retryAt) {
			pending++
			continue
		}
		jobs = append(jobs, job{d, refs[0].entry})
	}
	if len(jobs) == 0 {
		return pending, nil
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	sem := make(chan struct{}, m.concurrency)
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return 0, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := m.loadChain(ctx, j.entry, j.digest); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return pending + failed, nil
}

// loadChain reads the layer chains of catalog digest d of entry e.
func (m *Matcher) loadChain(ctx context.Context, e *Entry, d string) error {
	repo, err := name.NewRepository(e.Repository)
	if err != nil {
		m.index.chains.put(d, chainState{gone: true})
		return nil
	}
	a := m.entryAccess(*e)
	info, err := m.manifest(ctx, repo, d, a)
	if err != nil {
		return m.chainFailed(ctx, d, err)
	}
	var st chainState
	if !info.index {
		st.chains = []*platformChain{{base: d, manifest: d, layers: info.layers}}
	}
	for _, c := range info.children {
		p, err := m.manifest(ctx, repo, c, a)
		if err != nil {
			return m.chainFailed(ctx, d, err)
		}
		st.chains = append(st.chains, &platformChain{base: d, manifest: c, layers: p.layers})
	}
	m.index.chains.put(d, st)
	return nil
}

// chainFailed records a catalog digest that could not be read: one the
// registry does not have has no chain; any other failure is retried later.
func (m *Matcher) chainFailed(ctx context.Context, d string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	if registry.KindOf(err) == registry.KindNotFound {
		m.index.chains.put(d, chainState{gone: true})
		return nil
	}
	m.index.chains.fail(d, m.now().Add(m.retryFailed))
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
