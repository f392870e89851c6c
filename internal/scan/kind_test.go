package scan

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestRegistryErrorClassifies(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://user:secret@127.0.0.1:5000/v2/base/alpine/blobs/sha256:abcd", nil)
	status := func(code int, ec transport.ErrorCode) error {
		te := &transport.Error{StatusCode: code, Request: req}
		if ec != "" {
			te.Errors = []transport.Diagnostic{{Code: ec, Message: "at 127.0.0.1:5000"}}
		}
		return fmt.Errorf("GET %s: %w", req.URL, te)
	}
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: req.URL.String(), Err: err} }
	cases := []struct {
		name string
		err  error
		kind ErrorKind
		msg  string
	}{
		{"401", status(401, transport.UnauthorizedErrorCode), KindUnauthorized, "fetching the manifest: registry refused the credentials (HTTP 401)"},
		{"403", status(403, transport.DeniedErrorCode), KindUnauthorized, "fetching the manifest: registry denied access (HTTP 403)"},
		{"404 manifest", status(404, transport.ManifestUnknownErrorCode), KindNotFound, "fetching the manifest: manifest unknown (HTTP 404)"},
		{"404 bare", status(404, ""), KindNotFound, "fetching the manifest: blob unknown (HTTP 404)"},
		{"429", status(429, transport.TooManyRequestsErrorCode), KindUnavailable, "fetching the manifest: registry rate limit exceeded (HTTP 429)"},
		{"503", status(503, transport.UnavailableErrorCode), KindUnavailable, "fetching the manifest: registry unavailable (HTTP 503)"},
		{"400", status(400, ""), KindInvalid, "fetching the manifest: registry rejected the request (HTTP 400)"},
		{"refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), KindUnavailable, "fetching the manifest: registry unreachable"},
		{"deadline", urlErr(context.DeadlineExceeded), KindUnavailable, "fetching the manifest: registry request timed out"},
		{"unknown CA", urlErr(&tls509{x509.UnknownAuthorityError{}}), KindTLS, "fetching the manifest: TLS verification failed: certificate signed by unknown authority"},
		{"hostname", urlErr(x509.HostnameError{Host: "127.0.0.1"}), KindTLS, "fetching the manifest: TLS verification failed: certificate is not valid for the registry's host name"},
		{"scheme", urlErr(http.ErrSchemeMismatch), KindTLS, "fetching the manifest: TLS handshake failed: the registry serves plain HTTP, allowed only for registries marked insecure"},
		{"other", errors.New("GET http://127.0.0.1:5000/v2/: boom"), KindUnavailable, "fetching the manifest: registry request failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := RegistryError("fetching the manifest", tc.err)
			if KindOf(err) != tc.kind || err.Error() != tc.msg {
				t.Errorf("got %s %q, want %s %q", KindOf(err), err, tc.kind, tc.msg)
			}
			for _, leak := range []string{"127.0.0.1", "5000", "secret", "http"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("message %q leaks %q", err, leak)
				}
			}
			if !errors.Is(err, tc.err) {
				t.Error("the classified error does not wrap the cause")
			}
			if Retryable(err) != (tc.kind == KindUnavailable) {
				t.Errorf("Retryable = %v", Retryable(err))
			}
		})
	}
}

// tls509 wraps an x509 error the way crypto/tls does.
type tls509 struct{ err error }

func (e *tls509) Error() string { return "tls: " + e.err.Error() }
func (e *tls509) Unwrap() error { return e.err }

func TestKindOfSentinelsAndWrapping(t *testing.T) {
	limit := &LimitError{Limit: LimitLayerSize, Platform: "linux/amd64", Value: 3, Max: 2}
	cases := []struct {
		err  error
		kind ErrorKind
	}{
		{nil, ""},
		{fmt.Errorf("x: %w", ErrDBUnavailable), KindUnavailable},
		{limit, KindInvalid},
		{fmt.Errorf("%w: [linux/s390x]", ErrNoMatchingPlatform), KindNotFound},
		{context.DeadlineExceeded, KindUnavailable},
		{errors.New("analyser crashed"), KindInternal},
		{&Error{Kind: KindInvalid, Message: "m", Err: ErrDBUnavailable}, KindInvalid},
	}
	for _, tc := range cases {
		if got := KindOf(tc.err); got != tc.kind {
			t.Errorf("KindOf(%v) = %q, want %q", tc.err, got, tc.kind)
		}
	}
	// Sentinels survive classification.
	wrapped := &Error{Kind: KindInvalid, Message: "image too large", Err: limit}
	if !errors.Is(wrapped, ErrLayerLimitExceeded) {
		t.Error("errors.Is(ErrLayerLimitExceeded) lost through *Error")
	}
	// An *Error is not classified twice.
	if got := RegistryError("downloading layer", wrapped); got != error(wrapped) {
		t.Errorf("RegistryError re-wrapped an *Error: %v", got)
	}
	if RegistryError("x", nil) != nil {
		t.Error("RegistryError(nil) != nil")
	}
}

func TestShortDigest(t *testing.T) {
	if got := ShortDigest("sha256:0123456789abcdef0123"); got != "sha256:0123456789ab…" {
		t.Errorf("ShortDigest = %q", got)
	}
	if got := ShortDigest("sha256:abc"); got != "sha256:abc" {
		t.Errorf("ShortDigest = %q", got)
	}
}
