package e2e

import (
	"archive/tar"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// The large images are what a big application base looks like (a machine
// learning runtime, say): a Debian root, two layers of large shared
// libraries, each just under the 100 MiB above which Trivy spools a file
// to disk rather than holding it in memory (the most a file can cost the
// analysis), logs, one of them over that size, and thousands of small
// assets. Their layers are about 1 GiB together, uncompressed.
const (
	mib = int64(1) << 20

	smallFiles    = 2000
	smallFileMax  = 16 << 10
	smallBinaries = 40
)

// largeFile is one file of a large image's layer.
type largeFile struct {
	name string
	mode int64
	size int64
	text bool // log lines rather than pseudo-random bytes
}

// largeImageLayers are the layers above the Debian root.
var largeImageLayers = [][]largeFile{
	{
		{name: "opt/engine/lib/libengine-core.so", mode: 0o755, size: 99 * mib},
		{name: "opt/engine/lib/libkernels.so", mode: 0o755, size: 98 * mib},
		{name: "opt/engine/lib/libruntime.so", mode: 0o755, size: 97 * mib},
		{name: "opt/engine/lib/libtensor.so", mode: 0o755, size: 96 * mib},
		{name: "opt/engine/lib/libgraph.so", mode: 0o755, size: 95 * mib},
	},
	{
		{name: "opt/engine/plugins/libcodecs.so", mode: 0o755, size: 94 * mib},
		{name: "opt/engine/plugins/libmodel.so", mode: 0o755, size: 93 * mib},
		{name: "opt/engine/plugins/libvision.so", mode: 0o755, size: 92 * mib},
		{name: "opt/engine/plugins/libspeech.so", mode: 0o755, size: 91 * mib},
		{name: "opt/engine/plugins/libsearch.so", mode: 0o755, size: 90 * mib},
	},
	{
		{name: "var/log/engine/engine.log", mode: 0o644, size: 104 * mib, text: true},
		{name: "var/log/engine/engine.log.1", mode: 0o644, size: 8 * mib, text: true},
	},
}

// largeImagePackages are the dpkg packages of the Debian root; openssl
// has a critical flaw in largeImageAdvisories, so a scan finds it.
var largeImagePackages = []imagetest.Package{
	{Name: "base-files", Version: "12.4+deb12u11"},
	{Name: "bash", Version: "5.2.15-2+b8"},
	{Name: "coreutils", Version: "9.1-1"},
	{Name: "libc6", Version: "2.36-9+deb12u10", Source: "glibc"},
	{Name: "libssl3", Version: "3.0.17-1~deb12u1", Source: "openssl"},
	{Name: "openssl", Version: "3.0.17-1~deb12u1"},
	{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Source: "zlib"},
}

var largeImageAdvisories = []vulndbtest.Advisory{
	{ID: "CVE-2099-1001", Distro: vulndbtest.Debian12, Package: "openssl", FixedVersion: "3.0.17-1~deb12u2", Severity: "CRITICAL"},
	{ID: "CVE-2099-1002", Distro: vulndbtest.Debian12, Package: "glibc", Severity: "MEDIUM"},
}

// largeImage builds the large image of seed; images of different seeds
// share only the Debian root, so each scan analyses its own gigabyte.
func largeImage(seed uint64) (v1.Image, int64, error) {
	base, err := imagetest.DebianImage(imagetest.DistroOptions{
		Packages: largeImagePackages,
		Created:  time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second),
	})
	if err != nil {
		return nil, 0, err
	}
	var layers []*imagetest.StreamedLayer
	var total int64
	for i, files := range largeImageLayers {
		l, err := imagetest.NewStreamedLayer(func(tw *tar.Writer) error {
			for j, f := range files {
				if err := writeLargeFile(tw, f, seed<<8|uint64(i)<<4|uint64(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		layers = append(layers, l)
	}
	small, err := imagetest.NewStreamedLayer(func(tw *tar.Writer) error { return writeSmallFiles(tw, seed) })
	if err != nil {
		return nil, 0, err
	}
	layers = append(layers, small)
	for _, l := range layers {
		n, _ := l.Size()
		total += n
	}
	img, err := imagetest.AppendStreamedLayers(base, layers...)
	return img, total, err
}

func writeLargeFile(tw *tar.Writer, f largeFile, seed uint64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: f.size,
		ModTime: time.Unix(1764460800, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if f.text {
		return writeLog(tw, f.size, seed)
	}
	return writeRandom(tw, f.size, seed)
}

// writeRandom writes n pseudo-random bytes of seed, a chunk at a time.
func writeRandom(tw *tar.Writer, n int64, seed uint64) error {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		chunk := buf[:min(n, int64(len(buf)))]
		_, _ = rng.Read(chunk)
		if _, err := tw.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}

var (
	logLevels  = []string{"INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"}
	logPaths   = []string{"/api/v1/items/", "/api/v1/orders/", "/healthz", "/api/v2/search?q=", "/metrics"}
	logMethods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
)

// writeLog writes n bytes of access-log lines of seed, a chunk at a time.
func writeLog(tw *tar.Writer, n int64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	t := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	want := int(min(n, 1<<20))
	buf := make([]byte, 0, want+256)
	for n > 0 {
		buf = buf[:0]
		for len(buf) < want {
			t = t.Add(time.Duration(rng.IntN(5000)) * time.Microsecond)
			buf = t.AppendFormat(buf, "2006-01-02T15:04:05.000000Z07:00")
			buf = append(buf, ' ')
			buf = append(buf, logLevels[rng.IntN(len(logLevels))]...)
			buf = append(buf, " request handled method="...)
			buf = append(buf, logMethods[rng.IntN(len(logMethods))]...)
			buf = append(buf, " path="...)
			buf = append(buf, logPaths[rng.IntN(len(logPaths))]...)
			buf = strconv.AppendUint(buf, rng.Uint64N(1_000_000), 10)
			buf = append(buf, " status="...)
			buf = strconv.AppendInt(buf, int64(200+100*rng.IntN(4)), 10)
			buf = append(buf, " durationMs="...)
			buf = strconv.AppendInt(buf, int64(rng.IntN(2000)), 10)
			buf = append(buf, " requestId="...)
			buf = strconv.AppendUint(buf, rng.Uint64(), 16)
			buf = append(buf, '\n')
		}
		chunk := buf[:min(n, int64(len(buf)))]
		if _, err := tw.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}

// writeSmallFiles writes thousands of small assets, text and binary, and
// a few small executables.
func writeSmallFiles(tw *tar.Writer, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x51a11))
	for i := range smallFiles {
		f := largeFile{name: fmt.Sprintf("opt/engine/assets/%02d/asset-%05d.dat", i%64, i),
			mode: 0o644, size: 1 + rng.Int64N(smallFileMax), text: i%2 == 0}
		if f.text {
			f.name = fmt.Sprintf("opt/engine/assets/%02d/asset-%05d.txt", i%64, i)
		}
		if err := writeLargeFile(tw, f, seed<<20|uint64(i)); err != nil {
			return err
		}
	}
	for i := range smallBinaries {
		f := largeFile{name: fmt.Sprintf("usr/local/bin/engine-tool-%02d", i), mode: 0o755, size: 64<<10 + rng.Int64N(1<<20)}
		if err := writeLargeFile(tw, f, seed<<20|1<<19|uint64(i)); err != nil {
			return err
		}
	}
	return nil
}
