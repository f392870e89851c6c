package vulndbtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and annotation of the Trivy DB artifact.
const (
	ConfigMediaType = "application/vnd.aquasec.trivy.config.v1+json"
	LayerMediaType  = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
	TitleAnnotation = "org.opencontainers.image.title"
	LayerTitle      = "db.tar.gz"
)

// Entry is an extra tar entry added to the DB layer, to make malformed
// artifacts.
type Entry struct {
	Name     string
	Typeflag byte // tar.TypeReg when zero
	Linkname string
	Body     []byte
}

// Option changes how Push packages the artifact.
type Option func(*artifactConfig)

type artifactConfig struct {
	configMediaType string
	layerMediaType  string
	title           string
	extra           []Entry
	skip            map[string]bool
	truncate        bool
	remote          []remote.Option
}

// WithConfigMediaType sets the manifest's config media type.
func WithConfigMediaType(mt string) Option {
	return func(c *artifactConfig) { c.configMediaType = mt }
}

// WithLayerMediaType sets the DB layer's media type.
func WithLayerMediaType(mt string) Option {
	return func(c *artifactConfig) { c.layerMediaType = mt }
}

// WithTitle sets the layer's title annotation.
func WithTitle(t string) Option {
	return func(c *artifactConfig) { c.title = t }
}

// WithEntry appends an extra entry to the layer's tar, such as
// Entry{Name: "../escape"} or a symlink.
func WithEntry(e Entry) Option {
	return func(c *artifactConfig) { c.extra = append(c.extra, e) }
}

// WithoutFile leaves file ("trivy.db" or "metadata.json") out of the layer.
func WithoutFile(file string) Option {
	return func(c *artifactConfig) {
		if c.skip == nil {
			c.skip = map[string]bool{}
		}
		c.skip[file] = true
	}
}

// WithTruncatedLayer cuts the gzip stream in half. The manifest carries the
// digest of the truncated bytes, so only decompression can notice.
func WithTruncatedLayer() Option {
	return func(c *artifactConfig) { c.truncate = true }
}

// WithRemoteOptions passes options, such as a transport or authenticator,
// to the push.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(c *artifactConfig) { c.remote = append(c.remote, opts...) }
}

// Layer returns the gzip-compressed tar of dir's trivy.db and metadata.json
// (plus any extra entries), as Push would upload it.
func Layer(dir string, opts ...Option) ([]byte, error) {
	c := newConfig(opts)
	return layerBytes(dir, c)
}

func newConfig(opts []Option) *artifactConfig {
	c := &artifactConfig{
		configMediaType: ConfigMediaType,
		layerMediaType:  LayerMediaType,
		title:           LayerTitle,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func layerBytes(dir string, c *artifactConfig) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []string{"trivy.db", "metadata.json"} {
		if c.skip[f] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	for _, e := range c.extra {
		h := &tar.Header{Name: e.Name, Mode: 0o644, ModTime: mtime, Typeflag: e.Typeflag, Linkname: e.Linkname}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if c.truncate {
		b = b[:len(b)/2]
	}
	return b, nil
}

// Push packages dir (as written by Build) as a Trivy DB artifact and
// pushes it to ref, such as "127.0.0.1:5000/aquasec/trivy-db:2". It
// returns the manifest digest.
func Push(ctx context.Context, ref string, dir string, opts ...Option) (string, error) {
	c := newConfig(opts)
	tag, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parsing reference: %w", err)
	}
	layerData, err := layerBytes(dir, c)
	if err != nil {
		return "", err
	}
	configData := []byte("{}")
	cfgLayer := static.NewLayer(configData, types.MediaType(c.configMediaType))
	dbLayer := static.NewLayer(layerData, types.MediaType(c.layerMediaType))

	ropts := append([]remote.Option{remote.WithContext(ctx)}, c.remote...)
	for _, l := range []v1.Layer{cfgLayer, dbLayer} {
		if err := remote.WriteLayer(tag.Context(), l, ropts...); err != nil {
			return "", fmt.Errorf("uploading blob: %w", err)
		}
	}

	cfgDigest, _ := cfgLayer.Digest()
	layerDigest, _ := dbLayer.Digest()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType: types.MediaType(c.configMediaType),
			Size:      int64(len(configData)),
			Digest:    cfgDigest,
		},
		Layers: []v1.Descriptor{{
			MediaType:   types.MediaType(c.layerMediaType),
			Size:        int64(len(layerData)),
			Digest:      layerDigest,
			Annotations: map[string]string{TitleAnnotation: c.title},
		}},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	if err := remote.Put(tag, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, ropts...); err != nil {
		return "", fmt.Errorf("pushing manifest: %w", err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
