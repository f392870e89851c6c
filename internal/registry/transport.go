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
// fetches, waits for the per-host rate limiter, runs under a timeout, is
// retried a bounded number of times on 429, 5xx and network errors with
// exponential backoff or the server's Retry-After, and has its manifest body
// capped in size.
type politeTransport struct {
	next          http.RoundTripper
	userAgent     string
	timeout       time.Duration
	limit         rate.Limit
	burst         int
	retries       int
	backoff       time.Duration
	maxRetryAfter time.Duration
	maxManifest   int64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func (t *politeTransport) limiter(host string) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.limiters[host]
	if !ok {
		l = rate.NewLimiter(t.limit, t.burst)
		t.limiters[host] = l
	}
	return l
}

// RoundTrip implements http.RoundTripper.
func (t *politeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	lim := t.limiter(req.URL.Host)
	for attempt := 0; ; attempt++ {
		if err := lim.Wait(ctx); err != nil {
			return nil, fmt.Errorf("waiting for the rate limiter: %w", err)
		}
		resp, err := t.once(req, attempt)
		last := attempt >= t.retries || !replayable(req) || ctx.Err() != nil
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		if last {
			return resp, err
		}
		wait := t.backoffFor(attempt)
		if err == nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				wait = min(ra, t.maxRetryAfter)
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

// once sends one attempt of req under the request timeout.
func (t *politeTransport) once(req *http.Request, attempt int) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	r := req.Clone(ctx)
	if attempt > 0 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			return nil, err
		}
		r.Body = body
	}
	if t.userAgent != "" && r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.userAgent)
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, err
	}
	if isManifestRequest(r) && resp.StatusCode == http.StatusOK && r.Method == http.MethodGet {
		if resp.ContentLength > t.maxManifest {
			_ = resp.Body.Close()
			cancel()
			return nil, tooLarge(t.maxManifest)
		}
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.maxManifest, max: t.maxManifest}
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
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

// cancelBody releases the attempt's timeout context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
