package sign

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// registryFailure reports whether err is a failure to talk to the registry
// (unreachable, refused, overloaded, interrupted), which the caller
// classifies and retries, as opposed to content that is not a valid
// signature, which is a verdict.
func registryFailure(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		// A missing signature manifest is no signature (cosign answers an
		// empty list); a missing blob is a broken signature.
		return te.StatusCode != http.StatusNotFound
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}

// fetchFailure is registryFailure for errors of a read from the registry,
// where an unexpected end of the body means the connection was cut; in
// errors of parsing what was read, it means malformed content.
func fetchFailure(err error) bool {
	return registryFailure(err) || errors.Is(err, io.ErrUnexpectedEOF)
}
