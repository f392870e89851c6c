package trivy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
)

// Limits bound what an image may cost to scan. They are checked against
// the manifests before any layer is downloaded.
type Limits struct {
	// MaxLayers is the largest number of layers per platform image.
	// Default 128.
	MaxLayers int
	// MaxLayerSize is the largest compressed layer, in bytes. Default 2 GiB.
	MaxLayerSize int64
	// MaxTotalSize is the largest sum of compressed layer sizes per
	// platform image, in bytes. Default 8 GiB.
	MaxTotalSize int64
	// MaxUncompressedLayerSize is the most bytes a layer may inflate to
	// while it is analysed. Default 16 GiB.
	MaxUncompressedLayerSize int64
	// MaxLayerExpansion is the most times its compressed size a layer may
	// inflate to, so that a small layer cannot hold gigabytes of zeros (a
	// decompression bomb); any layer may inflate to 64 MiB whatever its
	// ratio. Default 100.
	MaxLayerExpansion int64
}

// Defaults of Limits.
const (
	DefaultMaxLayers    = 128
	DefaultMaxLayerSize = int64(2) << 30
	DefaultMaxTotalSize = int64(8) << 30

	DefaultMaxUncompressedLayerSize = int64(16) << 30
	DefaultMaxLayerExpansion        = 100
)

// minInflationAllowance is what any layer may inflate to, whatever its
// ratio: tar archives of a few small files compress far better than 100
// to 1.
const minInflationAllowance = int64(64) << 20

func (l Limits) withDefaults() Limits {
	if l.MaxLayers <= 0 {
		l.MaxLayers = DefaultMaxLayers
	}
	if l.MaxLayerSize <= 0 {
		l.MaxLayerSize = DefaultMaxLayerSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxUncompressedLayerSize <= 0 {
		l.MaxUncompressedLayerSize = DefaultMaxUncompressedLayerSize
	}
	if l.MaxLayerExpansion <= 0 {
		l.MaxLayerExpansion = DefaultMaxLayerExpansion
	}
	return l
}

// inflationLimit is the most bytes a layer of compressed bytes may
// inflate to.
func (l Limits) inflationLimit(compressed int64) int64 {
	n := minInflationAllowance
	if compressed > 0 && compressed <= l.MaxUncompressedLayerSize/l.MaxLayerExpansion {
		n = max(n, compressed*l.MaxLayerExpansion)
	} else if compressed > 0 {
		n = l.MaxUncompressedLayerSize
	}
	return min(n, l.MaxUncompressedLayerSize)
}

// check tells whether manifest m of platform p is within the limits.
func (l Limits) check(p string, m *v1.Manifest) error {
	if n := len(m.Layers); n > l.MaxLayers {
		return &scan.LimitError{Limit: scan.LimitLayerCount, Platform: p, Value: int64(n), Max: int64(l.MaxLayers)}
	}
	var total int64
	for _, d := range m.Layers {
		if d.Size > l.MaxLayerSize {
			return &scan.LimitError{Limit: scan.LimitLayerSize, Platform: p, Value: d.Size, Max: l.MaxLayerSize}
		}
		total += d.Size
	}
	if total > l.MaxTotalSize {
		return &scan.LimitError{Limit: scan.LimitTotalSize, Platform: p, Value: total, Max: l.MaxTotalSize}
	}
	return nil
}

// platformImage is one image of the request to scan.
type platformImage struct {
	platform string
	digest   name.Digest // repo@digest of this platform's manifest
	image    v1.Image
}

// resolveImages fetches the manifest (or index) of req.Image and returns
// the platform images to scan, each checked against the limits, with
// their manifests and configs fetched. Layers are not downloaded.
// Registry failures come back as *scan.Error saying what failed.
func resolveImages(ctx context.Context, req scan.Request, filter []string, limits Limits, opts []remote.Option) ([]platformImage, map[string]string, error) {
	desc, err := remote.Get(req.Image, opts...)
	if err != nil {
		return nil, nil, classifyRegistry("fetching the manifest", err)
	}
	repo := req.Image.Context()
	var out []platformImage
	var annotations map[string]string
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, nil, invalidImage("reading the index", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, nil, invalidImage("reading the index", err)
		}
		annotations = im.Annotations
		for _, d := range im.Manifests {
			if !d.MediaType.IsImage() || registry.IsAttestation(d) || d.Platform == nil {
				continue
			}
			p := registry.PlatformString(d.Platform.OS, d.Platform.Architecture, d.Platform.Variant)
			if p == "" || (len(filter) > 0 && !registry.PlatformMatches(filter, p)) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, nil, classifyRegistry("fetching the manifest for "+p, err)
			}
			out = append(out, platformImage{platform: p, digest: repo.Digest(d.Digest.String()), image: img})
		}
		if len(out) == 0 {
			return nil, nil, fmt.Errorf("%w: %v", scan.ErrNoMatchingPlatform, filter)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, nil, invalidImage("reading the manifest", err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, nil, classifyRegistry("fetching the image config", err)
		}
		p := registry.PlatformString(cf.OS, cf.Architecture, cf.Variant)
		out = append(out, platformImage{platform: p, digest: req.Image, image: img})
		m, err := img.Manifest()
		if err != nil {
			return nil, nil, invalidImage("reading the manifest", err)
		}
		annotations = m.Annotations
	}
	for _, pi := range out {
		m, err := pi.image.Manifest()
		if err != nil {
			return nil, nil, classifyRegistry("fetching the manifest for "+pi.platform, err)
		}
		if err := limits.check(pi.platform, m); err != nil {
			return nil, nil, err
		}
		// Fetched now, so that the analysis finds it at hand.
		if _, err := pi.image.RawConfigFile(); err != nil {
			return nil, nil, classifyRegistry("fetching the image config for "+pi.platform, err)
		}
	}
	slices.SortFunc(out, func(a, b platformImage) int { return strings.Compare(a.platform, b.platform) })
	return out, annotations, nil
}

// trivyImage adapts a registry image to Trivy's image interface for the
// analysis, which runs under analysersMu and so must not touch the
// network: the ID and config are read beforehand, and the only layers it
// hands out are those downloaded to the spool.
type trivyImage struct {
	v1.Image
	ref    name.Digest
	id     string
	config *v1.ConfigFile

	mu      sync.Mutex
	spooled map[v1.Hash]v1.Layer // by diffID
}

// errNotSpooled says the analysis asked for a layer not downloaded
// beforehand; it never fetches one itself.
var errNotSpooled = errors.New("layer was not downloaded before the analysis")

func newTrivyImage(pi platformImage) (*trivyImage, error) {
	h, err := pi.image.ConfigName()
	if err != nil {
		return nil, classifyRegistry("fetching the image config for "+pi.platform, err)
	}
	cf, err := pi.image.ConfigFile()
	if err != nil {
		return nil, classifyRegistry("fetching the image config for "+pi.platform, err)
	}
	return &trivyImage{Image: pi.image, ref: pi.digest, id: h.String(), config: cf, spooled: map[v1.Hash]v1.Layer{}}, nil
}

func (t *trivyImage) Name() string { return t.ref.String() }

// ID is the config digest, as Trivy defines an image ID.
func (t *trivyImage) ID() (string, error) { return t.id, nil }

func (t *trivyImage) ConfigFile() (*v1.ConfigFile, error) { return t.config.DeepCopy(), nil }

func (t *trivyImage) RepoTags() []string    { return nil }
func (t *trivyImage) RepoDigests() []string { return []string{t.ref.String()} }

func (t *trivyImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.spooled[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("%w: %s", errNotSpooled, h)
}

func (t *trivyImage) setSpooled(m map[v1.Hash]v1.Layer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spooled = m
}

// invalidImage is an image whose manifest or index cannot be read.
func invalidImage(op string, err error) error {
	return &scan.Error{Kind: scan.KindInvalid, Message: op + ": malformed", Err: err}
}
