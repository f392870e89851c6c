// Package catalog finds the catalog base an image is built on. An Index holds
// the digests of every BaseImage (approved, resolved and history) and, filled
// lazily from registry reads, the layer chain of each; a Matcher classifies an
// image as on an approved base, on a superseded one, on an unapproved one, or
// unknown. The inventory, the admission webhook and the command line all use
// the same Matcher, so they agree on every image.
//
// The class says which digest an image sits on, not how healthy that
// digest is: an image on an entry's approved digest is Approved even while
// the entry is Stale (a rebuild is due), since no better digest exists yet.
// Once a newer digest is approved, the older one moves to the history and
// images on it become Superseded.
//
// Registry reads are cached by digest: a manifest read by digest never
// changes, so a digest read once is not read again while it stays in the
// bounded cache, whatever repository or credentials it was read with.
// Concurrent requests for the same digest share one read.
package catalog

import (
	"k8s.io/apimachinery/pkg/types"
)

// Class is the verdict on the base of an image.
type Class string

const (
	// Approved: the image is, or is built on, the approved digest of a
	// catalog entry (status.approvedDigest).
	Approved Class = "Approved"
	// Superseded: the image is, or is built on, a digest the catalog knows
	// but does not approve now: an older digest of an entry's history, or
	// its resolved digest while that digest is not (or not yet) approved.
	Superseded Class = "Superseded"
	// Unapproved: the image is readable and matches no catalog digest; its
	// base is either identified (by annotation) and not in the catalog, or
	// not identified at all.
	Unapproved Class = "Unapproved"
	// Unknown: plinth cannot tell, because the image or a catalog digest
	// could not be read in time (registry unreachable, deadline passed,
	// tag not resolvable).
	Unknown Class = "Unknown"
)

// Method says how an image was matched to its base.
type Method string

const (
	// MethodDigest: the image's own digest is a catalog digest (or a
	// platform manifest of one).
	MethodDigest Method = "Digest"
	// MethodAnnotation: the image's org.opencontainers.image.base.digest
	// annotation names the base.
	MethodAnnotation Method = "Annotation"
	// MethodLayerChain: the image's layers start with all of the base's
	// layers, in order.
	MethodLayerChain Method = "LayerChain"
)

// MaxAlternatives is the most approved alternatives a Result lists.
const MaxAlternatives = 5

// Result is the classification of one image.
type Result struct {
	// Image is the image reference as matched, normalized (registry and
	// repository spelled out).
	Image string
	// Digest is the image's digest (resolved from its tag if needed); empty
	// when it could not be resolved.
	Digest string
	// Class is the verdict.
	Class Class
	// Method is how the base was found; empty when no base was found.
	Method Method
	// BaseImage names the matched catalog entry; empty when none matched.
	BaseImage types.NamespacedName
	// BaseDigest is the digest of the base: the catalog digest matched, or
	// the digest an annotation names for an unapproved base.
	BaseDigest string
	// BaseName is the base reference from the
	// org.opencontainers.image.base.name annotation, when present.
	BaseName string
	// Reason is a short, stable explanation of the verdict.
	Reason string
	// Alternatives are approved catalog images to use instead, most
	// relevant first, at most MaxAlternatives; empty for Approved.
	Alternatives []Alternative
	// Err is the failure behind an Unknown verdict, for logs; its text may
	// hold URLs.
	Err error
}

// Alternative is an approved catalog image.
type Alternative struct {
	// BaseImage names the catalog entry.
	BaseImage types.NamespacedName
	// Image is the entry's spec.image, such as
	// registry.example.com/base/python:3.13-slim.
	Image string
	// Reference is Image pinned to the approved digest (image@digest).
	Reference string
}
