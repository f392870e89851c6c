package registry

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

// ErrorKind says what a registry failure means for the caller.
type ErrorKind string

const (
	// KindUnauthorized: the registry refused the credentials, or requires
	// credentials and none were given. Someone must fix the pull secret.
	KindUnauthorized ErrorKind = "Unauthorized"
	// KindNotFound: the repository, tag, digest or platform does not exist.
	KindNotFound ErrorKind = "NotFound"
	// KindUnavailable: the registry could not be reached or answered with a
	// transient failure (5xx, 429, timeout). Retrying later may succeed.
	KindUnavailable ErrorKind = "Unavailable"
	// KindInvalid: the registry answered with something plinth cannot use:
	// a malformed or oversized manifest, or an unexpected media type.
	KindInvalid ErrorKind = "Invalid"
	// KindTLS: TLS to the registry cannot be established as configured: its
	// certificate does not verify (unknown authority, wrong host name,
	// expired), it serves plain HTTP to a registry not marked insecure, or
	// the configured certificate bundle is unusable. Someone must fix the
	// registry's certificate or plinth's trust settings.
	KindTLS ErrorKind = "TLS"
)

// Error is a classified registry failure. Its message is short and stable
// (no URLs, tokens or request ids) so that it can go into status conditions.
// Err keeps the underlying error for logs at a debug level; it may contain
// URLs.
type Error struct {
	// Kind classifies the failure.
	Kind ErrorKind
	// Message is the stable, human-readable description.
	Message string
	// Err is the underlying error.
	Err error
}

// Error returns the stable message.
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	switch e.Kind {
	case KindUnauthorized:
		return "registry refused access"
	case KindNotFound:
		return "not found in the registry"
	case KindUnavailable:
		return "registry unavailable"
	case KindTLS:
		return "TLS verification failed"
	default:
		return "invalid registry response"
	}
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain, or "" when err
// is nil or not a classified registry error.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// Retryable reports whether err is a failure that may go away by itself, so
// that retrying later with backoff makes sense: true only for errors of kind
// KindUnavailable. Every other failure needs someone to change something
// (credentials, reference, certificates, the registry's configuration).
func Retryable(err error) bool {
	return KindOf(err) == KindUnavailable
}

// Classify turns any failure of a registry operation made with
// credentials into an *Error, for callers that reach registries through
// Transport (the vulnerability scanner); nil stays nil.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	return classify(err, false).(*Error)
}

// classify turns any failure of a registry operation into an *Error.
// anonymous tells whether the request was made without credentials.
func classify(err error, anonymous bool) error {
	if err == nil {
		return nil
	}
	if e := classifyKnown(err, anonymous); e != nil {
		return e
	}
	return &Error{Kind: KindUnavailable, Message: "registry request failed", Err: err}
}

// classifyKnown classifies err, or returns nil when it is no failure plinth
// recognises.
//
// The order matters: when go-containerregistry pings a registry over HTTPS
// and falls back to plain HTTP, both failures are in the chain, and a
// certificate that does not verify explains more than the plain-HTTP
// attempt's answer.
func classifyKnown(err error, anonymous bool) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if e := classifyTLS(err); e != nil {
		return e
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyStatus(te, anonymous, err)
	}
	if e := classifyAuthSetup(err); e != nil {
		return e
	}
	// go-containerregistry tries HTTPS before plain HTTP for registries
	// that allow it: a timeout in the chain comes from the plain-HTTP
	// attempt, so the scheme mismatch of the first attempt is no reason.
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindUnavailable, Message: "registry request timed out", Err: err}
	}
	if errors.Is(err, http.ErrSchemeMismatch) {
		return &Error{Kind: KindTLS, Message: "TLS handshake failed: the registry serves plain HTTP, allowed only for registries marked insecure", Err: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Kind: KindUnavailable, Message: "registry request canceled", Err: err}
	case errors.As(err, &ne):
		return &Error{Kind: KindUnavailable, Message: "registry unreachable", Err: err}
	}
	return nil
}

// classifyTLS recognises certificate verification and TLS handshake
// failures. The messages are crypto/x509's and crypto/tls's own words
// without the host names, addresses and times some of them carry.
func classifyTLS(err error) *Error {
	const prefix = "TLS verification failed: "
	var (
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
		sys x509.SystemRootsError
		ae  tls.AlertError
		rhe tls.RecordHeaderError
		ech *tls.ECHRejectionError
	)
	msg := ""
	switch {
	case errors.As(err, &ua):
		msg = prefix + "certificate signed by unknown authority"
	case errors.As(err, &hn):
		msg = prefix + "certificate is not valid for the registry's host name"
	case errors.As(err, &ci):
		msg = prefix + certificateInvalidReason(ci.Reason)
	case errors.As(err, &sys):
		msg = prefix + "system root certificates are unavailable"
	case errors.As(err, &cve):
		msg = prefix + "certificate rejected"
	case errors.As(err, &ae):
		msg = "TLS handshake failed: " + ae.Error()
	case errors.As(err, &rhe):
		msg = "TLS handshake failed: the registry's answer is not a TLS handshake"
	case errors.As(err, &ech):
		msg = "TLS handshake failed: encrypted client hello rejected"
	default:
		return nil
	}
	return &Error{Kind: KindTLS, Message: msg, Err: err}
}

func certificateInvalidReason(r x509.InvalidReason) string {
	switch r {
	case x509.Expired:
		return "certificate has expired or is not yet valid"
	case x509.NotAuthorizedToSign:
		return "certificate is not authorized to sign other certificates"
	case x509.CANotAuthorizedForThisName:
		return "certificate authority is not authorized for this name"
	case x509.TooManyIntermediates:
		return "too many intermediate certificates"
	case x509.IncompatibleUsage:
		return "certificate specifies an incompatible key usage"
	case x509.NameMismatch:
		return "issuer name does not match subject from issuing certificate"
	case x509.NameConstraintsWithoutSANs:
		return "certificate relies on legacy Common Name field"
	case x509.UnconstrainedName:
		return "certificate has an unconstrained name"
	case x509.TooManyConstraints:
		return "too many name constraints"
	case x509.CANotAuthorizedForExtKeyUsage:
		return "certificate authority is not authorized for this key usage"
	case x509.NoValidChains:
		return "no valid certificate chain"
	}
	return "certificate is not valid"
}

// authSetupFailures maps the words go-containerregistry (v0.22) uses when it
// refuses a registry's authentication challenge or token exchange to stable
// messages. Its errors are plain strings that carry URLs, addresses and
// response bodies, so only a fixed message is kept. Tests provoke each one
// against a real server, so a change of wording upstream fails them.
// The first match wins: a refused redirect says why in a realm's words.
var authSetupFailures = []struct{ match, msg string }{
	{"refusing token-server redirect", "token server redirect refused"},
	{"is a private or link-local address", "token realm refused: it is a private or link-local address"},
	{"not allowed for a secure registry", "token realm refused: plain HTTP realm for a registry reached over HTTPS"},
	{"realm scheme", "token realm refused: unsupported URL scheme"},
	{"parsing realm", "malformed token realm"},
	{"missing realm", "malformed WWW-Authenticate challenge: missing realm"},
	{"no token in bearer response", "no token in the token server's response"},
}

// classifyAuthSetup recognises refused or malformed authentication
// challenges and token exchanges.
func classifyAuthSetup(err error) *Error {
	s := err.Error()
	for _, f := range authSetupFailures {
		if strings.Contains(s, f.match) {
			return &Error{Kind: KindUnauthorized, Message: "registry authentication failed: " + f.msg, Err: err}
		}
	}
	return nil
}

func classifyStatus(te *transport.Error, anonymous bool, err error) *Error {
	code := te.StatusCode
	has := func(c transport.ErrorCode) bool {
		for _, d := range te.Errors {
			if d.Code == c {
				return true
			}
		}
		return false
	}
	what := "not found"
	if te.Request != nil {
		switch p := te.Request.URL.Path; {
		case strings.Contains(p, "/manifests/"):
			what = "manifest unknown"
		case strings.Contains(p, "/blobs/"):
			what = "blob unknown"
		}
	}
	switch {
	case code == http.StatusUnauthorized && anonymous:
		return &Error{Kind: KindUnauthorized, Message: "registry requires credentials (HTTP 401)", Err: err}
	case code == http.StatusUnauthorized:
		return &Error{Kind: KindUnauthorized, Message: "registry refused the credentials (HTTP 401)", Err: err}
	case code == http.StatusForbidden:
		return &Error{Kind: KindUnauthorized, Message: "registry denied access (HTTP 403)", Err: err}
	case has(transport.NameUnknownErrorCode):
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("repository unknown (HTTP %d)", code), Err: err}
	case has(transport.ManifestUnknownErrorCode):
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("manifest unknown (HTTP %d)", code), Err: err}
	case code == http.StatusNotFound:
		return &Error{Kind: KindNotFound, Message: what + " (HTTP 404)", Err: err}
	case code == http.StatusTooManyRequests:
		return &Error{Kind: KindUnavailable, Message: "registry rate limit exceeded (HTTP 429)", Err: err}
	case code == http.StatusRequestTimeout || code >= 500:
		return &Error{Kind: KindUnavailable, Message: fmt.Sprintf("registry unavailable (HTTP %d)", code), Err: err}
	}
	return &Error{Kind: KindInvalid, Message: fmt.Sprintf("registry rejected the request (HTTP %d)", code), Err: err}
}

// invalid returns a KindInvalid error with a stable message.
func invalid(msg string, err error) *Error {
	return &Error{Kind: KindInvalid, Message: msg, Err: err}
}
