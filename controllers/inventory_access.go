package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
)

// DefaultAccessTTL is how long RegistryAccess keeps the access it built.
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
// What it builds is kept for TTL, so that matching costs no API read.
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

	mu      sync.Mutex
	entries map[string]cachedAccess // by entry namespace/name
	hosts   map[string]cachedAccess // by registry host
}

type cachedAccess struct {
	access  registry.Access
	expires time.Time
}

func (a *RegistryAccess) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *RegistryAccess) ttl() time.Duration { return positive(a.TTL, DefaultAccessTTL) }

// ForEntry returns how to reach the registry of catalog entry e: its
// credentials, or anonymous access when they cannot be read.
func (a *RegistryAccess) ForEntry(e catalog.Entry) registry.Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.entryLocked(e)
}

func (a *RegistryAccess) entryLocked(e catalog.Entry) registry.Access {
	now := a.now()
	key := e.Name.String()
	if c, ok := a.entries[key]; ok && now.Before(c.expires) {
		return c.access
	}
	ctx, cancel := context.WithTimeout(context.Background(), accessReadTimeout)
	defer cancel()
	var acc registry.Access
	var bi catalogv1.BaseImage
	err := a.Reader.Get(ctx, e.Name, &bi)
	if err == nil {
		acc, err = accessFor(ctx, a.APIReader, &bi)
	}
	if err != nil {
		// The BaseImage reconciler reports the entry's credential
		// problems; matching goes on anonymously.
		logf.Log.WithName("inventory").V(1).Info("Cannot read the credentials of a catalog entry", "baseImage", key, "error", err.Error())
		acc = registry.Access{Insecure: bi.Spec.Insecure}
	}
	if a.entries == nil {
		a.entries = map[string]cachedAccess{}
	}
	a.entries[key] = cachedAccess{access: acc, expires: now.Add(a.ttl())}
	return acc
}

// ForImage returns how to reach the registry of an image that is not a
// catalog entry: anonymous, plus the credentials of the catalog entries on
// the same registry host.
func (a *RegistryAccess) ForImage(repo name.Repository) registry.Access {
	host := strings.ToLower(repo.RegistryStr())
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if c, ok := a.hosts[host]; ok && now.Before(c.expires) {
		return c.access
	}
	var (
		keychains []authn.Keychain
		acc       registry.Access
	)
	for _, e := range a.Index.Entries() {
		r, err := name.NewRepository(e.Repository)
		if err != nil || strings.ToLower(r.RegistryStr()) != host {
			continue
		}
		ea := a.entryLocked(e)
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
	if a.hosts == nil {
		a.hosts = map[string]cachedAccess{}
	}
	a.hosts[host] = cachedAccess{access: acc, expires: now.Add(a.ttl())}
	return acc
}
