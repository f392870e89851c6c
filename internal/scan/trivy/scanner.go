package trivy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	trivylog "github.com/aquasecurity/trivy/pkg/log"
	"github.com/aquasecurity/trivy/pkg/sbom/cyclonedx"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"

	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
)

// Version is the Trivy library version, recorded as the tool in SBOMs
// and vulnerability attestations.
const Version = "0.74.0"

// Defaults of Options.
const (
	DefaultConcurrency     = 2
	DefaultResultsInMemory = 1024
	DefaultResultBytes     = int64(64) << 20
	DefaultScanTimeout     = 10 * time.Minute
)

// Options configure a Scanner.
type Options struct {
	// DB is the vulnerability DB; required.
	DB *DBManager
	// CacheDir holds the layer analysis cache and the persisted reports;
	// required. It may be the DBManager's CacheDir.
	CacheDir string
	// Limits bound the images scanned.
	Limits Limits
	// CacheMaxBytes bounds everything plinth keeps on the cache volume:
	// the vulnerability DB, the layers being downloaded, the layer analysis
	// cache and the persisted reports, shared as scan.BudgetSplit says
	// (with scan.DBReserve of the loaded DB). The shares are computed again
	// when the DB changes. Default scan.DefaultCacheMaxBytes (4 GiB), the
	// sizeLimit of the manager's cache volume.
	CacheMaxBytes int64
	// LayerCacheBytes, when positive, bounds the layer analysis cache
	// instead of its share of CacheMaxBytes (tests use it).
	LayerCacheBytes int64
	// ScanTimeout bounds each scan from the moment it gets a slot, whatever
	// the caller's context says. Default 10m.
	ScanTimeout time.Duration
	// Concurrency is how many scans may run at once. Default 2.
	Concurrency int
	// ResultsInMemory is how many reports are kept in memory; all reports
	// of the current DB version are also kept on disk. Default 1024.
	ResultsInMemory int
	// ResultBytesInMemory bounds the memory those reports (mostly their
	// SBOMs) take, approximately, in bytes. Default 64 MiB.
	ResultBytesInMemory int64
	// LogHandler receives Trivy's own logs. Trivy logs through the
	// process-wide slog default; NewScanner installs this handler
	// there if nothing else has (Trivy otherwise buffers its logs in
	// memory forever). Nil discards them.
	LogHandler slog.Handler
	// MaxSecretFileSize is the largest file, in bytes, the secret scanner
	// reads; larger text files are reported as skipped. Trivy's analysers
	// are process-wide, so the last scanner built sets it for all.
	// Default DefaultMaxSecretFileSize (10 MiB).
	MaxSecretFileSize int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Stats are running totals, for benchmarks and metrics.
type Stats struct {
	// Scans is the number of scans performed (reports computed).
	Scans int64
	// CacheHits is the number of requests answered from the result cache.
	CacheHits int64
	// DiskHits is the part of CacheHits read from disk.
	DiskHits int64
	// SharedScans is the number of requests that joined a scan of the same
	// digest already in flight.
	SharedScans int64
	// LayerDownloads is the number of layers whose content was fetched.
	LayerDownloads int64
	// Failures is the number of scans that failed.
	Failures int64
	// LayerCacheBytes is the current size of the layer analysis cache.
	LayerCacheBytes int64
}

// Scanner scans images in-process with Trivy. It is safe for
// concurrent use.
type Scanner struct {
	db       *DBManager
	limits   Limits
	layers   *layerCache
	results  *resultCache
	spool    *spool
	service  local.Service
	now      func() time.Time
	sem      chan struct{}
	group    singleflight.Group
	timeout  time.Duration
	progress scan.Progress

	budgetMu      sync.Mutex
	budgetTotal   int64
	budgetVersion string // DB version the shares were computed for
	budget        scan.DiskBudget
	fixedLayers   int64

	// scanned, when set, is called with each report computed, before it
	// is stored (tests).
	scanned func(*scan.Report)

	scans, hits, diskHits, shared, downloads, failures atomic.Int64
}

var _ scan.Scanner = (*Scanner)(nil)

var logOnce sync.Once

// NewScanner builds a scanner over the DB managed by o.DB.
func NewScanner(o Options) (*Scanner, error) {
	if o.DB == nil {
		return nil, errors.New("scanner needs a vulnerability database manager")
	}
	if o.CacheDir == "" {
		return nil, errors.New("scanner needs a cache directory")
	}
	if o.CacheMaxBytes <= 0 {
		o.CacheMaxBytes = scan.DefaultCacheMaxBytes
	}
	if o.ScanTimeout <= 0 {
		o.ScanTimeout = DefaultScanTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ResultsInMemory <= 0 {
		o.ResultsInMemory = DefaultResultsInMemory
	}
	if o.ResultBytesInMemory <= 0 {
		o.ResultBytesInMemory = DefaultResultBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxSecretFileSize <= 0 {
		o.MaxSecretFileSize = DefaultMaxSecretFileSize
	}
	maxSecretFileSize.Store(o.MaxSecretFileSize)
	logOnce.Do(func() { installTrivyLogger(o.LogHandler) })

	// The secret size limit changes what an analysis records without
	// changing Trivy's keys: it is part of the layer cache's.
	lc, err := newLayerCache(filepath.Join(o.CacheDir, "layers"), 1, o.Now)
	if err != nil {
		return nil, err
	}
	lc.salt = fmt.Sprintf("s%d-", o.MaxSecretFileSize)
	rc, err := newResultCache(filepath.Join(o.CacheDir, "results"), o.ResultsInMemory, o.ResultBytesInMemory, o.DB.Version)
	if err != nil {
		return nil, fmt.Errorf("creating result cache: %w", err)
	}
	sp, err := newSpool(filepath.Join(o.CacheDir, "spool"), 0)
	if err != nil {
		return nil, err
	}
	s := &Scanner{
		db:          o.DB,
		limits:      o.Limits.withDefaults(),
		layers:      lc,
		results:     rc,
		spool:       sp,
		service:     local.NewService(applier.NewApplier(lc), ospkg.NewScanner(), langpkg.NewScanner(), vulnerability.NewClient(trivydb.Config{})),
		now:         o.Now,
		sem:         make(chan struct{}, o.Concurrency),
		timeout:     o.ScanTimeout,
		budgetTotal: o.CacheMaxBytes,
		fixedLayers: o.LayerCacheBytes,
	}
	s.rebudget(o.DB.Version())
	return s, nil
}

// Budget returns the current shares of the cache volume.
func (s *Scanner) Budget() scan.DiskBudget {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	return s.budget
}

// rebudget computes the shares of the cache volume for DB version v, if
// they were computed for another, and applies them: the spool and the
// layer cache get their bounds, persisted reports of other DB versions
// are deleted and those of v are kept within theirs.
func (s *Scanner) rebudget(v string) {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	if v == s.budgetVersion && s.budget != (scan.DiskBudget{}) {
		return
	}
	b, err := scan.BudgetSplit(s.budgetTotal, s.db.DiskReserve())
	if err != nil && v != "" {
		slog.Default().Warn("Cache volume budget leaves no room for scans", "err", err)
	}
	s.budget, s.budgetVersion = b, v
	layers := b.Layers
	if s.fixedLayers > 0 {
		layers = s.fixedLayers
	}
	s.layers.setMax(max(layers, 1))
	s.spool.setCapacity(b.Spool)
	s.results.setDiskMax(b.Results)
	if v != "" {
		s.results.setVersion(v)
	}
}

// Health returns an error when scans are pending (waiting for a slot or
// running) and none has made progress (finished, or read layer bytes)
// for longer than maxStall at now. Serve it as a health check.
func (s *Scanner) Health(now time.Time, maxStall time.Duration) error {
	return s.progress.Health(now, maxStall)
}

// advance records n layer bytes read.
func (s *Scanner) advance(int) { s.progress.Advance(s.now()) }

// installTrivyLogger replaces Trivy's buffering default logger.
func installTrivyLogger(h slog.Handler) {
	if _, ok := slog.Default().Handler().(*trivylog.DeferredHandler); !ok {
		return // someone configured slog already
	}
	if h == nil {
		h = slog.NewTextHandler(io.Discard, nil)
	}
	slog.SetDefault(slog.New(h))
}

// Stats returns the running totals.
func (s *Scanner) Stats() Stats {
	return Stats{
		Scans:           s.scans.Load(),
		CacheHits:       s.hits.Load(),
		DiskHits:        s.diskHits.Load(),
		SharedScans:     s.shared.Load(),
		LayerDownloads:  s.downloads.Load(),
		Failures:        s.failures.Load(),
		LayerCacheBytes: s.layers.Size(),
	}
}

// Cached returns the report for req under the current DB without
// scanning, if there is one.
func (s *Scanner) Cached(req scan.Request) (*scan.Report, bool) {
	version := s.db.Version()
	if version == "" {
		return nil, false
	}
	filter, err := registry.ParsePlatforms(req.Platforms)
	if err != nil {
		return nil, false
	}
	r, _, ok := s.lookup(req.Image.DigestStr(), filter, version)
	return r, ok
}

// Scan returns the report of req.Image under the current DB, from the
// cache when this digest was already scanned under this DB version.
// Concurrent requests for the same digest under the same DB version share
// one scan, which runs for at most ScanTimeout once it has a slot, even if
// every caller has gone. Failures are *scan.Error (see scan.KindOf),
// except ErrDBUnavailable, *scan.LimitError and ErrNoMatchingPlatform.
func (s *Scanner) Scan(ctx context.Context, req scan.Request) (*scan.Report, error) {
	filter, err := registry.ParsePlatforms(req.Platforms)
	if err != nil {
		return nil, err
	}
	version := s.db.Version()
	if version == "" {
		return nil, scan.ErrDBUnavailable
	}
	digest := req.Image.DigestStr()
	if r, fromDisk, ok := s.lookup(digest, filter, version); ok {
		s.hits.Add(1)
		if fromDisk {
			s.diskHits.Add(1)
		}
		return r, nil
	}

	// The DB version is part of the key: a request made after a DB swap
	// never joins a scan started before it. The repository is not: a
	// digest names the same content in every repository, and the requests
	// of all of them share one scan.
	flightKey := digest + "|" + strings.Join(filter, ",") + "|" + version
	ch := s.group.DoChan(flightKey, func() (any, error) {
		return s.run(context.WithoutCancel(ctx), req, filter)
	})
	select {
	case res := <-ch:
		if res.Shared {
			s.shared.Add(1)
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return cloneReport(res.Val.(*scan.Report)), nil
	case <-ctx.Done():
		return nil, &scan.Error{Kind: scan.KindUnavailable, Message: "scan abandoned: " + ctx.Err().Error(), Err: ctx.Err()}
	}
}

// run waits for a slot and scans within the scan deadline.
func (s *Scanner) run(ctx context.Context, req scan.Request, filter []string) (*scan.Report, error) {
	s.progress.Start(s.now())
	defer func() { s.progress.Finish(s.now()) }()
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	// A scan of the digest that ended while this one waited for its slot
	// answers it.
	if version := s.db.Version(); version != "" {
		if r, _, ok := s.lookup(req.Image.DigestStr(), filter, version); ok {
			s.shared.Add(1)
			return r, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.scan(ctx, req, filter)
}

// lookup returns the stored report of digest under the platform filter
// and DB version, and whether it was read from disk.
func (s *Scanner) lookup(digest string, filter []string, version string) (*scan.Report, bool, bool) {
	return s.results.get(cacheKey(digest, filter, version), analysisKey(digest, filter), version)
}

func (s *Scanner) scan(ctx context.Context, req scan.Request, filter []string) (*scan.Report, error) {
	s.rebudget(s.db.Version())
	r, a, err := s.scanUncached(ctx, req, filter)
	if err != nil {
		s.failures.Add(1)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg := fmt.Sprintf("scan did not finish within %s", s.timeout)
			var se *scan.Error
			if errors.As(err, &se) {
				msg += ": " + se.Message
			}
			return nil, &scan.Error{Kind: scan.KindUnavailable, Message: msg, Err: err}
		}
		return nil, err
	}
	s.scans.Add(1)
	if s.scanned != nil {
		s.scanned(r)
	}
	if a != nil {
		// Stored with the DB released: the cache asks which DB is current.
		if err := s.results.putAnalysis(analysisKey(req.Image.DigestStr(), filter), a); err != nil {
			// The report is good; only the next DB update analyses again.
			slog.Default().Warn("Failed to persist the image analysis", "err", err)
		}
	}
	key := cacheKey(req.Image.DigestStr(), filter, r.DBVersion)
	if _, err := s.results.put(key, r); err != nil {
		// The report is still good; only a later restart will rescan.
		slog.Default().Warn("Failed to persist scan result", "err", err)
	}
	return r, nil
}

func (s *Scanner) scanUncached(ctx context.Context, req scan.Request, filter []string) (*scan.Report, *analysis, error) {
	// A digest analysed before is only matched against the DB again.
	if a, ok := s.results.getAnalysis(analysisKey(req.Image.DigestStr(), filter)); ok {
		r, err := s.reevaluate(ctx, req.Image.DigestStr(), a)
		if !errors.Is(err, errAnalysisGone) {
			return r, nil, err
		}
	}
	tr := req.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	tr = registry.ScopeCredentials(tr, req.Image.Context().Registry)
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}
	if req.Keychain != nil {
		ropts = append(ropts, remote.WithAuthFromKeychain(req.Keychain))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, nil, internalErr("preparing registry access", err)
	}
	ropts = append(ropts, remote.Reuse(puller))

	images, annotations, err := resolveImages(ctx, req, filter, s.limits, ropts)
	if err != nil {
		return nil, nil, err
	}

	// Analyse layers first, without holding the DB: this is the part that
	// downloads, and it does not depend on the DB.
	refs := make([]artifact.Reference, len(images))
	for i, pi := range images {
		refs[i], err = s.analyse(ctx, pi)
		if err != nil {
			return nil, nil, err
		}
	}

	version, release, err := s.db.acquire()
	if err != nil {
		return nil, nil, err
	}
	defer release()

	report := &scan.Report{
		Digest:      req.Image.DigestStr(),
		DBVersion:   version,
		Annotations: annotations,
		ScannedAt:   s.now().UTC(),
	}
	for i, pi := range images {
		if err := s.addFacts(ctx, report, pi, refs[i]); err != nil {
			return nil, nil, err
		}
	}
	sortSecrets(report)
	platforms := make([]string, len(images))
	for i, pi := range images {
		platforms[i] = pi.platform
	}
	first, err := s.match(ctx, report, platforms, refs)
	if err != nil {
		return nil, nil, err
	}
	report.SBOM, err = sbomOf(ctx, refs[0], first)
	if err != nil {
		return nil, nil, internalErr("writing the SBOM of "+platforms[0], err)
	}
	return report, analysisOf(report, refs), nil
}

// match matches the analysed packages of each platform image (refs, in
// the order of platforms) against the DB held by the caller, and sets the
// report's platforms and findings. It returns the first platform's
// response, which the SBOM describes.
func (s *Scanner) match(ctx context.Context, report *scan.Report, platforms []string, refs []artifact.Reference) (types.ScanResponse, error) {
	var first types.ScanResponse
	byKey := map[string]*scan.Finding{}
	for i, platform := range platforms {
		resp, err := s.service.Scan(ctx, refs[i].Name, refs[i].ID, refs[i].BlobIDs, scanOptions)
		if err != nil {
			return first, internalErr("matching the packages of "+platform+" against the DB", err)
		}
		if i == 0 {
			first = resp
		}
		report.Platforms = append(report.Platforms, platform)
		for _, res := range resp.Results {
			for _, v := range res.Vulnerabilities {
				k := v.VulnerabilityID + "\x00" + v.PkgName + "\x00" + v.InstalledVersion
				f, ok := byKey[k]
				if !ok {
					f = &scan.Finding{
						ID:               v.VulnerabilityID,
						Severity:         v.Severity,
						Package:          v.PkgName,
						InstalledVersion: v.InstalledVersion,
						FixedVersion:     v.FixedVersion,
						Status:           v.Status.String(),
					}
					if v.DataSource != nil {
						f.DataSource = string(v.DataSource.ID)
					}
					byKey[k] = f
				}
				if !slices.Contains(f.Platforms, platform) {
					f.Platforms = append(f.Platforms, platform)
				}
			}
		}
	}
	report.Findings = make([]scan.Finding, 0, len(byKey))
	for _, f := range byKey {
		slices.Sort(f.Platforms)
		report.Findings = append(report.Findings, *f)
	}
	sortFindings(report.Findings)
	return first, nil
}

// scanOptions are the Trivy scan settings: OS and language packages,
// vulnerabilities plus the package list for the SBOM, severities chosen
// per data source as the trivy CLI does.
var scanOptions = types.ScanOptions{
	PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
	PkgRelationships:    ftypes.Relationships,
	Scanners:            types.Scanners{types.VulnerabilityScanner, types.SBOMScanner},
	VulnSeveritySources: []dbtypes.SourceID{"auto"},
}

// disabledAnalyzers match what `trivy image --scanners vuln` turns off,
// plus the jar analyzer, which needs the Java DB.
var disabledAnalyzers = slices.Concat(
	[]analyzer.Type{
		analyzer.TypeApkCommand,
		analyzer.TypeSecret,
		analyzer.TypeLicenseFile,
		analyzer.TypeHistoryDockerfile,
		analyzer.TypeExecutable,
		analyzer.TypeRpmArchive,
		analyzer.TypeJar,
	},
	analyzer.TypeConfigFiles,
)

// sbomOf writes a CycloneDX JSON document of the packages found.
func sbomOf(ctx context.Context, ref artifact.Reference, resp types.ScanResponse) ([]byte, error) {
	results := make(types.Results, len(resp.Results))
	for i, r := range resp.Results {
		r.Vulnerabilities = nil
		results[i] = r
	}
	var os *ftypes.OS
	if resp.OS.Detected() {
		os = &resp.OS
	}
	rep := types.Report{
		SchemaVersion: 2,
		ArtifactName:  ref.Name,
		ArtifactType:  ftypes.TypeContainerImage,
		Metadata: types.Metadata{
			OS:          os,
			ImageID:     ref.ImageMetadata.ID,
			DiffIDs:     ref.ImageMetadata.DiffIDs,
			RepoDigests: ref.ImageMetadata.RepoDigests,
			ImageConfig: ref.ImageMetadata.ConfigFile,
		},
		Results: results,
	}
	m := cyclonedx.NewMarshaler(Version)
	bom, err := m.MarshalReport(ctx, rep)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).Encode(bom); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortFindings(fs []scan.Finding) {
	slices.SortFunc(fs, func(a, b scan.Finding) int {
		if d := severityRank(a.Severity) - severityRank(b.Severity); d != 0 {
			return d
		}
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		return strings.Compare(a.InstalledVersion, b.InstalledVersion)
	})
}

// severityRank orders severities from most to least severe.
func severityRank(s string) int {
	switch s {
	case "CRITICAL":
		return 0
	case "HIGH":
		return 1
	case "MEDIUM":
		return 2
	case "LOW":
		return 3
	default:
		return 4
	}
}

// addFacts adds the hardening facts, secrets and skipped files of one
// platform image to the report, from its analysed layers in the layer
// cache.
func (s *Scanner) addFacts(ctx context.Context, report *scan.Report, pi platformImage, ref artifact.Reference) error {
	cf, err := pi.image.ConfigFile()
	if err != nil {
		return classifyRegistry("fetching the image config for "+pi.platform, err)
	}
	m, err := pi.image.Manifest()
	if err != nil {
		return classifyRegistry("fetching the manifest for "+pi.platform, err)
	}
	facts := scan.ImageFacts{Platform: pi.platform, User: cf.Config.User, Annotations: m.Annotations}
	for _, l := range m.Layers {
		facts.CompressedSize += l.Size
	}
	blobs := make([]ftypes.BlobInfo, 0, len(ref.BlobIDs))
	for _, id := range ref.BlobIDs {
		b, err := s.layers.GetBlob(ctx, id)
		if err != nil {
			return internalErr("reading the analysis of "+pi.platform, err)
		}
		blobs = append(blobs, b)
	}
	secrets, skipped := layerFacts(blobs, &facts)
	report.Images = append(report.Images, facts)
	for _, sf := range secrets {
		i := slices.IndexFunc(report.Secrets, func(o scan.SecretFinding) bool {
			return o.RuleID == sf.RuleID && o.Path == sf.Path && o.Layer == sf.Layer
		})
		if i < 0 {
			report.Secrets = append(report.Secrets, sf)
			i = len(report.Secrets) - 1
		}
		if !slices.Contains(report.Secrets[i].Platforms, pi.platform) {
			report.Secrets[i].Platforms = append(report.Secrets[i].Platforms, pi.platform)
		}
	}
	for _, sk := range skipped {
		if !slices.ContainsFunc(report.SecretsSkipped, func(o scan.SkippedFile) bool { return o.Path == sk.Path && o.Layer == sk.Layer }) {
			report.SecretsSkipped = append(report.SecretsSkipped, sk)
		}
	}
	return nil
}

// sortSecrets orders the secrets by rule, path and layer, and the skipped
// files by path and layer.
func sortSecrets(r *scan.Report) {
	slices.SortFunc(r.Secrets, func(a, b scan.SecretFinding) int {
		return cmp.Or(strings.Compare(a.RuleID, b.RuleID), strings.Compare(a.Path, b.Path), strings.Compare(a.Layer, b.Layer))
	})
	for i := range r.Secrets {
		slices.Sort(r.Secrets[i].Platforms)
	}
	slices.SortFunc(r.SecretsSkipped, func(a, b scan.SkippedFile) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Layer, b.Layer))
	})
}
