package scan

import (
	"context"
	"errors"
	"strings"

	"github.com/plinth-dev/plinth/internal/registry"
)

// ErrorKind says what a scan failure means for the caller.
type ErrorKind string

// Kinds of scan failures.
const (
	// KindUnauthorized: the registry requires credentials, or refused the
	// ones given. Someone must fix the pull secret.
	KindUnauthorized ErrorKind = "Unauthorized"
	// KindNotFound: the repository, manifest, layer or platform does not
	// exist in the registry.
	KindNotFound ErrorKind = "NotFound"
	// KindUnavailable: the registry could not be reached, answered with a
	// transient failure (5xx, 429), or the scan ran out of time. Retrying
	// later may succeed.
	KindUnavailable ErrorKind = "Unavailable"
	// KindInvalid: the image cannot be scanned as it is: a malformed
	// manifest or layer, or limits exceeded.
	KindInvalid ErrorKind = "Invalid"
	// KindTLS: TLS to the registry cannot be established as configured.
	KindTLS ErrorKind = "TLS"
	// KindInternal: the scanner itself failed (analysis, cache, disk).
	KindInternal ErrorKind = "Internal"
)

// Error is a classified scan failure. Error() returns Message only: it is
// short and stable, saying what failed and why, such as "fetching the
// manifest: registry denied access (HTTP 403)", with no URL, address or
// credential, so it can go into status conditions. Err keeps the
// underlying error, which may hold URLs, for debug logs.
type Error struct {
	// Kind classifies the failure.
	Kind ErrorKind
	// Message is the stable description.
	Message string
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error, so errors.Is still finds
// ErrDBUnavailable, ErrLayerLimitExceeded and ErrNoMatchingPlatform.
func (e *Error) Unwrap() error { return e.Err }

// KindOf classifies any error a Scanner returns: the Kind of the first
// *Error in the chain; KindUnavailable for ErrDBUnavailable and context
// errors; KindInvalid for ErrLayerLimitExceeded; KindNotFound for
// ErrNoMatchingPlatform; KindInternal for anything else; "" for nil.
func KindOf(err error) ErrorKind {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, ErrDBUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return KindUnavailable
	case errors.Is(err, ErrLayerLimitExceeded):
		return KindInvalid
	case errors.Is(err, ErrNoMatchingPlatform):
		return KindNotFound
	}
	return KindInternal
}

// Retryable reports whether err may go away by itself, so that retrying
// with backoff makes sense: true for KindUnavailable only.
func Retryable(err error) bool { return KindOf(err) == KindUnavailable }

// RegistryError classifies a failure of the registry operation op (such
// as "fetching the manifest" or "downloading layer sha256:0123456789ab…")
// as an *Error whose message is op, ": " and a stable reason. It returns
// err unchanged when it is nil or already an *Error.
func RegistryError(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	re := registry.Classify(err)
	kind, ok := registryKinds[re.Kind]
	if !ok {
		kind = KindUnavailable
	}
	return &Error{Kind: kind, Message: op + ": " + re.Error(), Err: err}
}

// registryKinds maps the registry client's kinds to scan kinds.
var registryKinds = map[registry.ErrorKind]ErrorKind{
	registry.KindUnauthorized: KindUnauthorized,
	registry.KindNotFound:     KindNotFound,
	registry.KindUnavailable:  KindUnavailable,
	registry.KindInvalid:      KindInvalid,
	registry.KindTLS:          KindTLS,
}

// ShortDigest abbreviates a digest for messages: the algorithm and the
// first 12 hex digits, such as "sha256:0123456789ab…".
func ShortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12] + "…"
}
