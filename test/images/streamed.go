package imagetest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// StreamedLayer is an uncompressed OCI layer whose tar archive is written
// by a function each time it is read, so that a layer of gigabytes costs
// no memory or disk in the test that builds it. The function must write
// the same bytes every time (a seeded pseudo-random generator, not
// crypto/rand); NewStreamedLayer runs it once to learn the digest.
//
// The layer is stored uncompressed (application/vnd.oci.image.layer.v1.tar):
// its digest and diffID are the same, and nothing is compressed or
// decompressed twice.
type StreamedLayer struct {
	write  func(*tar.Writer) error
	digest v1.Hash
	size   int64
}

// NewStreamedLayer returns the layer whose entries write adds to a tar
// archive; NewStreamedLayer closes the archive after it.
func NewStreamedLayer(write func(*tar.Writer) error) (*StreamedLayer, error) {
	l := &StreamedLayer{write: write}
	h := sha256.New()
	n, err := l.writeTo(h)
	if err != nil {
		return nil, err
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	l.size = n
	return l, nil
}

func (l *StreamedLayer) writeTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	if err := l.write(tw); err != nil {
		return cw.n, fmt.Errorf("writing layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("writing layer: %w", err)
	}
	return cw.n, nil
}

// Digest implements v1.Layer.
func (l *StreamedLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID implements v1.Layer: the same as the digest, the layer being
// uncompressed.
func (l *StreamedLayer) DiffID() (v1.Hash, error) { return l.digest, nil }

// Size implements v1.Layer.
func (l *StreamedLayer) Size() (int64, error) { return l.size, nil }

// MediaType implements v1.Layer.
func (l *StreamedLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }

// Compressed implements v1.Layer: the archive as it is stored.
func (l *StreamedLayer) Compressed() (io.ReadCloser, error) { return l.Uncompressed() }

// Uncompressed implements v1.Layer: the archive, written as it is read.
// A run that writes other bytes than the first fails the read.
func (l *StreamedLayer) Uncompressed() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		h := sha256.New()
		n, err := l.writeTo(io.MultiWriter(pw, h))
		if err == nil && (n != l.size || hex.EncodeToString(h.Sum(nil)) != l.digest.Hex) {
			err = fmt.Errorf("layer %s: the writer is not deterministic", l.digest)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// AppendStreamedLayers is AppendLayers for streamed layers.
func AppendStreamedLayers(base v1.Image, layers ...*StreamedLayer) (v1.Image, error) {
	img := base
	for _, l := range layers {
		var err error
		img, err = appendLayer(img, l)
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}
