package rebuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	testKey   = []byte("test-hmac-key-0123456789")
	testToken = "ghp_testtoken0123456789"
)

// received is one request as the receiver saw it.
type received struct {
	method string
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a webhook receiver on loopback that records every request
// and answers with handle; n counts requests from 1.
type receiver struct {
	*httptest.Server
	handle func(w http.ResponseWriter, r *http.Request, body []byte, n int)

	mu   sync.Mutex
	reqs []received
}

func newReceiver(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body []byte, n int)) *receiver {
	t.Helper()
	rc := &receiver{handle: handle}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()})
	n := len(rc.reqs)
	rc.mu.Unlock()
	rc.handle(w, r, body, n)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// status answers code to every request.
func status(code int) func(http.ResponseWriter, *http.Request, []byte, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) { w.WriteHeader(code) }
}

// fastSender keeps retries quick.
func fastSender() *Sender {
	return &Sender{Timeout: 2 * time.Second, Backoff: 5 * time.Millisecond}
}

func deliveryError(t *testing.T, err error) *Error {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want an *Error", err, err)
	}
	return de
}

// verifyingHandler checks the signature with key, decodes the payload in
// format f, and answers 204 when both work, 401 or 400 otherwise.
func verifyingHandler(t *testing.T, key []byte, f Format, got *Payload) func(http.ResponseWriter, *http.Request, []byte, int) {
	return func(w http.ResponseWriter, r *http.Request, body []byte, _ int) {
		if !Verify(key, body, r.Header.Get(SignatureHeader)) {
			http.Error(w, "signature does not match", http.StatusUnauthorized)
			return
		}
		var err error
		switch f {
		case FormatGeneric:
			err = json.Unmarshal(body, got)
		case FormatRepositoryDispatch:
			var d struct {
				EventType     string `json:"event_type"`
				ClientPayload struct {
					Plinth *Payload `json:"plinth"`
				} `json:"client_payload"`
			}
			d.ClientPayload.Plinth = got
			err = json.Unmarshal(body, &d)
			if err == nil && d.EventType != "plinth-"+strings.ToLower(got.Event) {
				err = fmt.Errorf("event_type %q", d.EventType)
			}
		}
		if err != nil {
			t.Errorf("receiver: %v", err)
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func TestDeliverSignedPayload(t *testing.T) {
	for _, f := range []Format{FormatGeneric, FormatRepositoryDispatch} {
		t.Run(string(f), func(t *testing.T) {
			var got Payload
			rc := newReceiver(t, verifyingHandler(t, testKey, f, &got))
			p := samplePayload()

			res := fastSender().Deliver(t.Context(), Target{URL: rc.URL + "/hooks/plinth", Format: f, Key: testKey, Token: testToken + "\n"}, p)

			if res.Err != nil || res.StatusCode != http.StatusNoContent || res.Attempts != 1 || res.RetryAfter != 0 {
				t.Fatalf("Deliver = %+v, want one attempt answered 204", res)
			}
			if diff := cmp.Diff(p.normalized(), got); diff != "" {
				t.Errorf("payload the receiver decoded differs (-want +got):\n%s", diff)
			}
			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			want := map[string]string{
				"Content-Type":  "application/json",
				"User-Agent":    "plinth",
				EventHeader:     EventStale,
				DeliveryHeader:  p.ID,
				"Authorization": "Bearer " + testToken,
			}
			if f == FormatRepositoryDispatch {
				want["Accept"] = "application/vnd.github+json"
			}
			for k, v := range want {
				if r.header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, r.header.Get(k), v)
				}
			}
			if r.method != http.MethodPost || r.path != "/hooks/plinth" {
				t.Errorf("request %s %s, want POST /hooks/plinth", r.method, r.path)
			}
			body, err := Body(f, p)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.body) != string(body) {
				t.Errorf("sent body differs from Body():\n%s\n%s", r.body, body)
			}
			if Verify([]byte("another key"), r.body, r.header.Get(SignatureHeader)) {
				t.Error("the signature verifies under another key")
			}
		})
	}
}

func TestDeliverUnderAnotherKeyIsRefused(t *testing.T) {
	var got Payload
	rc := newReceiver(t, verifyingHandler(t, []byte("the receiver's key"), FormatGeneric, &got))

	res := fastSender().Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

	de := deliveryError(t, res.Err)
	if res.StatusCode != http.StatusUnauthorized || res.Attempts != 1 || de.Retryable {
		t.Errorf("Deliver = %+v, want one final 401", res)
	}
	if want := "answered 401 Unauthorized: signature does not match"; !strings.Contains(res.Err.Error(), want) {
		t.Errorf("error %q does not say %q", res.Err, want)
	}
}

func TestDeliverWithoutTokenSendsNoAuthorization(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK))
	if res := fastSender().Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload()); res.Err != nil {
		t.Fatal(res.Err)
	}
	if h, ok := rc.requests()[0].header["Authorization"]; ok {
		t.Errorf("Authorization sent without a token: %q", h)
	}
}

func TestDeliverRetriesServerErrorsWithTheSameDelivery(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, n int) {
		if n <= 2 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})

	res := fastSender().Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

	if res.Err != nil || res.Attempts != 3 || res.StatusCode != http.StatusOK {
		t.Fatalf("Deliver = %+v, want success on the third attempt", res)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs[1:] {
		for _, h := range []string{DeliveryHeader, SignatureHeader, EventHeader} {
			if r.header.Get(h) != reqs[0].header.Get(h) {
				t.Errorf("attempt %d: %s = %q, first attempt had %q", i+2, h, r.header.Get(h), reqs[0].header.Get(h))
			}
		}
		if string(r.body) != string(reqs[0].body) {
			t.Errorf("attempt %d sent another body", i+2)
		}
	}
}

func TestDeliverGivesUpAfterMaxAttempts(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	s := fastSender()
	s.MaxAttempts = 4

	res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

	if res.Attempts != 4 || res.StatusCode != http.StatusInternalServerError || len(rc.requests()) != 4 {
		t.Fatalf("Deliver = %+v with %d requests, want 4 attempts ending in 500", res, len(rc.requests()))
	}
	de := deliveryError(t, res.Err)
	if !de.Retryable || de.StatusCode != http.StatusInternalServerError || de.Attempts != 4 {
		t.Errorf("error = %+v, want a retryable 500 after 4 attempts", de)
	}
	host := strings.TrimPrefix(rc.URL, "http://")
	want := "webhook " + host + ": answered 500 Internal Server Error: database down (4 attempts)"
	if res.Err.Error() != want {
		t.Errorf("error = %q, want %q", res.Err, want)
	}
}

func TestDeliverDoesNotRetryClientErrors(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) {
				http.Error(w, `{"message":"Not Found"}`, code)
			})

			res := fastSender().Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

			if res.Attempts != 1 || len(rc.requests()) != 1 || res.StatusCode != code {
				t.Fatalf("Deliver = %+v with %d requests, want a single attempt", res, len(rc.requests()))
			}
			de := deliveryError(t, res.Err)
			if de.Retryable || de.StatusCode != code {
				t.Errorf("error = %+v, want a final %d", de, code)
			}
			if !strings.Contains(res.Err.Error(), fmt.Sprintf("answered %d %s: {\"message\":\"Not Found\"}", code, http.StatusText(code))) {
				t.Errorf("error %q does not quote the answer", res.Err)
			}
		})
	}
}

func TestDeliverHonoursRetryAfter(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	s := fastSender() // a 5 ms backoff: only Retry-After explains a longer wait

	res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

	if res.Err != nil || res.Attempts != 2 || res.StatusCode != http.StatusAccepted {
		t.Fatalf("Deliver = %+v, want success on the second attempt", res)
	}
	reqs := rc.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, the receiver asked for 1s", gap)
	}
}

func TestDeliverStopsOnLongRetryAfter(t *testing.T) {
	tests := []struct {
		name          string
		code          int
		retryAfter    string
		maxRetryAfter time.Duration
		ctxTimeout    time.Duration
		want          time.Duration
	}{
		{"a day, capped at the default", http.StatusTooManyRequests, "86400", 0, 0, DefaultMaxRetryAfter},
		{"longer than the set cap", http.StatusServiceUnavailable, "120", 30 * time.Second, 0, 30 * time.Second},
		{"longer than the time left", http.StatusTooManyRequests, "5", 0, 2 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) {
				w.Header().Set("Retry-After", tt.retryAfter)
				w.WriteHeader(tt.code)
			})
			s := fastSender()
			s.MaxRetryAfter = tt.maxRetryAfter
			ctx := t.Context()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()

			res := s.Deliver(ctx, Target{URL: rc.URL, Key: testKey}, samplePayload())

			if took := time.Since(start); took > time.Second {
				t.Errorf("Deliver took %s, want it to stop at once", took)
			}
			if res.Attempts != 1 || len(rc.requests()) != 1 || res.StatusCode != tt.code {
				t.Errorf("Deliver = %+v, want one attempt", res)
			}
			if res.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %s, want %s", res.RetryAfter, tt.want)
			}
			if de := deliveryError(t, res.Err); !de.Retryable {
				t.Errorf("error %q is not retryable", de)
			}
		})
	}
}

func TestDeliverReportsRetryAfterOfTheLastAnswer(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := fastSender()
	s.MaxAttempts = 2

	res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())
	if res.Attempts != 2 || res.Err == nil || res.RetryAfter != 0 {
		t.Errorf("Deliver = %+v, want two attempts and RetryAfter 0", res)
	}

	rc = newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	res = s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())
	if res.RetryAfter != 0 || res.StatusCode != http.StatusBadGateway {
		t.Errorf("Deliver = %+v, want the 502's (absent) Retry-After", res)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"99999999999999999", 24 * 365 * time.Hour, true},
		{"Mon, 30 Nov 2026 08:00:30 GMT", 30 * time.Second, true},
		{"Mon, 30 Nov 2026 07:00:00 GMT", 0, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v, want %s, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestDeliverTimesOutAHangingReceiver(t *testing.T) {
	rc := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ []byte, _ int) {
		<-r.Context().Done()
	})
	s := &Sender{Timeout: 100 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxAttempts: 3}
	start := time.Now()

	res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, samplePayload())

	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Deliver took %s with three 100ms attempts", took)
	}
	if res.Attempts != 3 || len(rc.requests()) != 3 || res.StatusCode != 0 {
		t.Errorf("Deliver = %+v, want three attempts without an answer", res)
	}
	de := deliveryError(t, res.Err)
	if !de.Retryable || !errors.Is(res.Err, context.DeadlineExceeded) || !strings.HasSuffix(res.Err.Error(), ": no answer within 100ms (3 attempts)") {
		t.Errorf("error = %q, want a retryable timeout", res.Err)
	}
}

func TestDeliverStopsAtTheContextDeadline(t *testing.T) {
	rc := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ []byte, _ int) {
		<-r.Context().Done()
	})
	s := &Sender{Timeout: 200 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxAttempts: 100}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()

	res := s.Deliver(ctx, Target{URL: rc.URL, Key: testKey}, samplePayload())

	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Deliver took %s under a 500ms deadline", took)
	}
	if res.Err == nil || res.Attempts > 3 {
		t.Errorf("Deliver = %+v, want a failure within the deadline", res)
	}
}

func TestDeliverStopsWhenCanceled(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	res := fastSender().Deliver(ctx, Target{URL: rc.URL, Key: testKey}, samplePayload())

	if !errors.Is(res.Err, context.Canceled) || res.Attempts != 0 || len(rc.requests()) != 0 {
		t.Errorf("Deliver = %+v with %d requests, want nothing sent", res, len(rc.requests()))
	}
}

func TestDeliverRetriesConnectionErrors(t *testing.T) {
	// A port that was just free: nothing listens on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	res := fastSender().Deliver(t.Context(), Target{URL: "http://" + addr + "/hooks/s3cr3t-path?sig=q", Key: testKey}, samplePayload())

	if res.Attempts != 3 || res.StatusCode != 0 {
		t.Errorf("Deliver = %+v, want three attempts without an answer", res)
	}
	want := "webhook " + addr + ": cannot connect: connection refused (3 attempts)"
	if res.Err == nil || res.Err.Error() != want {
		t.Errorf("error = %v, want %q", res.Err, want)
	}
}

func TestDeliverDoesNotFollowRedirectsToAnotherHost(t *testing.T) {
	clients := map[string]*http.Client{
		"default client":               nil,
		"client that follows anything": {CheckRedirect: func(*http.Request, []*http.Request) error { return nil }},
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			other := newReceiver(t, status(http.StatusOK))
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte, _ int) {
				http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
			})
			s := fastSender()
			s.Client = client

			res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey, Token: testToken}, samplePayload())

			if n := len(other.requests()); n != 0 {
				t.Fatalf("the other host received %d requests", n)
			}
			if res.Attempts != 1 || len(rc.requests()) != 1 || res.StatusCode != http.StatusTemporaryRedirect {
				t.Errorf("Deliver = %+v, want one attempt ending at the redirect", res)
			}
			de := deliveryError(t, res.Err)
			otherHost := strings.TrimPrefix(other.URL, "http://")
			if de.Retryable || !strings.Contains(res.Err.Error(), "to http://"+otherHost+", another scheme or host; not followed") {
				t.Errorf("error = %q, want a final error naming %s", res.Err, otherHost)
			}
		})
	}
}

func TestDeliverFollowsSameHostRedirects(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var got Payload
			verify := verifyingHandler(t, testKey, FormatGeneric, &got)
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, n int) {
				switch r.URL.Path {
				case "/old":
					http.Redirect(w, r, "/older", code)
				case "/older":
					// An absolute Location on the same host and port.
					http.Redirect(w, r, "http://"+r.Host+"/new", code)
				default:
					verify(w, r, body, n)
				}
			})

			res := fastSender().Deliver(t.Context(), Target{URL: rc.URL + "/old", Key: testKey, Token: testToken}, samplePayload())

			if res.Err != nil || res.StatusCode != http.StatusNoContent || res.Attempts != 1 {
				t.Fatalf("Deliver = %+v, want success in one attempt", res)
			}
			reqs := rc.requests()
			if len(reqs) != 3 || reqs[2].path != "/new" {
				t.Fatalf("receiver got %d requests, want /old, /older, /new", len(reqs))
			}
			for _, r := range reqs {
				if r.method != http.MethodPost || string(r.body) != string(reqs[0].body) ||
					r.header.Get(SignatureHeader) != reqs[0].header.Get(SignatureHeader) ||
					r.header.Get("Authorization") != "Bearer "+testToken {
					t.Errorf("%s %s: not the same signed POST", r.method, r.path)
				}
			}
			if got.ID != samplePayload().ID {
				t.Errorf("receiver decoded id %q", got.ID)
			}
		})
	}
}

func TestDeliverRefusesOtherRedirects(t *testing.T) {
	tests := []struct {
		name     string
		handle   func(http.ResponseWriter, *http.Request, []byte, int)
		requests int
		want     string
	}{
		{
			name: "302 on the same host",
			handle: func(w http.ResponseWriter, r *http.Request, _ []byte, _ int) {
				if r.URL.Path == "/hook" {
					http.Redirect(w, r, "/hook/", http.StatusFound)
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			requests: 1,
			want:     "answered 302 Found; not followed",
		},
		{
			name: "a redirect loop",
			handle: func(w http.ResponseWriter, r *http.Request, _ []byte, n int) {
				http.Redirect(w, r, fmt.Sprintf("/hook/%d", n), http.StatusTemporaryRedirect)
			},
			requests: 4,
			want:     "redirected more than 3 times",
		},
		{
			name: "307 without a Location",
			handle: func(w http.ResponseWriter, _ *http.Request, _ []byte, _ int) {
				w.WriteHeader(http.StatusTemporaryRedirect)
			},
			requests: 1,
			want:     "without a usable Location",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.handle)

			res := fastSender().Deliver(t.Context(), Target{URL: rc.URL + "/hook", Key: testKey}, samplePayload())

			if len(rc.requests()) != tt.requests || res.Attempts != 1 {
				t.Errorf("receiver got %d requests in %d attempts, want %d in 1", len(rc.requests()), res.Attempts, tt.requests)
			}
			if de := deliveryError(t, res.Err); de.Retryable || !strings.Contains(res.Err.Error(), tt.want) {
				t.Errorf("error = %q, want a final error saying %q", res.Err, tt.want)
			}
		})
	}
}

func TestDeliverOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify(testKey, body, r.Header.Get(SignatureHeader)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	s := fastSender()
	s.Client = srv.Client()
	if res := s.Deliver(t.Context(), Target{URL: srv.URL, Key: testKey}, samplePayload()); res.Err != nil {
		t.Fatalf("Deliver with the server's CA: %v", res.Err)
	}

	res := fastSender().Deliver(t.Context(), Target{URL: srv.URL, Key: testKey}, samplePayload())
	de := deliveryError(t, res.Err)
	if de.Retryable || res.Attempts != 1 || !strings.Contains(res.Err.Error(), "TLS certificate does not verify") {
		t.Errorf("Deliver without the server's CA = %+v, want one final TLS error", res)
	}
}

func TestDeliverRefusesTargetsWithoutSending(t *testing.T) {
	rc := newReceiver(t, status(http.StatusOK))
	u, _ := url.Parse(rc.URL)
	tests := []struct {
		name   string
		target Target
		p      Payload
		want   error
		say    string
	}{
		{"no key", Target{URL: rc.URL}, samplePayload(), ErrNoKey, "signing key is empty"},
		{"empty URL", Target{Key: testKey}, samplePayload(), ErrInvalidTarget, "URL is empty"},
		{"no scheme", Target{URL: u.Host + "/hook", Key: testKey}, samplePayload(), ErrInvalidTarget, "no scheme"},
		{"other scheme", Target{URL: "ftp://" + u.Host + "/hook", Key: testKey}, samplePayload(), ErrInvalidTarget, `scheme is "ftp"`},
		{"no host", Target{URL: "http:///hook", Key: testKey}, samplePayload(), ErrInvalidTarget, "no host"},
		{"credentials in the URL", Target{URL: "http://user:pa55word@" + u.Host + "/hook", Key: testKey}, samplePayload(), ErrInvalidTarget, "user or password"},
		{"does not parse", Target{URL: "http://" + u.Host + "/ho\x7fok", Key: testKey}, samplePayload(), ErrInvalidTarget, "does not parse"},
		{"token with a newline inside", Target{URL: rc.URL, Key: testKey, Token: "abc\r\nX-Evil: 1"}, samplePayload(), ErrInvalidTarget, "token has characters"},
		{"unknown format", Target{URL: rc.URL, Key: testKey, Format: "Slack"}, samplePayload(), ErrInvalidPayload, "unknown format"},
		{"no id", Target{URL: rc.URL, Key: testKey}, Payload{Event: EventStale}, ErrInvalidPayload, "id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := fastSender().Deliver(t.Context(), tt.target, tt.p)

			if !errors.Is(res.Err, tt.want) || !strings.Contains(res.Err.Error(), tt.say) {
				t.Errorf("error = %v, want %v saying %q", res.Err, tt.want, tt.say)
			}
			if res.Attempts != 0 || res.StatusCode != 0 {
				t.Errorf("Deliver = %+v, want no attempt", res)
			}
			for _, secret := range []string{"pa55word", "/hook", "X-Evil"} {
				if strings.Contains(res.Err.Error(), secret) {
					t.Errorf("error %q shows %q", res.Err, secret)
				}
			}
		})
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

func TestErrorsHideSecrets(t *testing.T) {
	// A receiver that echoes what it got, the way some debugging endpoints do.
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte, _ int) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "denied %s for %s, key %s", r.Header.Get("Authorization"), r.URL.RequestURI(), testKey)
	})

	res := fastSender().Deliver(t.Context(), Target{URL: rc.URL + "/hooks/s3cr3t-path?sig=q", Key: testKey, Token: testToken}, samplePayload())

	msg := res.Err.Error()
	for _, secret := range []string{testToken, string(testKey)} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows a secret", msg)
		}
	}
	if !strings.Contains(msg, "denied Bearer [redacted] for") {
		t.Errorf("error %q does not quote the redacted answer", msg)
	}
	if strings.HasPrefix(msg, "webhook "+rc.URL) || !strings.HasPrefix(msg, "webhook "+strings.TrimPrefix(rc.URL, "http://")+": ") {
		t.Errorf("error %q does not name the receiver by host", msg)
	}
}

func TestDeliverConcurrently(t *testing.T) {
	var got sync.Map
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, n int) {
		if !Verify(testKey, body, r.Header.Get(SignatureHeader)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Store(r.Header.Get(DeliveryHeader), true)
		w.WriteHeader(http.StatusOK)
	})
	s := &Sender{Timeout: 2 * time.Second, Backoff: time.Millisecond, MaxAttempts: 10}

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			p := samplePayload()
			p.ID = fmt.Sprintf("delivery-%d", i)
			if res := s.Deliver(t.Context(), Target{URL: rc.URL, Key: testKey}, p); res.Err != nil {
				errs <- res.Err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 20 {
		if _, ok := got.Load(fmt.Sprintf("delivery-%d", i)); !ok {
			t.Errorf("delivery-%d not received", i)
		}
	}
}
