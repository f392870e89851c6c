package trivy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and annotation of the Trivy DB artifact.
const (
	dbConfigMediaType = "application/vnd.aquasec.trivy.config.v1+json"
	dbLayerMediaType  = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
	titleAnnotation   = "org.opencontainers.image.title"
	dbLayerTitle      = "db.tar.gz"
	maxMetadataSize   = 1 << 20
)

// dbArtifact is a resolved DB artifact, checked but not yet downloaded.
type dbArtifact struct {
	repo           string
	ref            name.Reference
	manifestDigest string
	layer          v1.Descriptor
}

func (m *DBManager) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(m.opts.Transport)}
	if m.opts.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(m.opts.Keychain))
	}
	return opts
}

// resolve asks each repository in turn for the DB manifest and checks its
// shape. It returns the first usable one, or the errors of all.
func (m *DBManager) resolve(ctx context.Context) (*dbArtifact, error) {
	var errs []error
	for _, repo := range m.opts.Repositories {
		art, err := m.resolveOne(ctx, repo)
		if err == nil {
			return art, nil
		}
		errs = append(errs, err)
		var de *DBError
		if errors.As(err, &de) && de.Reason != "RegistryUnavailable" {
			// The repository answered with something wrong: do not fall
			// back silently to another source.
			return nil, err
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, dbErr("RegistryUnavailable", errors.Join(errs...))
}

func (m *DBManager) resolveOne(ctx context.Context, repo string) (*dbArtifact, error) {
	var nopts []name.Option
	if m.opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(repo, nopts...)
	if err != nil {
		return nil, dbErrf("InvalidRepository", "parsing %q: %v", repo, err)
	}
	desc, err := remote.Get(ref, m.remoteOptions(ctx)...)
	if err != nil {
		return nil, dbErr("RegistryUnavailable", err)
	}
	if desc.MediaType != types.OCIManifestSchema1 && desc.MediaType != types.DockerManifestSchema2 {
		return nil, dbErrf("UnexpectedMediaType", "manifest media type %q", desc.MediaType)
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(desc.Manifest)))
	if err != nil {
		return nil, dbErr("ManifestInvalid", err)
	}
	if mf.Config.MediaType != dbConfigMediaType {
		return nil, dbErrf("UnexpectedMediaType", "config media type %q, want %q", mf.Config.MediaType, dbConfigMediaType)
	}
	if len(mf.Layers) != 1 {
		return nil, dbErrf("ManifestInvalid", "%d layers, want 1", len(mf.Layers))
	}
	l := mf.Layers[0]
	if l.MediaType != dbLayerMediaType {
		return nil, dbErrf("UnexpectedMediaType", "layer media type %q, want %q", l.MediaType, dbLayerMediaType)
	}
	if t, ok := l.Annotations[titleAnnotation]; ok && t != dbLayerTitle {
		return nil, dbErrf("ManifestInvalid", "layer title %q, want %q", t, dbLayerTitle)
	}
	if l.Digest.Algorithm != "sha256" || len(l.Digest.Hex) != 64 {
		return nil, dbErrf("ManifestInvalid", "layer digest %q is not sha256", l.Digest)
	}
	if l.Size <= 0 || l.Size > m.opts.MaxLayerSize {
		return nil, dbErrf("TooLarge", "layer size %d bytes, limit %d", l.Size, m.opts.MaxLayerSize)
	}
	return &dbArtifact{repo: repo, ref: ref, manifestDigest: desc.Digest.String(), layer: l}, nil
}

// download fetches the DB layer and extracts trivy.db and metadata.json
// into dir, verifying the layer's size and digest.
func (m *DBManager) download(ctx context.Context, art *dbArtifact, dir string) error {
	layer, err := remote.Layer(art.ref.Context().Digest(art.layer.Digest.String()), m.remoteOptions(ctx)...)
	if err != nil {
		return dbErr("RegistryUnavailable", err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return dbErr("RegistryUnavailable", err)
	}
	defer rc.Close()

	// Verify independently of the library: count and hash every byte.
	h := sha256.New()
	counted := &countingReader{r: io.LimitReader(rc, art.layer.Size+1)}
	body := io.TeeReader(counted, h)
	if err := extractDB(body, dir, m.opts.MaxDBSize); err != nil {
		return err
	}
	// Drain what follows the tar end so the digest covers the whole blob.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return dbErr("LayerCorrupt", err)
	}
	if counted.n != art.layer.Size {
		return dbErrf("LayerCorrupt", "layer has %d bytes, manifest says %d", counted.n, art.layer.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != art.layer.Digest.String() {
		return dbErrf("DigestMismatch", "layer digest %s, manifest says %s", got, art.layer.Digest)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// extractDB reads a gzip-compressed tar and writes its trivy.db and
// metadata.json into dir. It refuses the archive if an entry is anything
// but a regular file with one of those two names (no paths, links or
// devices), if a name repeats, if a file is larger than allowed, or if
// either file is missing.
func extractDB(r io.Reader, dir string, maxDB int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return dbErr("LayerCorrupt", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dbErr("LayerCorrupt", err)
		}
		nameInTar := hdr.Name
		clean := path.Clean(strings.TrimPrefix(nameInTar, "./"))
		if path.IsAbs(nameInTar) || strings.Contains(nameInTar, "..") || strings.Contains(clean, "/") || strings.Contains(nameInTar, `\`) {
			return dbErrf("UnsafeArchive", "entry %q is not a plain file name", nameInTar)
		}
		if hdr.Typeflag != tar.TypeReg {
			return dbErrf("UnsafeArchive", "entry %q has type %q, want a regular file", nameInTar, string(hdr.Typeflag))
		}
		var limit int64
		switch clean {
		case dbFileName:
			limit = maxDB
		case metadataName:
			limit = maxMetadataSize
		default:
			return dbErrf("UnexpectedFile", "entry %q is not %s or %s", nameInTar, dbFileName, metadataName)
		}
		if seen[clean] {
			return dbErrf("UnsafeArchive", "entry %q appears twice", nameInTar)
		}
		seen[clean] = true
		if hdr.Size < 0 || hdr.Size > limit {
			return dbErrf("TooLarge", "%s has %d bytes, limit %d", clean, hdr.Size, limit)
		}
		if err := writeFileFrom(filepath.Join(dir, clean), tr, hdr.Size); err != nil {
			return err
		}
	}
	// Read gzip to its end, which checks its CRC and length.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return dbErr("LayerCorrupt", err)
	}
	for _, f := range []string{dbFileName, metadataName} {
		if !seen[f] {
			return dbErrf("FileMissing", "archive has no %s", f)
		}
	}
	return nil
}

func writeFileFrom(p string, r io.Reader, size int64) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return dbErr("CacheUnwritable", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return dbErr("LayerCorrupt", err)
	}
	if n != size {
		return dbErrf("LayerCorrupt", "%s is truncated: %d of %d bytes", filepath.Base(p), n, size)
	}
	return nil
}
