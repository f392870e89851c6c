package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Entry is one entry of a layer, written as given: no parent directories
// are added and the name is not cleaned, so a test can write whiteouts
// (".wh.name", ".wh..wh..opq") and hostile names ("../../etc/x").
type Entry struct {
	// Name is the entry's name in the archive.
	Name string
	// Mode holds the permission bits, with setuid (0o4000) and setgid
	// (0o2000) as tar writes them. Zero means 0o644.
	Mode int64
	// Content of the regular file.
	Content string
}

// LayerTar writes entries into a tar archive, in order, as regular files
// with fixed metadata.
func LayerTar(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: mode, Size: int64(len(e.Content)),
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
		if _, err := tw.Write([]byte(e.Content)); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return buf.Bytes(), nil
}

// AppendLayers adds one layer per element of layers on top of base, each
// the uncompressed content given (usually from LayerTar; anything else
// makes a layer that is not a tar archive).
func AppendLayers(base v1.Image, layers ...[]byte) (v1.Image, error) {
	img := base
	for _, b := range layers {
		l, err := layerFromTar(b)
		if err != nil {
			return nil, err
		}
		if img, err = appendLayer(img, l); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func appendLayer(img v1.Image, l v1.Layer) (v1.Image, error) {
	img, err := mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "imagetest"}})
	if err != nil {
		return nil, fmt.Errorf("adding layer: %w", err)
	}
	return img, nil
}

// WithUser sets the user of an image's config.
func WithUser(img v1.Image, user string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config.DeepCopy()
	cfg.User = user
	return mutate.Config(img, *cfg)
}
