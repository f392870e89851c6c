package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/policy"
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

	// MaxDBAge is the age past which the DB is reported stale
	// (VulnDBStale); zero means never.
	MaxDBAge time.Duration

	// Updates receives the new DB version each time the DB changes; every
	// BaseImage is then re-evaluated.
	Updates <-chan string

	Metrics *metrics.Metrics

	// ScannerName and ScannerVersion name the scanner in vulnerability
	// attestations.
	ScannerName, ScannerVersion string
}

// dbUnavailableRetry is how often an entry waiting for a first DB looks
// again (a DB update also wakes it).
const dbUnavailableRetry = time.Minute

// scanResolved is the fourth step: it brings the scan of the resolved
// digest up to date under the current DB. Cached results cost nothing: the
// scanner keys them by digest and DB version. A digest that cannot be
// scanned is reported in the Scanned condition; its last verdict, if it has
// one, is kept.
func (r *BaseImageReconciler) scanResolved(ctx context.Context, s *scope) {
	bi := s.bi
	st := &bi.Status
	if r.Scanning == nil {
		// Judged on registry, age and upstream only: no vulnerability
		// figure may stand beside the verdict.
		removeCondition(bi, catalogv1.ScannedCondition)
		st.ScannedDigest, st.LastScanTime, st.VulnDBVersion = "", nil, ""
		st.Vulnerabilities, st.TopFindings, st.FindingsFirstSeen, st.Hardening = nil, nil, nil, nil
		return
	}
	s.scan.on = true
	req, err := r.scanRequest(s, s.ref.Context().Digest(s.digest))
	if err != nil {
		s.scan.failure = scanProblem(s.digest, err, s.interval)
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, s.scan.failure.reason, s.scan.failure.message)
		return
	}
	sc := r.Scanning
	if _, cached := sc.Scanner.Cached(req); !cached && sc.DB.Version() != "" {
		setCondition(bi, catalogv1.ReconcilingCondition, metav1.ConditionTrue, catalogv1.ProgressingReason,
			fmt.Sprintf("Scanning %s against vulnerability DB %s", s.digest, sc.DB.Version()))
		if err := s.progress(ctx); err != nil {
			s.stop = &problem{kind: retrying, reason: catalogv1.ProgressingReason, message: "Cannot record the scan's progress", err: err}
			return
		}
	}
	start := time.Now()
	report, err := sc.Scanner.Scan(ctx, req)
	if err != nil {
		if !errors.Is(err, scan.ErrDBUnavailable) {
			sc.Metrics.ObserveScan(metrics.ScanFailed, 0)
			ctrl.LoggerFrom(ctx).V(1).Info("Scan failed", "digest", s.digest, "error", err.Error())
		}
		s.scan.failure = scanProblem(s.digest, err, s.interval)
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, s.scan.failure.reason, s.scan.failure.message)
		return
	}
	if !report.ScannedAt.Before(start) {
		sc.Metrics.ObserveScan(metrics.ScanSucceeded, time.Since(start))
	}

	st.ScannedDigest = s.digest
	st.VulnDBVersion = report.DBVersion
	st.LastScanTime = &metav1.Time{Time: report.ScannedAt.UTC().Truncate(time.Second)}
	if stale, msg := r.dbStale(s.now); stale {
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.VulnDBStaleReason, msg)
	} else {
		setCondition(bi, catalogv1.ScannedCondition, metav1.ConditionTrue, catalogv1.ScanSucceededReason,
			"Scanned against vulnerability DB "+report.DBVersion)
	}
	s.scan.ok, s.scan.dbVersion, s.scan.findings, s.scan.report = true, report.DBVersion, findingsOf(report), report
}

// scanRequest is the scan of one digest of the entry's repository.
func (r *BaseImageReconciler) scanRequest(s *scope, image name.Digest) (scan.Request, error) {
	tr, err := r.Registry.Transport(s.access)
	if err != nil {
		return scan.Request{}, err
	}
	return scan.Request{
		Image:     image,
		Platforms: platformStrings(s.bi.Spec.Platforms),
		Keychain:  s.access.Keychain,
		Transport: tr,
	}, nil
}

// dbStale tells whether the loaded DB is older than the operator allows,
// with the message to show.
func (r *BaseImageReconciler) dbStale(now time.Time) (bool, string) {
	sc := r.Scanning
	updated := sc.DB.UpdatedAt()
	if sc.MaxDBAge <= 0 || updated.IsZero() || now.Sub(updated) <= sc.MaxDBAge {
		return false, ""
	}
	return true, fmt.Sprintf("The vulnerability DB is older than %s: its mirror may be unreachable; the verdict uses the DB of %s",
		sc.MaxDBAge, updated.UTC().Format(time.RFC3339))
}

// scanProblem classifies a scan failure like a registry failure: someone
// must act on credentials, a missing image, TLS or an image over the
// limits; a DB that is not loaded yet is waited for; anything else is
// retried with backoff. The message says what failed.
func scanProblem(digest string, err error, interval time.Duration) *problem {
	later := jitter(interval)
	switch {
	case errors.Is(err, scan.ErrDBUnavailable):
		return &problem{kind: waiting, reason: catalogv1.VulnDBUnavailableReason,
			message: "No vulnerability DB is loaded yet, so the image cannot be scanned", requeue: dbUnavailableRetry}
	case errors.Is(err, scan.ErrLayerLimitExceeded):
		return &problem{kind: stalled, reason: catalogv1.LayerLimitExceededReason,
			message: fmt.Sprintf("The image is too large to scan: %v", err), requeue: later}
	case errors.Is(err, scan.ErrNoMatchingPlatform):
		return &problem{kind: stalled, reason: catalogv1.InvalidImageReason,
			message: fmt.Sprintf("The scan of %s failed: %v", digest, err), requeue: later}
	}
	msg := fmt.Sprintf("The scan of %s failed: %v", digest, err)
	switch scan.KindOf(err) {
	case scan.KindUnauthorized:
		return &problem{kind: stalled, reason: catalogv1.AuthenticationFailedReason, message: msg, requeue: later}
	case scan.KindNotFound:
		return &problem{kind: stalled, reason: catalogv1.ImageNotFoundReason, message: msg, requeue: later}
	case scan.KindInvalid:
		return &problem{kind: stalled, reason: catalogv1.InvalidImageReason, message: msg, requeue: later}
	case scan.KindTLS:
		return &problem{kind: stalled, reason: catalogv1.TLSVerificationFailedReason, message: msg, requeue: later}
	default:
		return &problem{kind: retrying, reason: catalogv1.ScanFailedReason, message: msg, err: err}
	}
}

// findingsOf converts a report's findings for the verdict.
func findingsOf(report *scan.Report) []policy.Finding {
	out := make([]policy.Finding, 0, len(report.Findings))
	for _, f := range report.Findings {
		out = append(out, policy.Finding{
			ID: f.ID, Severity: catalogv1.Severity(f.Severity), Package: f.Package,
			InstalledVersion: f.InstalledVersion, FixedVersion: f.FixedVersion,
		})
	}
	return out
}
