package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/plinth-dev/plinth/internal/registry"
)

// manifestInfo is what the matcher keeps of a manifest or index.
type manifestInfo struct {
	index bool
	// children are the platform manifests of an index (attestations left
	// out).
	children []string
	// layers of an image manifest, bottom first.
	layers []string
	// baseDigest and baseName are the org.opencontainers.image.base.*
	// annotations.
	baseDigest, baseName string
}

// size estimates the bytes m holds.
func (m *manifestInfo) size() int64 {
	n := int64(96 + len(m.baseDigest) + len(m.baseName))
	for _, s := range m.children {
		n += int64(len(s)) + 16
	}
	for _, s := range m.layers {
		n += int64(len(s)) + 16
	}
	return n
}

// parseManifest extracts what the matcher needs from a manifest.
func parseManifest(m *registry.Manifest) (*manifestInfo, error) {
	mt := types.MediaType(m.MediaType)
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(m.Raw))
		if err != nil {
			return nil, fmt.Errorf("invalid image index: %w", err)
		}
		info := &manifestInfo{index: true, baseDigest: idx.Annotations[registry.AnnotationBaseDigest], baseName: idx.Annotations[registry.AnnotationBaseName]}
		for _, d := range idx.Manifests {
			if registry.IsAttestation(d) || !d.MediaType.IsImage() {
				continue
			}
			info.children = append(info.children, d.Digest.String())
		}
		return info, nil
	case mt.IsImage() && mt != types.DockerManifestSchema1 && mt != types.DockerManifestSchema1Signed:
		var man v1.Manifest
		if err := json.Unmarshal(m.Raw, &man); err != nil {
			return nil, fmt.Errorf("invalid image manifest: %w", err)
		}
		info := &manifestInfo{baseDigest: man.Annotations[registry.AnnotationBaseDigest], baseName: man.Annotations[registry.AnnotationBaseName]}
		for _, l := range man.Layers {
			info.layers = append(info.layers, l.Digest.String())
		}
		return info, nil
	default:
		return nil, fmt.Errorf("unexpected media type %q", m.MediaType)
	}
}

// manifest returns the parsed manifest of digest d in repo: from the cache,
// or read once however many callers ask at the same time. The read runs
// with its own time bound, so that a caller whose deadline passes returns at
// once without failing the others.
func (m *Matcher) manifest(ctx context.Context, repo name.Repository, d string, a registry.Access) (*manifestInfo, error) {
	if info, ok := m.manifests.get(d, m.now()); ok {
		return info, nil
	}
	ch := m.flight.DoChan("m/"+d, func() (any, error) {
		if info, ok := m.manifests.get(d, m.now()); ok {
			return info, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.fetchTimeout)
		defer cancel()
		raw, err := m.client.Manifest(fctx, repo.Digest(d), a)
		if err != nil {
			return nil, err
		}
		if raw.Digest != d {
			return nil, fmt.Errorf("registry served digest %s for %s", raw.Digest, d)
		}
		info, err := parseManifest(raw)
		if err != nil {
			return nil, &registry.Error{Kind: registry.KindInvalid, Message: err.Error(), Err: err}
		}
		m.manifests.add(d, info, info.size(), timeZero)
		return info, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*manifestInfo), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve returns the digest tag ref points at: from a cache kept for the
// tag TTL, or with one manifest HEAD shared by concurrent callers.
func (m *Matcher) resolve(ctx context.Context, ref name.Reference, a registry.Access) (string, error) {
	key := ref.Name()
	if d, ok := m.tags.get(key, m.now()); ok {
		return d, nil
	}
	ch := m.flight.DoChan("t/"+key, func() (any, error) {
		if d, ok := m.tags.get(key, m.now()); ok {
			return d, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.fetchTimeout)
		defer cancel()
		desc, err := m.client.Head(fctx, ref, a)
		if err != nil {
			return "", err
		}
		d := desc.Digest.String()
		m.tags.add(key, d, int64(len(d)), m.now().Add(m.tagTTL))
		return d, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
