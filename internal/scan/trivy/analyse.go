package trivy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	artifactimage "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/plinth-dev/plinth/internal/scan"
)

// analysersMu works around shared state in Trivy: its analysers are
// process-wide singletons, and building an artifact calls Init on some of
// them (dpkg licenses, Python eggs), writing fields that running analyses
// read. Building takes the lock for writing, analysing for reading, so
// analyses run concurrently but never while an artifact is being built.
//
// No network I/O happens while it is held, in either mode: a download
// that hangs would otherwise hold it, and since a waiting writer blocks
// new readers, every other scan would stall behind it. The layers an
// analysis needs are downloaded to the spool first, without the lock.
var analysersMu sync.RWMutex

// layerParallelism is how many layers of one image Trivy analyses at
// once, and how many analyses of files of one layer run at once. It bounds
// memory: Trivy holds each file under 100 MiB that an analyser reads (an
// executable, a text file the secret scanner reads) whole in memory while
// it is analysed, and the walk reads the next such file before an analysis
// slot frees. With 1, a scan holds at most two such files at a time;
// with 2, up to six (three in each of two layers), and two scans of large
// images (--scan-concurrency 2) went past a 1 GiB memory limit. Scans of
// different images still run side by side.
const layerParallelism = 1

// maxAnalysisRounds bounds the download-then-analyse rounds of one image;
// each round analyses at least one layer, so only an image with more
// layers than this that do not fit the spool together needs more (and
// then fails, to be retried).
const maxAnalysisRounds = 256

// analyse runs Trivy's analysers over the layers of one image that are
// not in the layer cache yet, and returns the keys to apply. It works in
// rounds: ask Trivy which layers it lacks (a probe that reads only the
// cache), download as many of them as fit the spool, analyse those from
// local files, and again until none is missing.
func (s *Scanner) analyse(ctx context.Context, pi platformImage) (artifact.Reference, error) {
	img, err := newTrivyImage(pi)
	if err != nil {
		return artifact.Reference{}, err
	}
	beginAnalysis()
	defer endAnalysis()
	ac := &analysisCache{layerCache: s.layers}
	analysersMu.Lock()
	art, err := artifactimage.NewArtifact(img, ac, artifact.Option{
		DisabledAnalyzers: disabledAnalyzers,
		// Looks up SBOMs of unpackaged binaries in Rekor: network, off.
		DisabledHandlers: []ftypes.HandlerType{ftypes.UnpackagedPostHandler},
		Offline:          true,
		NoProgress:       true,
		Parallel:         layerParallelism,
	})
	analysersMu.Unlock()
	if err != nil {
		return artifact.Reference{}, internalErr("preparing the analysis for "+pi.platform, err)
	}
	defer func() { _ = art.Clean(artifact.Reference{}) }()

	diffIDs := img.config.RootFS.DiffIDs
	for round := 0; round < maxAnalysisRounds; round++ {
		// Probe: which layers (by index) and whether the config are missing.
		ac.probe()
		analysersMu.RLock()
		_, perr := art.Inspect(ctx)
		analysersMu.RUnlock()
		missing, missingArtifact, ok := ac.probed()
		if !ok {
			return artifact.Reference{}, internalErr("analysing the image for "+pi.platform, perr)
		}
		if len(missing) > len(diffIDs) {
			return artifact.Reference{}, internalErr("analysing the image for "+pi.platform, errors.New("more layer keys than diffIDs"))
		}

		// Download as many missing layers as fit the spool together.
		chunk, reserved, err := s.pickChunk(ctx, img, pi.platform, missing, diffIDs)
		if err != nil {
			return artifact.Reference{}, err
		}
		last := len(chunk) == len(missing)
		layers := map[v1.Hash]v1.Layer{}
		var files []string
		release := func() {
			img.setSpooled(nil)
			removeAll(files)
			s.spool.release(reserved)
		}
		for _, i := range chunk {
			remote, err := pi.image.LayerByDiffID(diffIDs[i])
			if err != nil {
				release()
				return artifact.Reference{}, invalidImage("reading the manifest for "+pi.platform, err)
			}
			if _, ok := layers[diffIDs[i]]; ok {
				continue
			}
			size, err := remote.Size()
			if err != nil {
				release()
				return artifact.Reference{}, invalidImage("reading the manifest for "+pi.platform, err)
			}
			local, file, err := s.spool.download(remote, diffIDs[i], s.advance)
			if err != nil {
				release()
				return artifact.Reference{}, err
			}
			s.downloads.Add(1)
			layers[diffIDs[i]] = &guardedLayer{Layer: local, max: s.limits.inflationLimit(size), platform: pi.platform}
			files = append(files, file)
		}
		img.setSpooled(layers)

		// Analyse this round's layers, and the config in the last round.
		keys := make(map[string]bool, len(chunk))
		for _, i := range chunk {
			keys[ac.key(i)] = true
		}
		ac.analyse(keys, last && missingArtifact)
		analysersMu.RLock()
		ref, err := art.Inspect(ctx)
		analysersMu.RUnlock()
		release()
		if err != nil {
			if ctx.Err() != nil {
				return artifact.Reference{}, ctx.Err()
			}
			var le *scan.LimitError
			if errors.As(err, &le) {
				return artifact.Reference{}, le
			}
			var se *scan.Error
			if errors.As(err, &se) && errors.Is(err, errEntryOutsideRoot) {
				return artifact.Reference{}, se
			}
			if notAnArchive(err) {
				return artifact.Reference{}, &scan.Error{Kind: scan.KindInvalid,
					Message: "analysing the layers for " + pi.platform + ": a layer is not a valid tar archive", Err: err}
			}
			return artifact.Reference{}, internalErr("analysing the image for "+pi.platform, err)
		}
		if last {
			return ref, nil
		}
	}
	return artifact.Reference{}, internalErr("analysing the image for "+pi.platform, errors.New("too many analysis rounds"))
}

// pickChunk reserves spool room for the longest prefix of missing layers
// that fits it together (at least one), waiting for room if needed, and
// returns their indexes and the bytes reserved.
func (s *Scanner) pickChunk(ctx context.Context, img *trivyImage, platform string, missing []int, diffIDs []v1.Hash) ([]int, int64, error) {
	if len(missing) == 0 {
		return nil, 0, nil
	}
	capacity := s.spool.Capacity()
	var chunk []int
	var total int64
	for _, i := range missing {
		l, err := img.Image.LayerByDiffID(diffIDs[i])
		if err != nil {
			return nil, 0, invalidImage("reading the manifest for "+platform, err)
		}
		size, err := l.Size()
		if err != nil {
			return nil, 0, invalidImage("reading the manifest for "+platform, err)
		}
		if size > capacity && len(chunk) == 0 {
			return nil, 0, &scan.LimitError{Limit: scan.LimitLayerSize, Platform: platform, Value: size, Max: capacity}
		}
		if total+size > capacity {
			break
		}
		chunk = append(chunk, i)
		total += size
	}
	if err := s.spool.reserve(ctx, total); err != nil {
		if errors.Is(err, errSpoolTooSmall) {
			// The spool shrank meanwhile; the next scan sees its size.
			return nil, 0, &scan.LimitError{Limit: scan.LimitLayerSize, Platform: platform, Value: total, Max: s.spool.Capacity()}
		}
		return nil, 0, err
	}
	return chunk, total, nil
}

// errProbed ends a probing Inspect once Trivy has said what it lacks.
var errProbed = errors.New("probed the layer cache")

// analysisCache is the layer cache as one artifact sees it. In a probe it
// records which layer keys Trivy lacks and stops the inspection before
// anything is read; in an analysis it reports missing only the layers
// downloaded for this round, so Trivy reads no other.
type analysisCache struct {
	*layerCache

	mu              sync.Mutex
	probing         bool
	probeDone       bool
	keys            []string // layer keys in diffID order, from the last probe
	missing         []int    // indexes into keys
	missingArtifact bool
	allowed         map[string]bool
	withArtifact    bool
}

func (c *analysisCache) probe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing, c.probeDone = true, false
}

func (c *analysisCache) probed() (missing []int, missingArtifact, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.missing, c.missingArtifact, c.probeDone
}

func (c *analysisCache) key(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[i]
}

func (c *analysisCache) analyse(keys map[string]bool, withArtifact bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing, c.allowed, c.withArtifact = false, keys, withArtifact
}

// MissingBlobs implements cache.ArtifactCache.
func (c *analysisCache) MissingBlobs(ctx context.Context, artifactID string, blobIDs []string) (bool, []string, error) {
	missingArtifact, missing, err := c.layerCache.MissingBlobs(ctx, artifactID, blobIDs)
	if err != nil {
		return false, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probing {
		c.keys = slices.Clone(blobIDs)
		var idx []int
		for i, k := range blobIDs {
			if slices.Contains(missing, k) && !slices.ContainsFunc(idx, func(j int) bool { return blobIDs[j] == k }) {
				idx = append(idx, i)
			}
		}
		c.missing = idx
		c.missingArtifact = missingArtifact
		c.probeDone = true
		return false, nil, errProbed
	}
	var out []string
	for _, k := range missing {
		if c.allowed[k] {
			out = append(out, k)
		}
	}
	return missingArtifact && c.withArtifact, out, nil
}

func internalErr(op string, err error) error {
	return &scan.Error{Kind: scan.KindInternal, Message: op + " failed", Err: err}
}

// notAnArchive tells whether an analysis failed because a layer is not a
// tar archive (or not a compressed one): the image is malformed, and
// scanning it again will not help.
func notAnArchive(err error) bool {
	return errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, gzip.ErrHeader) ||
		errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF)
}
