package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// politeTransport is the base HTTP transport under go-containerregistry's
// authentication layer. Every request, including /v2/ pings and token
// fetches, waits for the per-host rate limiter (which adapts to the host's
// 429s, see hostLimiter), runs under a timeout, is
// retried a bounded number of times on 429, 5xx and network errors with
// exponential backoff or the server's Retry-After, and has its manifest body
// capped in size. Blob bodies, which can be large, are bounded by an idle
// timeout instead: reading fails when no byte arrives for the timeout.
//
// A Client has one politeTransport per TLS trust setting; they share the
// rate limiters, so a host's limit holds whatever the settings.
type politeTransport struct {
	next          http.RoundTripper
	userAgent     string
	timeout       time.Duration
	retries       int
	backoff       time.Duration
	maxRetryAfter time.Duration
	maxManifest   int64
	limiters      *hostLimiters
}

// hostLimiters holds one rate limiter per registry host.
type hostLimiters struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*hostLimiter
}

func (h *hostLimiters) get(host string) *hostLimiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.m[host]
	if !ok {
		l = newHostLimiter(h.limit, h.burst)
		h.m[host] = l
	}
	return l
}

// How a host's rate adapts to throttling: a 429 halves it, no more than
// once per cutSpacing (the requests in flight when a registry starts
// throttling all come back 429, and count as one signal), down to
// minAdaptiveRate; each recoveryPeriod without a 429 raises it by a
// tenth of the configured rate, back up to that rate.
const (
	cutSpacing      = time.Second
	recoveryPeriod  = 10 * time.Second
	minAdaptiveRate = rate.Limit(1)
)

// hostLimiter paces the requests to one registry host. It starts at the
// configured rate and burst, slows down when the host answers 429 and
// speeds up again while it does not; a Retry-After on a 429 holds every
// request to the host until then, not only the one retried.
type hostLimiter struct {
	lim     *rate.Limiter
	ceiling rate.Limit
	burst   int

	mu          sync.Mutex
	pausedUntil time.Time
	lastCut     time.Time
	lastChange  time.Time
}

func newHostLimiter(limit rate.Limit, burst int) *hostLimiter {
	return &hostLimiter{lim: rate.NewLimiter(limit, burst), ceiling: limit, burst: burst}
}

// wait blocks until a request may be sent to the host, or ctx ends.
func (h *hostLimiter) wait(ctx context.Context) error {
	h.mu.Lock()
	until := h.pausedUntil
	h.mu.Unlock()
	if d := time.Until(until); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
	return h.lim.Wait(ctx)
}

// throttled records a 429 at now, with the pause its Retry-After asks for
// (zero without one).
func (h *hostLimiter) throttled(now time.Time, pause time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until := now.Add(pause); until.After(h.pausedUntil) {
		h.pausedUntil = until
	}
	if !h.lastCut.IsZero() && now.Sub(h.lastCut) < cutSpacing {
		return
	}
	h.lastCut, h.lastChange = now, now
	h.setLocked(now, max(h.lim.Limit()/2, min(minAdaptiveRate, h.ceiling)))
}

// answered records a response other than 429 at now.
func (h *hostLimiter) answered(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.lim.Limit()
	if cur >= h.ceiling || now.Sub(h.lastChange) < recoveryPeriod {
		return
	}
	h.lastChange = now
	h.setLocked(now, min(cur+h.ceiling/10, h.ceiling))
}

// setLocked sets the rate and scales the burst with it, so that a slowed
// host is not sent a full burst at once.
func (h *hostLimiter) setLocked(now time.Time, limit rate.Limit) {
	h.lim.SetLimitAt(now, limit)
	h.lim.SetBurstAt(now, max(1, int(float64(h.burst)*float64(limit/h.ceiling))))
}

// limit returns the host's current rate.
func (h *hostLimiter) limit() rate.Limit { return h.lim.Limit() }

// with returns a copy of t sending through next, sharing t's limiters.
func (t *politeTransport) with(next http.RoundTripper) *politeTransport {
	c := *t
	c.next = next
	return &c
}

// RoundTrip implements http.RoundTripper.
func (t *politeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	lim := t.limiters.get(req.URL.Host)
	for attempt := 0; ; attempt++ {
		if err := lim.wait(ctx); err != nil {
			return nil, fmt.Errorf("waiting for the rate limiter: %w", err)
		}
		resp, err := t.once(req, attempt)
		// The server's Retry-After, capped, when it gave a valid one.
		var pause time.Duration
		var paused bool
		if err == nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				pause, paused = min(ra, t.maxRetryAfter), true
			}
			if resp.StatusCode == http.StatusTooManyRequests {
				lim.throttled(time.Now(), pause)
			} else {
				lim.answered(time.Now())
			}
		}
		if errors.Is(err, errManifestTooLarge) {
			// The same manifest would be refused again.
			return nil, err
		}
		last := attempt >= t.retries || !replayable(req) || ctx.Err() != nil
		if err == nil && !retryableStatus(resp.StatusCode) {
			if err := unusableChallenge(resp); err != nil {
				_ = resp.Body.Close()
				return nil, err
			}
			return resp, nil
		}
		if last {
			return resp, err
		}
		wait := t.backoffFor(attempt)
		if err == nil {
			if paused {
				wait = pause
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// errAttemptTimeout is the cause of an attempt's cancellation when its
// timeout passes; it wraps context.DeadlineExceeded so that it is reported
// as a timeout.
var errAttemptTimeout = fmt.Errorf("registry request attempt timed out: %w", context.DeadlineExceeded)

// once sends one attempt of req. The timeout bounds the wait for the
// response headers and, except for blob bodies, the reading of the body;
// a blob body is bounded by the same duration as an idle timeout.
func (t *politeTransport) once(req *http.Request, attempt int) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.timeout, func() { cancel(errAttemptTimeout) })
	release := func() {
		timer.Stop()
		cancel(context.Canceled)
	}
	r := req.Clone(ctx)
	if attempt > 0 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			release()
			return nil, err
		}
		r.Body = body
	}
	if t.userAgent != "" && r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.userAgent)
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		if cause := context.Cause(ctx); cause == errAttemptTimeout {
			err = timeoutError{op: "waiting for the response", err: err}
		}
		release()
		return nil, err
	}
	if isManifestRequest(r) && resp.StatusCode == http.StatusOK && r.Method == http.MethodGet {
		if resp.ContentLength > t.maxManifest {
			_ = resp.Body.Close()
			release()
			return nil, tooLarge(t.maxManifest)
		}
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.maxManifest, max: t.maxManifest}
	}
	body := &attemptBody{ReadCloser: resp.Body, ctx: ctx, release: release}
	if isBlobRequest(r) {
		// From here on the timer runs only while a read waits for data.
		if !timer.Stop() {
			_ = resp.Body.Close()
			release()
			return nil, timeoutError{op: "waiting for the response", err: context.Cause(ctx)}
		}
		body.idle, body.timeout = timer, t.timeout
	}
	resp.Body = body
	return resp, nil
}
func (t *politeTransport) backoffFor(attempt int) time.Duration {
	d := t.backoff << attempt
	if d <= 0 || d > t.maxRetryAfter {
		d = t.maxRetryAfter
	}
	// Up to 20% jitter so that many clients do not retry in step.
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout ||
		(code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported)
}

// retryAfter parses a Retry-After header given in seconds or as an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

func isManifestRequest(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v2/") && strings.Contains(r.URL.Path, "/manifests/")
}

// isBlobRequest tells whether r fetches a blob, directly or through a
// redirect to blob storage on another host.
func isBlobRequest(r *http.Request) bool {
	for i := 0; r != nil && i < 20; i++ {
		if strings.Contains(r.URL.Path, "/blobs/") {
			return true
		}
		if r.Response == nil {
			return false
		}
		r = r.Response.Request
	}
	return false
}

// unusableChallenge returns a classified error when resp is a 401 whose
// challenges go-containerregistry cannot answer: it knows Basic and Bearer
// only, and would otherwise go on with Basic credentials and report a bare
// 401. A 401 without any challenge is left to it.
func unusableChallenge(resp *http.Response) error {
	if resp.StatusCode != http.StatusUnauthorized {
		return nil
	}
	values := resp.Header.Values("WWW-Authenticate")
	if len(values) == 0 {
		return nil
	}
	first := ""
	for _, v := range values {
		// A value may list several challenges; a comma inside a quoted
		// parameter can only make this more lenient.
		for _, part := range strings.Split(v, ",") {
			switch strings.ToLower(challengeScheme(part)) {
			case "basic", "bearer":
				return nil
			}
		}
		if first == "" {
			first = challengeScheme(v)
		}
	}
	cause := fmt.Errorf("unusable challenge WWW-Authenticate: %s", truncate(strings.Join(values, "; "), 256))
	if first == "" {
		return &Error{Kind: KindUnauthorized, Message: "registry authentication failed: malformed WWW-Authenticate challenge", Err: cause}
	}
	return &Error{Kind: KindUnauthorized, Message: fmt.Sprintf("registry authentication failed: unsupported auth scheme %q", truncate(first, 32)), Err: cause}
}

// challengeScheme returns the auth scheme leading a WWW-Authenticate value,
// or "" when it does not start with an RFC 7230 token followed by a space,
// a comma or the end.
func challengeScheme(v string) string {
	v = strings.TrimLeft(v, " \t")
	i := strings.IndexFunc(v, func(r rune) bool { return !isTokenChar(r) })
	if i < 0 {
		return v
	}
	if i == 0 || (v[i] != ' ' && v[i] != '\t' && v[i] != ',') {
		return ""
	}
	return v[:i]
}

func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func tooLarge(limit int64) error {
	return &Error{Kind: KindInvalid, Message: fmt.Sprintf("manifest larger than %d bytes", limit), Err: errManifestTooLarge}
}

var errManifestTooLarge = errors.New("manifest too large")

// limitedBody fails a read once more than max bytes have been read.
type limitedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, tooLarge(b.max)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, tooLarge(b.max)
	}
	return n, err
}

// attemptBody is a response body under the attempt's context: closing it
// releases the context, and a read cut short by the timeout says so. With
// idle set, the timer runs only while a read waits, restarting with each
// read, so a slow but progressing body is read to its end while a stalled
// one fails after the timeout.
type attemptBody struct {
	io.ReadCloser
	ctx     context.Context
	release func()
	idle    *time.Timer
	timeout time.Duration

	closeOnce sync.Once
}

func (b *attemptBody) Read(p []byte) (int, error) {
	if b.idle != nil {
		b.idle.Reset(b.timeout)
	}
	n, err := b.ReadCloser.Read(p)
	if b.idle != nil {
		b.idle.Stop()
	}
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errAttemptTimeout {
		op := "reading the response"
		if b.idle != nil {
			op = fmt.Sprintf("no data for %s", b.timeout)
		}
		return n, timeoutError{op: op, err: err}
	}
	return n, err
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.closeOnce.Do(b.release)
	return err
}

// timeoutError reports an attempt that ran out of time. It is a net.Error
// whose Timeout is true and wraps context.DeadlineExceeded, so that it is
// classified as a timeout.
type timeoutError struct {
	op  string
	err error
}

func (e timeoutError) Error() string   { return "registry request timed out: " + e.op }
func (e timeoutError) Unwrap() []error { return []error{context.DeadlineExceeded, e.err} }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }
