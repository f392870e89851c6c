// Package imagetest builds small, deterministic container images and
// indexes for tests and pushes them to registries.
package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotation keys used on manifests and index entries.
const (
	// AnnotationBaseDigest is the OCI annotation naming the digest of the
	// image an image was built from.
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	// AnnotationBaseName is the OCI annotation naming the reference of the
	// image an image was built from.
	AnnotationBaseName = "org.opencontainers.image.base.name"
	// AnnotationReferenceType marks BuildKit attestation manifests in an index.
	AnnotationReferenceType = "vnd.docker.reference.type"
	// AnnotationReferenceDigest names the image an attestation manifest describes.
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	// ReferenceTypeAttestation is the value of AnnotationReferenceType for
	// attestation manifests.
	ReferenceTypeAttestation = "attestation-manifest"
)

// ImageOptions describes a single-platform image.
type ImageOptions struct {
	// Files maps absolute or relative paths to file contents; they go into
	// one layer. Parent directories are added automatically.
	Files map[string]string
	// Created is the image creation time recorded in its config. Zero
	// leaves it unset.
	Created time.Time
	// OS defaults to "linux".
	OS string
	// Architecture defaults to "amd64".
	Architecture string
	// Variant is the optional CPU variant, such as "v8".
	Variant string
	// Labels are written to the config.
	Labels map[string]string
	// Annotations are written to the image manifest.
	Annotations map[string]string
}

// Image builds a single-platform OCI image. The same options always produce
// the same digest.
func Image(o ImageOptions) (v1.Image, error) {
	if o.OS == "" {
		o.OS = "linux"
	}
	if o.Architecture == "" {
		o.Architecture = "amd64"
	}
	tarball, err := tarFiles(o.Files, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := layerFromTar(tarball)
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg := &v1.ConfigFile{
		OS:           o.OS,
		Architecture: o.Architecture,
		Variant:      o.Variant,
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{Labels: o.Labels},
	}
	if !o.Created.IsZero() {
		cfg.Created = v1.Time{Time: o.Created.UTC()}
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	hist := v1.History{CreatedBy: "imagetest", Created: cfg.Created}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: hist})
	if err != nil {
		return nil, fmt.Errorf("adding layer: %w", err)
	}
	if len(o.Annotations) > 0 {
		img = mutate.Annotations(img, o.Annotations).(v1.Image)
	}
	return img, nil
}

// Index builds a multi-platform OCI index of imgs, each entry carrying the
// platform from its image config. With withAttestation it also adds, for each
// image, an attestation manifest with platform unknown/unknown and the
// vnd.docker.reference annotations, the way BuildKit writes provenance.
func Index(imgs []v1.Image, withAttestation bool) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading config of image %d: %w", i, err)
		}
		p := cf.Platform()
		if p == nil {
			return nil, fmt.Errorf("image %d has no platform in its config", i)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	if withAttestation {
		for i, img := range imgs {
			d, err := img.Digest()
			if err != nil {
				return nil, fmt.Errorf("digest of image %d: %w", i, err)
			}
			att, err := attestation(d)
			if err != nil {
				return nil, err
			}
			adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
				Annotations: map[string]string{
					AnnotationReferenceType:   ReferenceTypeAttestation,
					AnnotationReferenceDigest: d.String(),
				},
			}})
		}
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// attestation builds a minimal in-toto attestation manifest for subject.
func attestation(subject v1.Hash) (v1.Image, error) {
	stmt := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{"name":"_","digest":{%q:%q}}],"predicate":{}}`,
		subject.Algorithm, subject.Hex)
	layer := static.NewLayer([]byte(stmt), "application/vnd.in-toto+json")
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{OS: "unknown", Architecture: "unknown", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		return nil, fmt.Errorf("building attestation config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
	})
	if err != nil {
		return nil, fmt.Errorf("building attestation: %w", err)
	}
	return img, nil
}

// PushImage writes img to ref, such as "127.0.0.1:5000/base/alpine:3.22",
// and returns its digest.
func PushImage(ctx context.Context, ref string, img v1.Image, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parsing reference: %w", err)
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return "", fmt.Errorf("pushing image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("computing image digest: %w", err)
	}
	return d.String(), nil
}

// PushIndex writes idx and all its manifests to ref and returns its digest.
func PushIndex(ctx context.Context, ref string, idx v1.ImageIndex, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parsing reference: %w", err)
	}
	if err := remote.WriteIndex(r, idx, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return "", fmt.Errorf("pushing index: %w", err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("computing index digest: %w", err)
	}
	return d.String(), nil
}

// tarFiles writes files, with their parent directories, into a tar archive
// in sorted order with fixed metadata.
func tarFiles(files map[string]string, mtime time.Time) ([]byte, error) {
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	mtime = mtime.UTC()
	dirs := map[string]bool{}
	var names []string
	for p := range files {
		clean := strings.TrimPrefix(path.Clean("/"+p), "/")
		if clean == "" {
			return nil, fmt.Errorf("invalid file path %q", p)
		}
		names = append(names, p)
		for d := path.Dir(clean); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Strings(names)
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
	}
	for _, p := range names {
		content := files[p]
		clean := strings.TrimPrefix(path.Clean("/"+p), "/")
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: clean, Mode: 0o644, Size: int64(len(content)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
		if _, err := io.WriteString(tw, content); err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return buf.Bytes(), nil
}

func layerFromTar(b []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building layer: %w", err)
	}
	return l, nil
}
