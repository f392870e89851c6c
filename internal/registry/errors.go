package registry

import (
	"context"
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

// classify turns any failure of a registry operation into an *Error.
// anonymous tells whether the request was made without credentials.
func classify(err error, anonymous bool) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyStatus(te, anonymous, err)
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Kind: KindUnavailable, Message: "registry request timed out", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: KindUnavailable, Message: "registry request canceled", Err: err}
	case errors.As(err, &ne):
		return &Error{Kind: KindUnavailable, Message: "registry unreachable", Err: err}
	}
	return &Error{Kind: KindUnavailable, Message: "registry request failed", Err: err}
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
