package trivy

import (
	"context"
	"errors"
	"slices"

	"github.com/aquasecurity/trivy/pkg/fanal/artifact"

	"github.com/plinth-dev/plinth/internal/scan"
)

// analysis is what a scan learns of a digest that no DB changes: which
// platform images it holds and where their analysed layers are in the
// layer cache, their facts and secrets, and the SBOM of its packages. With
// it, a scan under another DB reads the layer cache and the DB, and
// nothing else: no registry request, no SBOM written again.
type analysis struct {
	// Platforms are the scanned platform images, sorted by platform.
	Platforms []analysedImage `json:"platforms"`
	// Annotations, Images, Secrets and SecretsSkipped are the report's.
	Annotations    map[string]string    `json:"annotations,omitempty"`
	Images         []scan.ImageFacts    `json:"images,omitempty"`
	Secrets        []scan.SecretFinding `json:"secrets,omitempty"`
	SecretsSkipped []scan.SkippedFile   `json:"secretsSkipped,omitempty"`
	// SBOM is the CycloneDX document, byte for byte as it was written.
	SBOM []byte `json:"sbom,omitempty"`
}

// analysedImage names one platform image's analysis in the layer cache.
type analysedImage struct {
	Platform string   `json:"platform"`
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	BlobIDs  []string `json:"blobIDs"`
}

// analysisOf records the DB-independent part of a report made from refs.
func analysisOf(r *scan.Report, refs []artifact.Reference) *analysis {
	a := &analysis{Annotations: r.Annotations, Images: r.Images, Secrets: r.Secrets, SecretsSkipped: r.SecretsSkipped,
		SBOM: r.SBOM}
	for i, p := range r.Platforms {
		a.Platforms = append(a.Platforms, analysedImage{Platform: p, Name: refs[i].Name, ID: refs[i].ID,
			BlobIDs: slices.Clone(refs[i].BlobIDs)})
	}
	return a
}

// analysisSize approximates the memory an analysis holds.
func analysisSize(a *analysis) int64 {
	n := int64(len(a.SBOM)) + 512
	for _, p := range a.Platforms {
		n += int64(len(p.BlobIDs)) * 80
	}
	return n
}

// errAnalysisGone says the layer cache no longer holds an analysis: the
// image must be analysed again.
var errAnalysisGone = errors.New("analysed layers no longer cached")

// reevaluate matches the packages of an analysed digest against the
// current DB.
func (s *Scanner) reevaluate(ctx context.Context, digest string, a *analysis) (*scan.Report, error) {
	refs := make([]artifact.Reference, len(a.Platforms))
	platforms := make([]string, len(a.Platforms))
	for i, p := range a.Platforms {
		if !s.layers.holds(p.ID, p.BlobIDs) {
			return nil, errAnalysisGone
		}
		refs[i] = artifact.Reference{Name: p.Name, ID: p.ID, BlobIDs: p.BlobIDs}
		platforms[i] = p.Platform
	}
	version, release, err := s.db.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	report := &scan.Report{
		Digest:         digest,
		DBVersion:      version,
		Annotations:    a.Annotations,
		Images:         slices.Clone(a.Images),
		Secrets:        slices.Clone(a.Secrets),
		SecretsSkipped: slices.Clone(a.SecretsSkipped),
		SBOM:           a.SBOM,
		ScannedAt:      s.now().UTC(),
	}
	if _, err := s.match(ctx, report, platforms, refs); err != nil {
		return nil, err
	}
	return report, nil
}
