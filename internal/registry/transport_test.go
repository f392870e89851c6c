package registry

import (
	"net/http"
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
