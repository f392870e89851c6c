package scan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
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
	kind, reason := registryReason(err)
	return &Error{Kind: kind, Message: op + ": " + reason, Err: err}
}

// registryReason maps go-containerregistry, net/http and TLS errors to a
// kind and a message without URLs or addresses.
func registryReason(err error) (ErrorKind, string) {
	if msg := tlsReason(err); msg != "" {
		return KindTLS, msg
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return statusReason(te)
	}
	if errors.Is(err, http.ErrSchemeMismatch) {
		return KindTLS, "TLS handshake failed: the registry serves plain HTTP"
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindUnavailable, "registry request timed out"
	case errors.Is(err, context.Canceled):
		return KindUnavailable, "registry request canceled"
	case errors.As(err, &ne):
		return KindUnavailable, "registry unreachable"
	}
	return KindUnavailable, "registry request failed"
}

func tlsReason(err error) string {
	const prefix = "TLS verification failed: "
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
		ae  tls.AlertError
		rhe tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ua):
		return prefix + "certificate signed by unknown authority"
	case errors.As(err, &hn):
		return prefix + "certificate is not valid for the registry's host name"
	case errors.As(err, &ci):
		if ci.Reason == x509.Expired {
			return prefix + "certificate has expired or is not yet valid"
		}
		return prefix + "certificate is not valid"
	case errors.As(err, &cve):
		return prefix + "certificate rejected"
	case errors.As(err, &ae):
		return "TLS handshake failed: " + ae.Error()
	case errors.As(err, &rhe):
		return "TLS handshake failed: the registry's answer is not a TLS handshake"
	}
	return ""
}

func statusReason(te *transport.Error) (ErrorKind, string) {
	code := te.StatusCode
	has := func(c transport.ErrorCode) bool {
		for _, d := range te.Errors {
			if d.Code == c {
				return true
			}
		}
		return false
	}
	switch {
	case code == http.StatusUnauthorized:
		return KindUnauthorized, "registry requires valid credentials (HTTP 401)"
	case code == http.StatusForbidden:
		return KindUnauthorized, "registry denied access (HTTP 403)"
	case has(transport.NameUnknownErrorCode):
		return KindNotFound, fmt.Sprintf("repository unknown (HTTP %d)", code)
	case has(transport.ManifestUnknownErrorCode):
		return KindNotFound, fmt.Sprintf("manifest unknown (HTTP %d)", code)
	case has(transport.BlobUnknownErrorCode):
		return KindNotFound, fmt.Sprintf("blob unknown (HTTP %d)", code)
	case code == http.StatusNotFound:
		return KindNotFound, "not found (HTTP 404)"
	case code == http.StatusTooManyRequests:
		return KindUnavailable, "registry rate limit exceeded (HTTP 429)"
	case code == http.StatusRequestTimeout || code >= 500:
		return KindUnavailable, fmt.Sprintf("registry unavailable (HTTP %d)", code)
	}
	return KindInvalid, fmt.Sprintf("registry rejected the request (HTTP %d)", code)
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
