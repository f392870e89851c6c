package controllers

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/tags"
)

// checkPolicy is the first step: it reads the entry's ImagePolicy, parses
// the references, and refuses an image from a registry the policy does not
// allow before anything is fetched from it.
func (r *BaseImageReconciler) checkPolicy(ctx context.Context, s *scope) {
	bi := s.bi
	var pol catalogv1.ImagePolicy
	key := types.NamespacedName{Namespace: bi.Namespace, Name: bi.Spec.PolicyRef.Name}
	err := r.Get(ctx, key, &pol)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// The cache may not have seen a policy created a moment ago (applied
		// together with the entry): ask the API server before saying it
		// does not exist.
		err = r.APIReader.Get(ctx, key, &pol)
	}
	if apierrors.IsNotFound(err) {
		// The policy's creation is watched.
		s.stop = &problem{kind: stalled, reason: catalogv1.PolicyNotFoundReason,
			message: fmt.Sprintf("ImagePolicy %q not found", bi.Spec.PolicyRef.Name)}
		return
	}
	if err != nil {
		s.stop = &problem{kind: retrying, reason: catalogv1.PolicyNotReadyReason, message: "Cannot read the ImagePolicy", err: err}
		return
	}
	if c := apimeta.FindStatusCondition(pol.Status.Conditions, catalogv1.ReadyCondition); c != nil && c.Status == metav1.ConditionFalse {
		s.stop = &problem{kind: stalled, reason: catalogv1.PolicyNotReadyReason,
			message: fmt.Sprintf("ImagePolicy %q is not valid: %s", pol.Name, c.Message)}
		return
	}
	s.policy = &pol
	s.interval = pol.Spec.RescanIntervalOrDefault()

	opts := nameOptions(bi)
	if s.ref, err = imageReference(bi, opts...); err != nil {
		s.stop = &problem{kind: stalled, reason: catalogv1.InvalidSpecReason, message: err.Error()}
		return
	}
	if bi.Spec.Upstream != "" {
		if s.upstream, err = name.ParseReference(string(bi.Spec.Upstream), opts...); err != nil {
			s.stop = &problem{kind: stalled, reason: catalogv1.InvalidSpecReason, message: fmt.Sprintf("invalid upstream reference: %v", err)}
			return
		}
	}

	if p := mutableTag(bi, s.ref, &pol); p != nil {
		s.stop = p
		return
	}

	// Registries outside the policy are never contacted.
	allowed, err := registry.AllowedBy(pol.Spec.AllowedRegistries, s.ref)
	if err != nil {
		s.stop = &problem{kind: stalled, reason: catalogv1.PolicyNotReadyReason,
			message: fmt.Sprintf("ImagePolicy %q is not valid: %v", pol.Name, err)}
		return
	}
	if !allowed {
		s.stop = &problem{kind: denied, reason: catalogv1.UnapprovedRegistryReason,
			message: fmt.Sprintf("Registry %s is not in the allowedRegistries of ImagePolicy %q", registry.RegistryOf(s.ref), pol.Name)}
		return
	}
	if s.upstream != nil {
		patterns := pol.Spec.AllowedUpstreamRegistries
		if len(patterns) == 0 {
			patterns = pol.Spec.AllowedRegistries
		}
		if s.upstreamAllowed, err = registry.AllowedBy(patterns, s.upstream); err != nil {
			s.stop = &problem{kind: stalled, reason: catalogv1.PolicyNotReadyReason,
				message: fmt.Sprintf("ImagePolicy %q is not valid: %v", pol.Name, err)}
		}
	}
}

// nameOptions are the reference parsing options of an entry: plain HTTP is
// allowed when spec.insecure says so.
func nameOptions(bi *catalogv1.BaseImage) []name.Option {
	if bi.Spec.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// mutableTag refuses an entry that follows a tag without a version when
// the policy forbids mutable tags.
func mutableTag(bi *catalogv1.BaseImage, ref name.Reference, pol *catalogv1.ImagePolicy) *problem {
	if pol.Spec.Tags == nil || !pol.Spec.Tags.ForbidMutable || bi.Spec.Digest != "" || bi.Spec.TagPolicy != nil {
		return nil
	}
	tag, ok := ref.(name.Tag)
	if !ok || !tags.Mutable(tag.TagStr()) {
		return nil
	}
	return &problem{kind: denied, reason: catalogv1.MutableTagReason, message: fmt.Sprintf(
		"Tag %q names no version and can move without notice; ImagePolicy %q forbids mutable tags: follow a version tag (e.g. %s:3.13), a tagPolicy range, or pin a digest",
		tag.TagStr(), pol.Name, tag.Context().Name())}
}

// imageReference parses spec.image, pinned to spec.digest when set. With a
// tagPolicy, spec.image is a repository: the reference is to the tag last
// chosen (latest until one is), and resolve chooses it afresh.
func imageReference(bi *catalogv1.BaseImage, opts ...name.Option) (name.Reference, error) {
	if bi.Spec.TagPolicy != nil {
		repo, err := name.NewRepository(string(bi.Spec.Image), opts...)
		if err != nil {
			return nil, fmt.Errorf("invalid image repository: %w", err)
		}
		tag := bi.Status.LatestTag
		if tag == "" {
			tag = "latest"
		}
		return repo.Tag(tag), nil
	}
	s := string(bi.Spec.Image)
	if bi.Spec.Digest != "" {
		s += "@" + string(bi.Spec.Digest)
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference: %w", err)
	}
	return ref, nil
}
