package faultproxy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ServeImage makes the proxy answer for repository repo itself, without
// the upstream: tag and the image's digest name img's manifest, and its
// config and layers are served as blobs. Layers are read when requested,
// so a generated layer never has to be stored. It returns the manifest
// digest.
func (p *Proxy) ServeImage(repo, tag string, img v1.Image) (string, error) {
	s := &store{manifests: map[string]manifest{}, blobs: map[string]v1.Layer{}}
	d, err := s.addImage(img)
	if err != nil {
		return "", err
	}
	s.manifests[tag] = s.manifests[d]
	p.Add(Rule{Prefix: "/v2/" + repo + "/", Fault: s.serve})
	return d, nil
}

// ServeIndex is ServeImage for an image index and its images.
func (p *Proxy) ServeIndex(repo, tag string, idx v1.ImageIndex) (string, error) {
	s := &store{manifests: map[string]manifest{}, blobs: map[string]v1.Layer{}}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return "", err
		}
		if _, err := s.addImage(img); err != nil {
			return "", err
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return "", err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return "", err
	}
	d := digestOf(raw)
	s.manifests[d] = manifest{mediaType: string(mt), raw: raw}
	s.manifests[tag] = s.manifests[d]
	p.Add(Rule{Prefix: "/v2/" + repo + "/", Fault: s.serve})
	return d, nil
}

type manifest struct {
	mediaType string
	raw       []byte
}

// store holds what ServeImage and ServeIndex answer; it is written only
// before its rule is installed.
type store struct {
	manifests map[string]manifest // by tag and digest
	blobs     map[string]v1.Layer // by digest, config included
}

func (s *store) addImage(img v1.Image) (string, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	mt, err := img.MediaType()
	if err != nil {
		return "", err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return "", err
	}
	s.blobs[digestOf(cfg)] = static.NewLayer(cfg, types.OCIConfigJSON)
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return "", err
		}
		s.blobs[h.String()] = l
	}
	d := digestOf(raw)
	s.manifests[d] = manifest{mediaType: string(mt), raw: raw}
	return d, nil
}

func (s *store) serve(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	path := r.URL.Path
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		m, ok := s.manifests[path[i+len("/manifests/"):]]
		if !ok {
			writeError(w, r, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		Respond(http.StatusOK, m.mediaType, digestOf(m.raw), m.raw)(w, r, nil)
		return
	}
	if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		d := path[i+len("/blobs/"):]
		l, ok := s.blobs[d]
		if !ok {
			writeError(w, r, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown")
			return
		}
		size, err := l.Size()
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		rc, err := l.Compressed()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		defer rc.Close()
		_, _ = io.Copy(w, rc)
		return
	}
	writeError(w, r, http.StatusNotFound, "NAME_UNKNOWN", "unknown path")
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// config is the image config of generated images.
func config(os, arch string) *v1.ConfigFile {
	return &v1.ConfigFile{
		OS: os, Architecture: arch, Created: v1.Time{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		RootFS: v1.RootFS{Type: "layers"},
	}
}

// WideIndex generates an image index of n platform images, one per made-up
// architecture (arch0, arch1, ...), each with a config and no layers.
func WideIndex(n int) (v1.ImageIndex, error) {
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for i := range n {
		arch := fmt.Sprintf("arch%d", i)
		img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), config("linux", arch))
		if err != nil {
			return nil, err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return idx, nil
}

// ManyLayers generates a linux/amd64 image of n small layers, each a tar
// archive holding one file of its own.
func ManyLayers(n int) (v1.Image, error) {
	var layers []mutate.Addendum
	zw := gzip.NewWriter(io.Discard)
	for i := range n {
		b, err := tarOf(fmt.Sprintf("layer/%d", i), []byte(fmt.Sprint(i)))
		if err != nil {
			return nil, err
		}
		l, err := gzipLayer(zw, b)
		if err != nil {
			return nil, err
		}
		layers = append(layers, mutate.Addendum{Layer: l})
	}
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), config("linux", "amd64"))
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Append(img, layers...)
}

func tarOf(name string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipLayer compresses tarball with zw, reset for it.
func gzipLayer(zw *gzip.Writer, tarball []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	zw.Reset(&buf)
	if _, err := zw.Write(tarball); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	h := sha256.Sum256(tarball)
	return partial.CompressedToLayer(&compressed{
		b: buf.Bytes(), diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}})
}

// compressed is a gzip layer held in memory.
type compressed struct {
	b      []byte
	diffID v1.Hash
}

func (c *compressed) Digest() (v1.Hash, error) {
	h := sha256.Sum256(c.b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}, nil
}
func (c *compressed) DiffID() (v1.Hash, error)            { return c.diffID, nil }
func (c *compressed) Size() (int64, error)                { return int64(len(c.b)), nil }
func (c *compressed) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (c *compressed) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.b)), nil
}

// BombLayer generates a gzip layer of a few megabytes that inflates to a
// tar archive holding one file, name, of inflated zero bytes (up to 8 GiB,
// the most a plain tar header can declare). Its diffID is made up, as an
// attacker's would be: computing the real one means inflating the bomb.
func BombLayer(name string, inflated int64) (v1.Layer, error) {
	if inflated < 0 || inflated >= 8<<30 {
		return nil, fmt.Errorf("inflated size %d out of range", inflated)
	}
	var buf bytes.Buffer
	member := func(b []byte) error {
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(b); err != nil {
			return err
		}
		return zw.Close()
	}
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: inflated, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}); err != nil {
		return nil, err
	}
	// The header is written; the content follows below, not through tw.
	if err := member(hdr.Bytes()); err != nil {
		return nil, err
	}
	// Gzip members concatenate: one compressed MiB of zeros, repeated.
	const chunk = 1 << 20
	var one bytes.Buffer
	{
		zw, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
		_, _ = zw.Write(make([]byte, chunk))
		_ = zw.Close()
	}
	for range inflated / chunk {
		buf.Write(one.Bytes())
	}
	// The rest of the file, its padding to 512 bytes and the two zero
	// blocks ending the archive.
	rest := inflated%chunk + (512-inflated%512)%512 + 1024
	if err := member(make([]byte, rest)); err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("bomb %s %d", name, inflated)))
	return partial.CompressedToLayer(&compressed{b: buf.Bytes(), diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}})
}
