package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
)

// Manifest is a manifest or index as the registry served it.
type Manifest struct {
	// Digest is the manifest's content digest.
	Digest string
	// MediaType is the manifest's media type.
	MediaType string
	// Raw is the manifest's content, at most Options.MaxManifestBytes long.
	Raw []byte
}

// Manifest reads the manifest or index at ref, a digest reference, with one
// GET (on a warm transport). The content is not parsed. The registry is
// reached as a says, as with Head; a manifest larger than
// Options.MaxManifestBytes gives an *Error of kind KindInvalid.
func (c *Client) Manifest(ctx context.Context, ref name.Digest, a Access) (*Manifest, error) {
	ref, err := a.digest(ref)
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
	if int64(len(desc.Manifest)) > c.maxManifest {
		return nil, tooLarge(c.maxManifest)
	}
	return &Manifest{Digest: desc.Digest.String(), MediaType: string(desc.MediaType), Raw: desc.Manifest}, nil
}
