package controllers

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ctrl "sigs.k8s.io/controller-runtime"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan"
	"github.com/plinth-dev/plinth/internal/sign"
)

// scope is what the steps of one BaseImage reconcile observed so far. Each
// step reads what the earlier ones found and adds its own findings; the
// conditions are computed once, from the whole scope, at the end.
type scope struct {
	bi  *catalogv1.BaseImage
	now time.Time

	// progress patches status in the middle of the reconcile (the "scan in
	// progress" patch that kstatus needs).
	progress func(context.Context) error

	// Set by checkPolicy.
	policy   *catalogv1.ImagePolicy
	interval time.Duration
	ref      name.Reference
	// upstream is nil when the entry has none.
	upstream        name.Reference
	upstreamAllowed bool

	// Set by resolve.
	access registry.Access
	digest string
	// newDigest is true when digest was not the resolved digest before.
	newDigest bool

	// Set by readUpstream.
	upstreamDigest                  string
	upstreamUnknown, upstreamReason string

	// Set by verifyPublisher: the mode, and the result on the resolved
	// digest (nil when not verified).
	verifyMode catalogv1.VerificationMode
	publisher  *sign.Result
	// trust is the policy's trust, read once per reconcile.
	trust *sign.Trust

	// Set by scanResolved.
	scan scanState

	// Set by judgeResolved: the verdict on the resolved digest, nil when it
	// could not be judged in this reconcile.
	verdict *policy.Verdict
	// ageVerdict is the verdict without vulnerabilities, for the Stale
	// condition of a digest that is not judged yet.
	ageVerdict *policy.Verdict

	// Set by rejudgeApproved: the verdict on an approved digest other than
	// the resolved one, nil when there is none or it was not judged.
	approvedVerdict *policy.Verdict
	// approvedDBVersion is the DB version approvedVerdict used, and
	// approvedReport the scan it judged.
	approvedDBVersion string
	approvedReport    *scan.Report

	// Set by signApproved: a signing failure that makes the entry not
	// ready, nil when signing worked or is off.
	signFailure *problem
	// revoked says why the approved digest lost its approval in this
	// reconcile; empty when it did not.
	revoked string

	// before is the status as stored when the reconcile started.
	before *catalogv1.BaseImageStatus

	// Set by signApproved, triggerRebuild and notify: a transient failure
	// to retry with backoff (a conflict: status changed meanwhile), and the
	// earliest time something falls due (a rebuild, an exception warning,
	// a notification retry); zero when nothing does.
	retryErr error
	wakeAt   time.Time

	// stop ends the reconcile early: something before the verdict failed.
	stop *problem
}

// problemKind says what a failure means for the entry.
type problemKind int

const (
	// stalled: someone must act (Stalled=True).
	stalled problemKind = iota + 1
	// retrying: transient; the error is returned for backoff.
	retrying
	// denied: the policy refuses the entry outright.
	denied
	// waiting: something resolves by itself; requeue after a delay.
	waiting
)

// problem is a failure a step reports, with the condition reason and
// message to show.
type problem struct {
	kind            problemKind
	reason, message string
	// err is returned for backoff when kind is retrying.
	err error
	// requeue is when to look again; zero means only on a watch event.
	requeue time.Duration
}

// scanState is the outcome of scanning the resolved digest.
type scanState struct {
	// on is false when scanning is off.
	on bool
	// findings of the resolved digest under dbVersion; valid when ok.
	ok        bool
	findings  []policy.Finding
	dbVersion string
	report    *scan.Report
	// failure, when not ok and on: why the digest could not be scanned.
	failure *problem
}

// result is the reconcile's result for what the scope holds.
func (s *scope) result(verdicts ...*policy.Verdict) (ctrl.Result, error) {
	if p := s.stop; p != nil {
		if p.kind == retrying {
			return ctrl.Result{}, p.err
		}
		return ctrl.Result{RequeueAfter: p.requeue}, nil
	}
	for _, f := range []*problem{s.scan.failure, s.signFailure} {
		if f != nil && f.kind == retrying {
			return ctrl.Result{}, f.err
		}
	}
	if s.retryErr != nil {
		return ctrl.Result{}, s.retryErr
	}
	next := jitter(s.interval)
	if !s.wakeAt.IsZero() {
		if d := s.wakeAt.Sub(s.now) + time.Second; d > 0 && d < next {
			next = d
		}
	}
	if f := s.scan.failure; f != nil && f.requeue > 0 && f.requeue < next {
		next = jitter(f.requeue)
	}
	if sig := s.bi.Status.Signature; sig != nil && s.policy != nil && s.policy.Spec.Signing != nil {
		// Renew the approval attestation well before it runs out, whatever
		// the jitter: half the grace before its validUntil.
		grace := s.policy.Spec.Signing.ValidityGraceOrDefault()
		if d := sig.ValidUntil.Sub(s.now) - grace/2; d > 0 && d < next {
			next = d
		}
	}
	for _, v := range verdicts {
		if v == nil {
			continue
		}
		for _, t := range []time.Time{v.NextDeadline, v.RevokeDeadline} {
			if t.IsZero() {
				continue
			}
			// Wake up just after the deadline rather than at it.
			if d := t.Sub(s.now) + time.Second; d > 0 && d < next {
				next = d
			}
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// persist writes status as it stands before something is sent that must
// not be sent twice: a refused write (the object changed meanwhile) stops
// the reconcile before sending, and a written one records what is being
// sent, so that a restart neither loses nor repeats it.
func (s *scope) persist(ctx context.Context) error {
	keepTransitionTimes(s.before.Conditions, s.bi.Status.Conditions)
	return s.progress(ctx)
}

// wake asks for the entry to be reconciled again at t, if nothing else
// brings it back sooner.
func (s *scope) wake(t time.Time) {
	if s.wakeAt.IsZero() || t.Before(s.wakeAt) {
		s.wakeAt = t
	}
}
