package faultproxy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Status answers with status and a registry error body, setting the
// headers given as name, value pairs.
func Status(status int, headers ...string) Fault {
	if len(headers)%2 != 0 {
		panic("faultproxy: headers must be name, value pairs")
	}
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		for i := 0; i < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		code := "UNKNOWN"
		switch {
		case status == http.StatusTooManyRequests:
			code = "TOOMANYREQUESTS"
		case status == http.StatusUnauthorized:
			code = "UNAUTHORIZED"
		case status >= 500:
			code = "UNAVAILABLE"
		}
		writeError(w, r, status, code, "injected fault")
	}
}

// TooManyRequests answers 429 with the Retry-After header retryAfter
// (seconds or an HTTP date), or without one when it is empty.
func TooManyRequests(retryAfter string) Fault {
	if retryAfter == "" {
		return Status(http.StatusTooManyRequests)
	}
	return Status(http.StatusTooManyRequests, "Retry-After", retryAfter)
}

// RetryAfterDate formats t as an HTTP date for Retry-After.
func RetryAfterDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// Hang reads the request and never answers: it returns only when the
// client gives up or the proxy closes.
func Hang() Fault {
	return func(_ http.ResponseWriter, r *http.Request, _ http.Handler) {
		<-r.Context().Done()
	}
}

// Slow passes the upstream's answer on, its body chunk bytes at a time
// with delay before each chunk.
func Slow(chunk int, delay time.Duration) Fault {
	if chunk <= 0 {
		panic("faultproxy: chunk must be positive")
	}
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&slowWriter{ResponseWriter: w, r: r, chunk: chunk, delay: delay}, r)
	}
}

type slowWriter struct {
	http.ResponseWriter
	r     *http.Request
	chunk int
	delay time.Duration
}

func (s *slowWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		select {
		case <-s.r.Context().Done():
			return written, s.r.Context().Err()
		case <-time.After(s.delay):
		}
		n := min(s.chunk, len(b))
		m, err := s.ResponseWriter.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		b = b[n:]
	}
	return written, nil
}

// Truncate passes the upstream's status and headers (with the full
// Content-Length) and the first n bytes of its body on. Then it either
// hangs until the client gives up (hang) or cuts the connection.
func Truncate(n int64, hang bool) Fault {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		tw := &truncWriter{ResponseWriter: w, left: n}
		next.ServeHTTP(tw, r)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if hang {
			<-r.Context().Done()
		}
		// Abort: the client sees the connection end before the body does.
		panic(http.ErrAbortHandler)
	}
}

type truncWriter struct {
	http.ResponseWriter
	left int64
}

func (t *truncWriter) Write(b []byte) (int, error) {
	if t.left <= 0 {
		return len(b), nil
	}
	n := int64(len(b))
	if n > t.left {
		n = t.left
	}
	t.left -= n
	if _, err := t.ResponseWriter.Write(b[:n]); err != nil {
		return 0, err
	}
	return len(b), nil
}

// BearerChallenge answers every request that does not carry the bearer
// token with 401 and a Bearer challenge whose realm is realm, such as the
// URL of a TokenServer on another host. Requests with the token go
// upstream without it.
func BearerChallenge(realm, service, token string) Fault {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Header.Get("Authorization") == "Bearer "+token {
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, service))
		writeError(w, r, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	}
}

// Respond answers with status, content type and body, as a registry
// serving a manifest would (with Docker-Content-Digest when digest is not
// empty). HEAD gets the headers only.
func Respond(status int, contentType, digest string, body []byte) Fault {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if digest != "" {
			w.Header().Set("Docker-Content-Digest", digest)
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	}
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	body := fmt.Sprintf(`{"errors":[{"code":%q,"message":%q}]}`, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}
