package registry

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.header, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUnusableChallenge(t *testing.T) {
	tests := []struct {
		status int
		values []string
		want   string // "" for no error
	}{
		{http.StatusOK, []string{"Negotiate"}, ""},
		{http.StatusUnauthorized, nil, ""},
		{http.StatusUnauthorized, []string{`Basic realm="registry"`}, ""},
		{http.StatusUnauthorized, []string{`bearer realm="https://auth.example.com/token"`}, ""},
		{http.StatusUnauthorized, []string{"Negotiate", `Basic realm="registry"`}, ""},
		{http.StatusUnauthorized, []string{`Negotiate, Basic realm="registry"`}, ""},
		{http.StatusUnauthorized, []string{"Negotiate"}, `registry authentication failed: unsupported auth scheme "Negotiate"`},
		{http.StatusUnauthorized, []string{"NTLM", "Negotiate"}, `registry authentication failed: unsupported auth scheme "NTLM"`},
		{http.StatusUnauthorized, []string{`Digest realm="x", nonce="y"`}, `registry authentication failed: unsupported auth scheme "Digest"`},
		{http.StatusUnauthorized, []string{`"Bearer realm=x`}, "registry authentication failed: malformed WWW-Authenticate challenge"},
		{http.StatusUnauthorized, []string{`Bearer="x"`}, "registry authentication failed: malformed WWW-Authenticate challenge"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		for _, v := range tt.values {
			resp.Header.Add("WWW-Authenticate", v)
		}
		err := unusableChallenge(resp)
		got := ""
		if err != nil {
			got = err.Error()
			if KindOf(err) != KindUnauthorized {
				t.Errorf("%d %q: kind %q, want %q", tt.status, tt.values, KindOf(err), KindUnauthorized)
			}
		}
		if got != tt.want {
			t.Errorf("%d %q: %q, want %q", tt.status, tt.values, got, tt.want)
		}
	}
}

func TestHostLimiterSlowsDownOnThrottlingAndRecovers(t *testing.T) {
	h := newHostLimiter(100, 100)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// The requests in flight when the host starts throttling come back 429
	// together: one halving, not one per response.
	for i := range 4 {
		h.throttled(t0.Add(time.Duration(i)*time.Millisecond), 0)
	}
	if got := h.limit(); got != 50 {
		t.Fatalf("after one burst of 429s the rate is %v, want 50", got)
	}
	if got := h.lim.Burst(); got != 50 {
		t.Errorf("burst %d, want 50 (scaled with the rate)", got)
	}
	// Throttled again a second later: halved again, and never below 1/s.
	now := t0
	for range 10 {
		now = now.Add(cutSpacing)
		h.throttled(now, 0)
	}
	if got := h.limit(); got != minAdaptiveRate {
		t.Fatalf("after repeated 429s the rate is %v, want %v", got, minAdaptiveRate)
	}
	if got := h.lim.Burst(); got != 1 {
		t.Errorf("burst %d, want 1", got)
	}

	// Answers other than 429 raise the rate by a tenth of the configured
	// one per recovery period, not faster, and not past it.
	h.answered(now.Add(recoveryPeriod - time.Millisecond))
	if got := h.limit(); got != minAdaptiveRate {
		t.Fatalf("rate %v raised before a recovery period passed", got)
	}
	now = now.Add(recoveryPeriod)
	h.answered(now)
	if got := h.limit(); got != 11 {
		t.Fatalf("after one recovery period the rate is %v, want 11", got)
	}
	for range 20 {
		now = now.Add(recoveryPeriod)
		h.answered(now)
	}
	if got, burst := h.limit(), h.lim.Burst(); got != 100 || burst != 100 {
		t.Fatalf("after recovering, rate %v burst %d; want 100 and 100", got, burst)
	}
}

func TestHostLimiterFloorIsTheConfiguredRateWhenLower(t *testing.T) {
	h := newHostLimiter(0.5, 1)
	h.throttled(time.Now(), 0)
	if got := h.limit(); got != 0.5 {
		t.Fatalf("rate %v, want the configured 0.5/s kept", got)
	}
}

func TestRetryAfterHoldsEveryRequestToTheHost(t *testing.T) {
	var (
		mu       sync.Mutex
		first    = true
		throttle time.Time
		others   []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			throttle = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		others = append(others, time.Now())
	}))
	defer srv.Close()
	tr := &politeTransport{
		next: http.DefaultTransport, timeout: 5 * time.Second, retries: 1,
		backoff: time.Millisecond, maxRetryAfter: 5 * time.Second, maxManifest: 1 << 20,
		limiters: &hostLimiters{limit: 1000, burst: 1000, m: map[string]*hostLimiter{}},
	}
	get := func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Error(err)
			return
		}
		_ = resp.Body.Close()
	}
	// One request is throttled; three more start once the client has
	// the 429, while the host's pause runs (requests sent before the 429
	// came back could not have been held).
	u, _ := url.Parse(srv.URL)
	lim := tr.limiters.get(u.Host)
	var wg sync.WaitGroup
	wg.Go(get)
	for {
		lim.mu.Lock()
		throttled := !lim.pausedUntil.IsZero()
		lim.mu.Unlock()
		if throttled {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		wg.Go(get)
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(others) != 4 {
		t.Fatalf("%d requests after the 429, want 4 (the retry and three others)", len(others))
	}
	for _, at := range others {
		if d := at.Sub(throttle); d < 900*time.Millisecond {
			t.Errorf("a request reached the host %v after its Retry-After: 1", d)
		}
	}
	if got := lim.limit(); got != 500 {
		t.Errorf("rate after a 429: %v, want 500", got)
	}
}
