package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
)

// DefaultAccessTTL is how long RegistryAccess keeps the access it built
// before building it again.
const DefaultAccessTTL = 5 * time.Minute

// accessReadTimeout bounds the reads of one entry's Secrets.
const accessReadTimeout = 10 * time.Second

// RegistryAccess tells the catalog Matcher how to reach registries.
//
// A catalog entry's digests are read with the entry's own credentials,
// CA bundle and insecure setting, as the BaseImage reconciler reads them.
//
// An image that runs in the cluster, or is admitted to it, is read
// anonymously, plus with the credentials of every catalog entry whose
// repository is on the same registry host (and their CA bundles; plain HTTP
// when one of them allows it). plinth does not read the pull secrets of
// workloads: a platform team that keeps its bases and its applications on
// one private registry gives its catalog entries credentials that can read
// both. Credentials are only ever sent to the host they are for.
//
// What it builds is kept for TTL and then built again in the background
// while the old value still serves, so that matching never waits for an
// API read except the first time.
type RegistryAccess struct {
	// Reader reads BaseImages (the manager's cached client).
	Reader client.Reader
	// APIReader reads Secrets and ServiceAccounts, uncached.
	APIReader client.Reader
	// Index lists the catalog's entries.
	Index *catalog.Index
	// TTL is how long an access is kept. Default DefaultAccessTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	cache      map[string]cachedAccess // "entry/<namespace/name>" or "host/<host>"
	refreshing map[string]bool
	flight     singleflight.Group
}

type cachedAccess struct {
	access  registry.Access
	expires time.Time
	gen     uint64 // the catalog generation it was built at
}

// ForEntry returns how to reach the registry of catalog entry e: its
// credentials, or anonymous access when they cannot be read.
func (a *RegistryAccess) ForEntry(e catalog.Entry) registry.Access {
	return a.get("entry/"+e.Name.String(), false, func() registry.Access { return a.buildEntry(e) })
}

// ForImage returns how to reach the registry of an image that is not a
// catalog entry: anonymous, plus the credentials of the catalog entries on
// the same registry host.
func (a *RegistryAccess) ForImage(repo name.Repository) registry.Access {
	host := strings.ToLower(repo.RegistryStr())
	// A new entry on the host may bring credentials: a change of the
	// catalog makes the host's access stale.
	return a.get("host/"+host, true, func() registry.Access { return a.buildHost(host) })
}

// get returns the access kept under key: fresh, or stale while a refresh
// runs, or else built now (once for concurrent callers). With perCatalog,
// an access built before the catalog last changed is stale.
func (a *RegistryAccess) get(key string, perCatalog bool, build func() registry.Access) registry.Access {
	now := a.now()
	gen := a.Index.Generation()
	a.mu.Lock()
	c, ok := a.cache[key]
	if ok && now.Before(c.expires) && (!perCatalog || c.gen == gen) {
		a.mu.Unlock()
		return c.access
	}
	if ok {
		if !a.refreshing[key] {
			if a.refreshing == nil {
				a.refreshing = map[string]bool{}
			}
			a.refreshing[key] = true
			go func() {
				acc := build()
				a.store(key, gen, acc)
				a.mu.Lock()
				delete(a.refreshing, key)
				a.mu.Unlock()
			}()
		}
		a.mu.Unlock()
		return c.access
	}
	a.mu.Unlock()
	v, _, _ := a.flight.Do(key, func() (any, error) {
		acc := build()
		a.store(key, gen, acc)
		return acc, nil
	})
	return v.(registry.Access)
}

func (a *RegistryAccess) store(key string, gen uint64, acc registry.Access) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil {
		a.cache = map[string]cachedAccess{}
	}
	a.cache[key] = cachedAccess{access: acc, expires: a.now().Add(positive(a.TTL, DefaultAccessTTL)), gen: gen}
}

func (a *RegistryAccess) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// buildEntry reads the credentials of entry e.
func (a *RegistryAccess) buildEntry(e catalog.Entry) registry.Access {
	ctx, cancel := context.WithTimeout(context.Background(), accessReadTimeout)
	defer cancel()
	var bi catalogv1.BaseImage
	err := a.Reader.Get(ctx, e.Name, &bi)
	if err != nil {
		return registry.Access{}
	}
	acc, err := accessFor(ctx, a.APIReader, &bi)
	if err != nil {
		// The BaseImage reconciler reports the entry's credential
		// problems; matching goes on anonymously.
		logf.Log.WithName("inventory").V(1).Info("Cannot read the credentials of a catalog entry",
			"baseImage", e.Name.String(), "error", err.Error())
		return registry.Access{Insecure: bi.Spec.Insecure}
	}
	return acc
}

// buildHost joins the access of the catalog entries on host.
func (a *RegistryAccess) buildHost(host string) registry.Access {
	var (
		keychains []authn.Keychain
		acc       registry.Access
	)
	for _, e := range a.Index.Entries() {
		r, err := name.NewRepository(e.Repository)
		if err != nil || strings.ToLower(r.RegistryStr()) != host {
			continue
		}
		ea := a.ForEntry(e)
		if ea.Keychain != nil {
			keychains = append(keychains, ea.Keychain)
		}
		if len(ea.CAPEM) > 0 {
			acc.CAPEM = append(append(acc.CAPEM, ea.CAPEM...), '\n')
		}
		acc.Insecure = acc.Insecure || ea.Insecure
	}
	if len(keychains) > 0 {
		acc.Keychain = authn.NewMultiKeychain(keychains...)
	}
	return acc
}
