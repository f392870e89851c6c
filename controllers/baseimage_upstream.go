package controllers

import (
	"context"
	"fmt"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/registry"
)

// readUpstream is the third step: it reads the digest spec.upstream points
// at now. A failure here never stops the image's own scan and verdict: the
// Stale condition says the upstream is unknown instead.
//
// A digest seen for the first time records the upstream digest of this
// fresh read as the one it was built from (when its image carries no
// org.opencontainers.image.base.digest annotation, which is preferred), so
// an image rebuilt on a new upstream between two polls is not reported as
// built on the old one.
func (r *BaseImageReconciler) readUpstream(ctx context.Context, s *scope) {
	st := &s.bi.Status
	if s.upstream == nil {
		st.UpstreamDigest = ""
		return
	}
	if !s.upstreamAllowed {
		st.UpstreamDigest = ""
		s.upstreamReason = catalogv1.UpstreamNotAllowedReason
		s.upstreamUnknown = fmt.Sprintf("The upstream's registry %s is not allowed by ImagePolicy %q; it is not read",
			registry.RegistryOf(s.upstream), s.policy.Name)
		return
	}
	desc, err := r.Registry.Head(ctx, s.upstream, s.access)
	if err != nil {
		st.UpstreamDigest = ""
		s.upstreamReason = catalogv1.UpstreamUnavailableReason
		s.upstreamUnknown = fmt.Sprintf("Cannot read the upstream image: %v", err)
		return
	}
	s.upstreamDigest = desc.Digest.String()
	st.UpstreamDigest = s.upstreamDigest
	if len(st.History) > 0 && st.History[0].UpstreamDigest == "" {
		// The digest is new, or was first seen while the upstream could
		// not be read or was not set.
		st.History[0].UpstreamDigest = s.upstreamDigest
	}
}

// builtFrom is the upstream digest the resolved image was built from: its
// base annotation, or else the upstream seen when the digest first
// appeared; "" when unknown.
func builtFrom(st *catalogv1.BaseImageStatus) string {
	if st.BaseDigest != "" {
		return st.BaseDigest
	}
	if len(st.History) > 0 {
		return st.History[0].UpstreamDigest
	}
	return ""
}
