package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
)

// VulnDB is what the BaseImage reconciler needs to know of the
// vulnerability DB.
type VulnDB interface {
	// Version identifies the loaded DB build; "" when none is loaded.
	Version() string
	// UpdatedAt is when the loaded DB was built; zero when none is loaded.
	UpdatedAt() time.Time
}

// Scanning configures vulnerability scanning. A BaseImageReconciler without
// it judges entries on registry, age and upstream only.
type Scanning struct {
	Scanner scan.Scanner
	DB      VulnDB

	// Transport reaches registries for scans; nil means the default.
	Transport http.RoundTripper

	// MaxDBAge is the age past which the DB is reported stale
	// (VulnDBStale); zero means never.
	MaxDBAge time.Duration

	// Updates receives the new DB version each time the DB changes; every
	// BaseImage is then re-evaluated.
	Updates <-chan string

	Metrics *metrics.Metrics
}

// dbUnavailableRetry is how often an entry waiting for a first DB looks
// again (a DB update also wakes it).
const dbUnavailableRetry = time.Minute

// scanOutcome is the result of the scanning step of a reconcile.
type scanOutcome struct {
	// findings of the resolved digest; valid when ok.
	findings []policy.Finding
	ok       bool
	// blocked, when not ok: the condition reason, message, and whether
	// someone must act (Stalled) rather than wait.
	reason, message string
	stalled         bool
	retryAfter      time.Duration
}

// scanDigest brings the scan of the resolved digest up to date under the
// current DB. Cached results cost nothing: the scanner keys them by digest
// and DB version. It sets the Scanned condition and the scan fields of
// status; a returned error is transient.
//
// Before a scan that is not cached, progress records Reconciling=True, so
// that GitOps tools see the entry as in progress while it is scanned.
func (r *BaseImageReconciler) scanDigest(ctx context.Context, bi *catalogv1.BaseImage, ref name.Reference, digest string, kc authn.Keychain, now time.Time, progress func(context.Context) error) (scanOutcome, error) {
	s := r.Scanning
	req := scan.Request{
		Image:     ref.Context().Digest(digest),
		Platforms: platformStrings(bi.Spec.Platforms),
		Keychain:  kc,
		Transport: s.Transport,
	}
	if _, cached := s.Scanner.Cached(req); !cached && s.DB.Version() != "" {
		setCondition(bi, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingReason,
			fmt.Sprintf("Scanning %s against vulnerability DB %s", digest, s.DB.Version()))
		if err := progress(ctx); err != nil {
			return scanOutcome{reason: catalogv1.ProgressingReason, message: "Cannot record the scan's progress"}, err
		}
	}
	start := time.Now()
	report, err := s.Scanner.Scan(ctx, req)
	switch {
	case errors.Is(err, scan.ErrDBUnavailable):
		msg := "No vulnerability DB is loaded yet; the image cannot be scanned"
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.VulnDBUnavailableReason, msg)
		return scanOutcome{reason: catalogv1.VulnDBUnavailableReason, message: msg, retryAfter: dbUnavailableRetry}, nil
	case errors.Is(err, scan.ErrLayerLimitExceeded):
		s.Metrics.ObserveScan(metrics.ScanFailed, 0)
		msg := fmt.Sprintf("The image is too large to scan: %v", err)
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.LayerLimitExceededReason, msg)
		return scanOutcome{reason: catalogv1.LayerLimitExceededReason, message: msg, stalled: true}, nil
	case err != nil:
		s.Metrics.ObserveScan(metrics.ScanFailed, 0)
		msg := "The scan failed"
		if k := registry.KindOf(err); k != "" {
			msg += ": " + err.Error()
		}
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.ScanFailedReason, msg)
		return scanOutcome{reason: catalogv1.ScanFailedReason, message: msg}, err
	}
	if !report.ScannedAt.Before(start) {
		s.Metrics.ObserveScan(metrics.ScanSucceeded, time.Since(start))
	}

	st := &bi.Status
	st.ScannedDigest = digest
	st.VulnDBVersion = report.DBVersion
	st.LastScanTime = &metav1.Time{Time: report.ScannedAt.UTC().Truncate(time.Second)}
	if updated := s.DB.UpdatedAt(); s.MaxDBAge > 0 && !updated.IsZero() && now.Sub(updated) > s.MaxDBAge {
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.VulnDBStaleReason,
			fmt.Sprintf("The vulnerability DB is older than %s: its mirror may be unreachable; the verdict uses the DB of %s",
				s.MaxDBAge, updated.UTC().Format(time.RFC3339)))
	} else {
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionTrue, catalogv1.ScanSucceededReason,
			"Scanned against vulnerability DB "+report.DBVersion)
	}

	out := scanOutcome{ok: true, findings: make([]policy.Finding, 0, len(report.Findings))}
	for _, f := range report.Findings {
		out.findings = append(out.findings, policy.Finding{
			ID: f.ID, Severity: catalogv1.Severity(f.Severity), Package: f.Package,
			InstalledVersion: f.InstalledVersion, FixedVersion: f.FixedVersion,
		})
	}
	return out, nil
}

// firstSeenOf returns when each finding listed in status was first seen,
// for the digest status describes.
func firstSeenOf(st *catalogv1.BaseImageStatus, digest string) map[string]time.Time {
	if st.ScannedDigest != digest {
		return nil
	}
	m := make(map[string]time.Time, len(st.TopFindings))
	for _, f := range st.TopFindings {
		k := policy.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion}.Key()
		m[k] = f.FirstSeen.Time
	}
	return m
}

// approvedAt returns when digest was first approved, from the history.
func approvedAt(st *catalogv1.BaseImageStatus, digest string) time.Time {
	for _, h := range st.History {
		if h.Digest == digest && h.ApprovedAt != nil {
			return h.ApprovedAt.Time
		}
	}
	return time.Time{}
}
