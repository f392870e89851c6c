package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI and BuildKit annotation keys read by Inspect.
const (
	// AnnotationBaseDigest names the digest of the image an image was built from.
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	// AnnotationBaseName names the reference of the image an image was built from.
	AnnotationBaseName = "org.opencontainers.image.base.name"
	// AnnotationReferenceType is set to "attestation-manifest" on the index
	// entries BuildKit adds for provenance and SBOM attestations.
	AnnotationReferenceType = "vnd.docker.reference.type"
)

// ImageInfo is what plinth needs to know about an image or index digest.
type ImageInfo struct {
	// Digest is the digest inspected (the index digest for an index).
	Digest string
	// MediaType is the media type of the manifest or index.
	MediaType string
	// Platforms are the evaluated platforms, os/arch[/variant], sorted.
	Platforms []string
	// Created is the oldest creation time among the evaluated platforms;
	// zero if none recorded one.
	Created time.Time
	// BaseDigest is the org.opencontainers.image.base.digest annotation of
	// the index or manifest, or else of the first evaluated platform's
	// manifest.
	BaseDigest string
	// BaseName is the org.opencontainers.image.base.name annotation, found
	// the same way as BaseDigest.
	BaseName string
}

// Inspect reads the manifest at ref. For an index it evaluates the real
// platforms (attestation manifests are skipped), only those matching
// platforms when that is not empty, and reads each one's config. A filter
// entry without a variant matches every variant of its os/arch. If the filter
// matches no platform, the error is of kind KindNotFound and lists the
// platforms available. The registry is reached as a says, as with Head.
//
// What a digest holds never changes: a single-platform digest inspected
// before costs no request, and a platform image or config read before is
// not read again.
func (c *Client) Inspect(ctx context.Context, ref name.Digest, a Access, platforms []string) (*ImageInfo, error) {
	filter, err := ParsePlatforms(platforms)
	if err != nil {
		return nil, invalid(err.Error(), nil)
	}
	ref, err = a.digest(ref)
	if err != nil {
		return nil, err
	}
	if f, ok := c.facts.get(ref.DigestStr()); ok {
		info := &ImageInfo{Digest: ref.DigestStr(), MediaType: f.mediaType}
		if err := singleInfo(f, filter, info); err != nil {
			return nil, err
		}
		return info, nil
	}
	p, anonymous, err := c.puller(ctx, ref.Context(), a)
	if err != nil {
		return nil, err
	}
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, classify(err, anonymous)
	}
	return c.inspect(ctx, p, ref.Context(), desc, filter, anonymous)
}

// Resolve reads the manifest ref, a tag or digest reference, points at with
// one GET and inspects it like Inspect, reusing the manifest's body: for a
// reference seen for the first time it costs what Head and Inspect cost
// together, less one request. ImageInfo.Digest is the resolved digest.
func (c *Client) Resolve(ctx context.Context, ref name.Reference, a Access, platforms []string) (*ImageInfo, error) {
	filter, err := ParsePlatforms(platforms)
	if err != nil {
		return nil, invalid(err.Error(), nil)
	}
	ref, err = a.reference(ref)
	if err != nil {
		return nil, err
	}
	p, anonymous, err := c.puller(ctx, ref.Context(), a)
	if err != nil {
		return nil, err
	}
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, classify(err, anonymous)
	}
	return c.inspect(ctx, p, ref.Context(), desc, filter, anonymous)
}

// inspect evaluates a manifest or index read from the registry.
func (c *Client) inspect(ctx context.Context, p *remote.Puller, repo name.Repository, desc *remote.Descriptor, filter []string, anonymous bool) (*ImageInfo, error) {
	if int64(len(desc.Manifest)) > c.maxManifest {
		return nil, tooLarge(c.maxManifest)
	}
	info := &ImageInfo{Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
	var err error
	switch {
	case desc.MediaType.IsIndex():
		err = c.inspectIndex(ctx, p, repo, desc, filter, anonymous, info)
	case desc.MediaType.IsImage() && desc.MediaType != types.DockerManifestSchema1 && desc.MediaType != types.DockerManifestSchema1Signed:
		err = c.inspectSingle(desc, filter, anonymous, info)
	default:
		err = invalid(fmt.Sprintf("unexpected media type %q", truncate(string(desc.MediaType), 100)), nil)
	}
	if err != nil {
		return nil, err
	}
	return info, nil
}

func (c *Client) inspectSingle(desc *remote.Descriptor, filter []string, anonymous bool, info *ImageInfo) error {
	img, err := c.readImage(desc, anonymous)
	if err != nil {
		return err
	}
	return singleInfo(img, filter, info)
}

// singleInfo fills info in from the facts of a single-platform image.
func singleInfo(img *imageFacts, filter []string, info *ImageInfo) error {
	if img.platform != "" && len(filter) > 0 && !PlatformMatches(filter, img.platform) {
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("image platform %s does not match %s", img.platform, strings.Join(filter, ", "))}
	}
	if img.platform != "" {
		info.Platforms = []string{img.platform}
	}
	info.Created = img.created
	info.BaseDigest, info.BaseName = img.annotations[AnnotationBaseDigest], img.annotations[AnnotationBaseName]
	return nil
}

func (c *Client) inspectIndex(ctx context.Context, p *remote.Puller, repo name.Repository, desc *remote.Descriptor, filter []string, anonymous bool, info *ImageInfo) error {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return invalid("invalid image index", err)
	}
	info.BaseDigest, info.BaseName = idx.Annotations[AnnotationBaseDigest], idx.Annotations[AnnotationBaseName]

	var available []string
	var kept []v1.Descriptor
	for _, m := range idx.Manifests {
		if IsAttestation(m) || m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		ps := PlatformString(m.Platform.OS, m.Platform.Architecture, m.Platform.Variant)
		available = append(available, ps)
		if len(filter) == 0 || PlatformMatches(filter, ps) {
			kept = append(kept, m)
		}
	}
	slices.Sort(available)
	available = slices.Compact(available)
	if len(available) == 0 {
		return invalid("image index lists no platform images", nil)
	}
	if len(kept) == 0 {
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("no platform of the index matches %s (available: %s)",
			strings.Join(filter, ", "), strings.Join(available, ", "))}
	}

	for i, m := range kept {
		if m.Size > c.maxManifest {
			return tooLarge(c.maxManifest)
		}
		img, ok := c.facts.get(m.Digest.String())
		if !ok {
			child, err := p.Get(ctx, repo.Digest(m.Digest.String()))
			if err != nil {
				return classify(err, anonymous)
			}
			if img, err = c.readImage(child, anonymous); err != nil {
				return err
			}
		}
		info.Platforms = append(info.Platforms, PlatformString(m.Platform.OS, m.Platform.Architecture, m.Platform.Variant))
		if !img.created.IsZero() && (info.Created.IsZero() || img.created.Before(info.Created)) {
			info.Created = img.created
		}
		if i == 0 && info.BaseDigest == "" && info.BaseName == "" {
			info.BaseDigest, info.BaseName = img.annotations[AnnotationBaseDigest], img.annotations[AnnotationBaseName]
		}
	}
	slices.Sort(info.Platforms)
	info.Platforms = slices.Compact(info.Platforms)
	return nil
}

// imageFacts is what Inspect reads of one image manifest and its config.
// A digest names the same content for ever, so facts are kept by digest.
type imageFacts struct {
	mediaType   string
	platform    string
	created     time.Time
	annotations map[string]string
}

// readImage reads an image manifest's annotations and its config. Facts
// known for the manifest's digest, or a config known by its digest, are
// not read again.
func (c *Client) readImage(desc *remote.Descriptor, anonymous bool) (*imageFacts, error) {
	if !desc.MediaType.IsImage() {
		return nil, invalid(fmt.Sprintf("unexpected media type %q for a platform image", truncate(string(desc.MediaType), 100)), nil)
	}
	if f, ok := c.facts.get(desc.Digest.String()); ok {
		return f, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, invalid("invalid image manifest", err)
	}
	if m.Config.Size > c.maxManifest {
		return nil, &Error{Kind: KindInvalid, Message: fmt.Sprintf("image config larger than %d bytes", c.maxManifest)}
	}
	f := &imageFacts{mediaType: string(desc.MediaType), annotations: m.Annotations}
	if cf, ok := c.facts.get(configKey(m.Config.Digest.String())); ok {
		f.platform, f.created = cf.platform, cf.created
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, fetchError(err, anonymous, "invalid image manifest")
		}
		// The remote image checks the config against its digest.
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fetchError(err, anonymous, "invalid image config")
		}
		f.platform, f.created = PlatformString(cfg.OS, cfg.Architecture, cfg.Variant), cfg.Created.Time
		c.facts.put(configKey(m.Config.Digest.String()), &imageFacts{platform: f.platform, created: f.created})
	}
	if desc.Digest.String() == digestOf(desc.Manifest) {
		c.facts.put(desc.Digest.String(), f)
	}
	return f, nil
}

// configKey is the key of a config's facts, apart from manifests' facts.
func configKey(digest string) string { return "config:" + digest }

// fetchError classifies a failure that is either a transfer failure or
// content that does not parse.
func fetchError(err error, anonymous bool, invalidMsg string) error {
	var te *transport.Error
	var ue *url.Error
	var e *Error
	// A body cut short (the connection ended before Content-Length) is a
	// transfer failure too, not content that does not parse.
	if errors.As(err, &te) || errors.As(err, &ue) || errors.As(err, &e) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classify(err, anonymous)
	}
	return invalid(invalidMsg, err)
}
