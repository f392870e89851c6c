package rebuild

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader carries "sha256=" and the lowercase hex HMAC-SHA256
	// of the exact body bytes under the target's key; see Sign and Verify.
	SignatureHeader = "X-Plinth-Signature"
	// EventHeader carries Payload.Event.
	EventHeader = "X-Plinth-Event"
	// DeliveryHeader carries Payload.ID, the same on every attempt of one
	// delivery: receivers drop a delivery whose ID they have seen.
	DeliveryHeader = "X-Plinth-Delivery"
)

// Defaults of a Sender's zero fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAttempts   = 3
	DefaultBackoff       = time.Second
	DefaultMaxRetryAfter = time.Minute
)

// userAgent is the User-Agent of every delivery.
const userAgent = "plinth"

// maxRedirects is how many same-origin 307 and 308 redirects one attempt
// follows.
const maxRedirects = 3

// Target is where and how to deliver.
type Target struct {
	// URL is the receiver's http or https URL. It must have a host and no
	// user:password part. Errors name only its host and port.
	URL string
	// Format is the body layout; empty means FormatGeneric.
	Format Format
	// Key is the HMAC-SHA256 key that signs the body, used byte for byte
	// (nothing is trimmed). Required: a Target without a key fails with
	// ErrNoKey and sends nothing.
	Key []byte
	// Token, when set, is sent as "Authorization: Bearer <token>", as
	// GitHub's repository dispatch API requires. Surrounding white space
	// (a trailing newline in a Secret, say) is dropped.
	Token string
}

// Result is what one Deliver call did.
type Result struct {
	// StatusCode is the last HTTP status received, 0 when none was.
	StatusCode int
	// Attempts is how many attempts were made. An attempt that follows
	// same-origin redirects counts once.
	Attempts int
	// Err is nil when the receiver answered 2xx. Otherwise it is ErrNoKey,
	// or wraps ErrInvalidTarget or ErrInvalidPayload when nothing was
	// sent, or is an *Error.
	Err error
	// RetryAfter is the receiver's Retry-After on the last answer when that
	// was a 429 or a 503, capped at the Sender's MaxRetryAfter; 0 when there
	// was none. When it is set and Err is not nil, the caller should try
	// again after it.
	RetryAfter time.Duration
}

// Sender delivers signed payloads to webhook receivers. Its zero value
// works with the defaults; a Sender may be used by many goroutines at once
// and must not be changed while in use.
//
// One Deliver call makes up to MaxAttempts attempts. An attempt that gets a
// connection error, times out, or is answered 5xx or 429 is retried after an
// exponential backoff with jitter (Backoff, 2×Backoff, ... plus up to a
// quarter more), or after the receiver's Retry-After on a 429 or 503. Other
// answers are final. No wait runs past the deadline of Deliver's context:
// when the next wait would, Deliver stops and reports the last failure, and,
// when the receiver asked for the wait, Result.RetryAfter.
type Sender struct {
	// Client sends the requests; nil means a client on
	// http.DefaultTransport. Deliver uses a copy that follows no redirect
	// by itself, whatever the given client's CheckRedirect says.
	Client *http.Client
	// Timeout bounds one attempt, redirects and reading the answer
	// included. Default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is how many attempts one Deliver call makes at most.
	// Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles for each
	// further one. Default DefaultBackoff.
	Backoff time.Duration
	// MaxRetryAfter caps waits: the backoff, and a receiver's Retry-After.
	// When a receiver asks for a longer wait, Deliver stops at once and
	// reports MaxRetryAfter in Result.RetryAfter. Default
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Deliver sends p to t, signed, and reports what happened. It does not
// return before the receiver accepted the delivery, every attempt failed,
// a final answer came, or ctx ended.
//
// Every attempt is a POST of the same bytes (those of Body(t.Format, p))
// with the headers Content-Type: application/json, User-Agent: plinth,
// SignatureHeader, EventHeader, DeliveryHeader, and Authorization when
// t.Token is set. A 307 or 308 redirect to the same scheme, host and port
// is followed, at most 3 times per attempt, with the same body and headers.
// Any other redirect is not followed and fails the delivery: the signature
// and the token never go to another host, and a 301, 302 or 303 would turn
// the POST into a GET without a body.
func (s *Sender) Deliver(ctx context.Context, t Target, p Payload) Result {
	if len(t.Key) == 0 {
		return Result{Err: ErrNoKey}
	}
	u, token, err := t.check()
	if err != nil {
		return Result{Err: err}
	}
	body, err := Body(t.Format, p)
	if err != nil {
		return Result{Err: err}
	}
	d := delivery{
		client:  s.client(),
		url:     u,
		host:    u.Host,
		body:    body,
		headers: t.headers(p, Sign(t.Key, body), token),
		secrets: secrets(t.Key, token),
		timeout: positive(s.Timeout, DefaultTimeout),
	}
	maxAttempts := s.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	maxWait := positive(s.MaxRetryAfter, DefaultMaxRetryAfter)

	var res Result
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			res.Err = d.fail(attempt-1, &Error{what: "stopped: " + err.Error(), Retryable: true, err: err})
			return res
		}
		res.Attempts = attempt
		o := d.attempt(ctx)
		if o.status != 0 {
			res.StatusCode = o.status
		}
		res.RetryAfter = 0
		if o.retryAfterSet {
			res.RetryAfter = min(o.retryAfter, maxWait)
		}
		if o.err == nil {
			res.Err = nil
			return res
		}
		if !o.err.Retryable || ctx.Err() != nil || attempt >= maxAttempts {
			res.Err = d.fail(attempt, o.err)
			return res
		}
		wait := min(s.backoff(attempt), maxWait)
		if o.retryAfterSet {
			if o.retryAfter > maxWait {
				o.err.what += "; it asked to be retried later"
				res.Err = d.fail(attempt, o.err)
				return res
			}
			wait = o.retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			o.err.what += "; no time left to retry"
			res.Err = d.fail(attempt, o.err)
			return res
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			o.err.what += "; stopped waiting to retry: " + ctx.Err().Error()
			res.Err = d.fail(attempt, o.err)
			return res
		case <-timer.C:
		}
	}
}

// backoff returns the wait before the retry that follows attempt (1-based):
// Backoff doubled for each earlier retry, plus up to a quarter more.
func (s *Sender) backoff(attempt int) time.Duration {
	base := positive(s.Backoff, DefaultBackoff)
	d := base << (attempt - 1)
	if d <= 0 || attempt > 32 {
		d = positive(s.MaxRetryAfter, DefaultMaxRetryAfter)
	}
	return d + rand.N(d/4+1)
}

// client returns a copy of the Sender's client that leaves redirects to
// the delivery.
func (s *Sender) client() *http.Client {
	var c http.Client
	if s.Client != nil {
		c = *s.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// check validates the target and returns its parsed URL and trimmed token.
// Its errors never hold the URL's path or query, nor the token.
func (t Target) check() (*url.URL, string, error) {
	if t.URL == "" {
		return nil, "", fmt.Errorf("%w: URL is empty", ErrInvalidTarget)
	}
	if !strings.Contains(t.URL, "://") {
		return nil, "", fmt.Errorf("%w: URL has no scheme, want http:// or https://", ErrInvalidTarget)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("%w: URL does not parse: %v", ErrInvalidTarget, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "", fmt.Errorf("%w: URL scheme is %q, want http or https", ErrInvalidTarget, truncate(u.Scheme, 32))
	case u.Host == "" || u.Hostname() == "":
		return nil, "", fmt.Errorf("%w: URL has no host", ErrInvalidTarget)
	case u.User != nil:
		return nil, "", fmt.Errorf("%w: URL must not carry a user or password; use the token", ErrInvalidTarget)
	}
	token := strings.TrimSpace(t.Token)
	for i := 0; i < len(token); i++ {
		if token[i] < ' ' || token[i] > '~' {
			return nil, "", fmt.Errorf("%w: token has characters an HTTP header cannot carry", ErrInvalidTarget)
		}
	}
	return u, token, nil
}

// headers returns the request headers of every attempt of a delivery.
func (t Target) headers(p Payload, signature, token string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set(SignatureHeader, signature)
	h.Set(EventHeader, p.Event)
	h.Set(DeliveryHeader, p.ID)
	if t.Format == FormatRepositoryDispatch {
		h.Set("Accept", "application/vnd.github+json")
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

// delivery is what every attempt of one Deliver call shares.
type delivery struct {
	client  *http.Client
	url     *url.URL
	host    string
	body    []byte
	headers http.Header
	secrets [][]byte
	timeout time.Duration
}

// outcome is what one attempt found.
type outcome struct {
	status        int
	retryAfter    time.Duration
	retryAfterSet bool
	err           *Error // nil on a 2xx answer
}

// fail completes err with what every error of the delivery carries.
func (d *delivery) fail(attempts int, err *Error) error {
	err.Host = d.host
	err.Attempts = attempts
	return err
}

// attempt makes one attempt: a POST, and the same-origin 307 and 308
// redirects that follow it, all within the attempt timeout.
func (d *delivery) attempt(ctx context.Context) outcome {
	actx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	target := d.url
	for redirects := 0; ; redirects++ {
		req, err := http.NewRequestWithContext(actx, http.MethodPost, target.String(), bytes.NewReader(d.body))
		if err != nil {
			// The URL was checked before; only a redirect target can fail here.
			return outcome{err: &Error{what: "cannot follow redirect: " + err.Error()}}
		}
		req.Header = d.headers.Clone()
		resp, err := d.client.Do(req)
		if err != nil {
			return outcome{err: d.transportError(ctx, actx, err)}
		}
		excerpt := readExcerpt(resp.Body, d.secrets)
		code := resp.StatusCode
		o := outcome{status: code}
		switch {
		case code >= 200 && code <= 299:
			return o
		case code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect:
			next, err := resp.Location()
			switch {
			case err != nil:
				o.err = &Error{StatusCode: code, what: fmt.Sprintf("answered %s without a usable Location; not followed", statusText(code))}
			case !sameOrigin(d.url, next):
				o.err = &Error{StatusCode: code, what: fmt.Sprintf("answered %s to %s://%s, another scheme or host; not followed, so that the signature and token stay with %s",
					statusText(code), truncate(next.Scheme, 32), truncate(next.Host, 255), d.host)}
			case next.User != nil:
				o.err = &Error{StatusCode: code, what: fmt.Sprintf("answered %s to a URL with a user or password; not followed", statusText(code))}
			case redirects >= maxRedirects:
				o.err = &Error{StatusCode: code, what: fmt.Sprintf("redirected more than %d times; not followed", maxRedirects)}
			default:
				target = next
				continue
			}
			return o
		case code >= 300 && code <= 399:
			o.err = &Error{StatusCode: code, what: fmt.Sprintf("answered %s; not followed: only 307 and 308 redirects to the same host keep the POST and its body", statusText(code))}
			return o
		case code == http.StatusTooManyRequests || code >= 500:
			o.err = &Error{StatusCode: code, Retryable: true, what: answered(code, excerpt)}
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				o.retryAfter, o.retryAfterSet = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			}
			return o
		default:
			o.err = &Error{StatusCode: code, what: answered(code, excerpt)}
			return o
		}
	}
}

// transportError describes a failed round trip in words that stay the
// same from one failure to the next: no URL, no local port.
func (d *delivery) transportError(ctx, actx context.Context, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		dnsErr      *net.DNSError
		opErr       *net.OpError
	)
	switch {
	case ctx.Err() != nil:
		return &Error{Retryable: true, what: "stopped: " + ctx.Err().Error(), err: ctx.Err()}
	case actx.Err() != nil:
		return &Error{Retryable: true, what: fmt.Sprintf("no answer within %s", d.timeout), err: context.DeadlineExceeded}
	case errors.As(err, &certErr):
		return &Error{what: "TLS certificate does not verify: " + certErr.Err.Error(), err: err}
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return &Error{what: "TLS certificate does not verify: " + err.Error(), err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Error{Retryable: true, what: "cannot connect: connection refused", err: err}
	case errors.Is(err, syscall.ECONNRESET):
		return &Error{Retryable: true, what: "connection reset before an answer", err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Retryable: true, what: "connection closed before an answer", err: err}
	case errors.As(err, &dnsErr):
		what := "cannot resolve the host"
		if dnsErr.IsNotFound {
			what += ": no such host"
		}
		return &Error{Retryable: true, what: what, err: err}
	case errors.As(err, &opErr) && opErr.Err != nil:
		return &Error{Retryable: true, what: fmt.Sprintf("connection failed: %s: %s", opErr.Op, truncate(opErr.Err.Error(), 200)), err: err}
	default:
		return &Error{Retryable: true, what: "request failed: " + truncate(err.Error(), 200), err: err}
	}
}

// sameOrigin tells whether b has a's scheme, host and port, the port
// defaulting to the scheme's.
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// answered describes a final or retryable HTTP answer.
func answered(code int, excerpt string) string {
	if excerpt == "" {
		return "answered " + statusText(code)
	}
	return fmt.Sprintf("answered %s: %s", statusText(code), excerpt)
}

func statusText(code int) string {
	if text := http.StatusText(code); text != "" {
		return fmt.Sprintf("%d %s", code, text)
	}
	return strconv.Itoa(code)
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*365*time.Hour/time.Second) {
			secs = int64(24 * 365 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// secrets lists what must never appear in an error message.
func secrets(key []byte, token string) [][]byte {
	s := [][]byte{key}
	if token != "" {
		s = append(s, []byte(token))
	}
	return s
}
