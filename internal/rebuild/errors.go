package rebuild

import (
	"errors"
	"fmt"
)

// ErrNoKey is the error of a delivery whose Target has no HMAC key. No
// request is made: plinth never sends an unsigned delivery.
var ErrNoKey = errors.New("webhook signing key is empty")

// ErrInvalidTarget is wrapped by the error of a delivery whose Target URL or
// token cannot be used. No request is made.
var ErrInvalidTarget = errors.New("invalid webhook target")

// Error is a delivery that reached, or tried to reach, the receiver and
// failed. Its message is stable for a given failure, so that it can go
// into a status condition: it names the receiver's host and port, never the
// URL's path or query, the key or the token, and holds no timestamps.
type Error struct {
	// Host is the receiver's host, with the port when the URL has one.
	Host string
	// StatusCode is the HTTP status of the answer the failure is about; 0
	// when there was no answer (connection error, timeout).
	StatusCode int
	// Retryable tells whether delivering again later may succeed without
	// anyone changing the configuration: true for connection errors,
	// timeouts, 5xx and 429 answers, false for other answers, redirects
	// that are not followed and untrusted TLS certificates.
	Retryable bool
	// Attempts is how many attempts were made before giving up.
	Attempts int

	what string
	err  error
}

// Error implements error.
func (e *Error) Error() string {
	msg := fmt.Sprintf("webhook %s: %s", e.Host, e.what)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (%d attempts)", e.Attempts)
	}
	return msg
}

// Unwrap returns the cause, if any: a network error stripped of the URL, or
// a context error.
func (e *Error) Unwrap() error { return e.err }
