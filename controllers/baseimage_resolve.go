package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/policy"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/tags"
)

// resolve is the second step: it builds the entry's registry access and
// resolves the tag (or pin) to a digest. An entry inspected under its
// current spec costs one manifest HEAD, and an inspection only when the
// digest changed; a new entry, or one whose spec changed, is resolved and
// inspected from one manifest GET. A new digest goes to the front of the
// history.
func (r *BaseImageReconciler) resolve(ctx context.Context, s *scope) {
	bi := s.bi
	access, err := accessFor(ctx, r.APIReader, bi)
	var credErr *credentialError
	if errors.As(err, &credErr) {
		s.stop = &problem{kind: stalled, reason: credErr.reason, message: credErr.message, requeue: jitter(s.interval)}
		return
	}
	if err != nil {
		s.stop = &problem{kind: retrying, reason: catalogv1.RegistryUnavailableReason, message: "Cannot read the registry credentials", err: err}
		return
	}
	s.access = access

	// Another repository is another image: what plinth knew of the old one
	// no longer applies.
	repo := s.ref.Context().Name()
	if st := &bi.Status; st.Repository != repo {
		if st.Repository != "" {
			resetForRepository(st)
		}
		st.Repository = repo
	}

	if bi.Spec.TagPolicy != nil {
		if s.stop = r.chooseTag(ctx, s); s.stop != nil {
			return
		}
	}

	st := &bi.Status
	var info *registry.ImageInfo
	if st.ResolvedDigest == "" || st.InspectedGeneration != bi.Generation || len(st.History) == 0 {
		// Inspection is due whatever the digest: one GET of the manifest
		// both resolves and inspects it.
		info, err = r.Registry.Resolve(ctx, s.ref, access, platformStrings(bi.Spec.Platforms))
		if err != nil {
			s.stop = registryProblem("image", err, s.interval)
			return
		}
		s.digest = info.Digest
	} else {
		// The common case: one manifest HEAD tells whether anything changed.
		desc, err := r.Registry.Head(ctx, s.ref, access)
		if err != nil {
			s.stop = registryProblem("image", err, s.interval)
			return
		}
		s.digest = desc.Digest.String()
		if s.digest == st.ResolvedDigest {
			return
		}
		info, err = r.Registry.Inspect(ctx, s.ref.Context().Digest(s.digest), access, platformStrings(bi.Spec.Platforms))
		if err != nil {
			s.stop = registryProblem("image", err, s.interval)
			return
		}
	}
	s.newDigest = s.digest != st.ResolvedDigest || len(st.History) == 0
	recordImage(bi, info, s.now)
}

// resetForRepository forgets what was observed of another repository.
func resetForRepository(st *catalogv1.BaseImageStatus) {
	st.ResolvedDigest, st.ApprovedDigest, st.Approved = "", "", nil
	st.History, st.Platforms, st.ImageCreated, st.BaseDigest = nil, nil, nil, ""
	st.ScannedDigest, st.LastScanTime, st.VulnDBVersion = "", nil, ""
	st.Vulnerabilities, st.TopFindings, st.FindingsFirstSeen, st.Hardening = nil, nil, nil, nil
	st.InspectedGeneration = 0
	st.Conditions = nil
}

// registryProblem reports a failed registry request. The last resolved and
// approved digests are kept. The registry's errors carry no URLs or
// credentials.
func registryProblem(what string, err error, interval time.Duration) *problem {
	msg := fmt.Sprintf("Cannot read the %s: %v", what, err)
	later := jitter(interval)
	switch registry.KindOf(err) {
	case registry.KindUnauthorized:
		return &problem{kind: stalled, reason: catalogv1.AuthenticationFailedReason, message: msg, requeue: later}
	case registry.KindNotFound:
		return &problem{kind: stalled, reason: catalogv1.ImageNotFoundReason, message: msg, requeue: later}
	case registry.KindInvalid:
		return &problem{kind: stalled, reason: catalogv1.InvalidImageReason, message: msg, requeue: later}
	case registry.KindTLS:
		return &problem{kind: stalled, reason: catalogv1.TLSVerificationFailedReason, message: msg, requeue: later}
	default:
		// Returning the error retries with exponential backoff.
		return &problem{kind: retrying, reason: catalogv1.RegistryUnavailableReason, message: msg, err: err}
	}
}

func platformStrings(ps []catalogv1.Platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, string(p))
	}
	return out
}

// recordImage records an inspected digest and keeps the history: the
// newest digest first, at most catalogv1.MaxHistory entries. The upstream
// digest of a new record is filled in by readUpstream, from a fresh read.
func recordImage(bi *catalogv1.BaseImage, info *registry.ImageInfo, now time.Time) {
	st := &bi.Status
	st.Platforms = info.Platforms
	st.InspectedGeneration = bi.Generation
	st.ImageCreated = nil
	if !policy.IsUnknownCreationTime(info.Created) {
		st.ImageCreated = &metav1.Time{Time: info.Created.UTC()}
	}
	st.BaseDigest = info.BaseDigest
	if info.Digest == st.ResolvedDigest && len(st.History) > 0 {
		return
	}

	ts := metav1.Time{Time: now}
	var rec catalogv1.DigestRecord
	kept := st.History[:0:0]
	for i, h := range st.History {
		if h.Digest == info.Digest {
			// The tag moved back to a digest seen before.
			rec = h
			continue
		}
		if i == 0 && h.SupersededAt == nil {
			h.SupersededAt = &ts
		}
		kept = append(kept, h)
	}
	if rec.Digest == "" {
		rec = catalogv1.DigestRecord{Digest: info.Digest, FirstSeen: ts}
	}
	rec.SupersededAt = nil
	st.History = append([]catalogv1.DigestRecord{rec}, kept...)
	if len(st.History) > catalogv1.MaxHistory {
		st.History = st.History[:catalogv1.MaxHistory]
	}
	st.ResolvedDigest = info.Digest
}

// chooseTag reads the repository's tags and follows the newest one within
// the entry's tagPolicy range. Only the best tag is kept while the list is
// read, so a repository with thousands of tags costs a few requests and no
// memory to speak of.
func (r *BaseImageReconciler) chooseTag(ctx context.Context, s *scope) *problem {
	bi := s.bi
	tp := bi.Spec.TagPolicy
	var pattern, extract string
	if f := tp.FilterTags; f != nil {
		pattern, extract = f.Pattern, f.Extract
	}
	pol, err := tags.Compile(tp.Semver, pattern, extract)
	if err != nil {
		return &problem{kind: stalled, reason: catalogv1.InvalidSpecReason, message: "Invalid tagPolicy: " + err.Error()}
	}
	repo := s.ref.Context()
	c := pol.Chooser()
	read, truncated, err := r.Registry.Tags(ctx, repo, s.access, registry.DefaultMaxTags, c.Consider)
	if err != nil {
		return registryProblem("tags", err, s.interval)
	}
	tag, _, ok := c.Best()
	if !ok {
		_, versions := c.Counts()
		msg := fmt.Sprintf("No tag of %s is within %q: %d tags read, %d of them versions", repo.Name(), tp.Semver, read, versions)
		if truncated {
			msg += fmt.Sprintf(" (only the first %d tags are read)", registry.DefaultMaxTags)
		}
		return &problem{kind: stalled, reason: catalogv1.NoMatchingTagReason, message: msg, requeue: jitter(s.interval)}
	}
	bi.Status.LatestTag = tag
	s.ref = repo.Tag(tag)
	return nil
}
