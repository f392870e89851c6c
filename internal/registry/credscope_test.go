package registry

import "testing"

func TestSameSite(t *testing.T) {
	tests := []struct {
		registry, host string
		want           bool
	}{
		{"registry.example.com", "registry.example.com", true},
		{"index.docker.io", "auth.docker.io", true},
		{"registry.example.com:5000", "auth.example.com", true},
		{"ghcr.io", "ghcr.io", true},
		{"registry.example.com", "auth.example.org", false},
		{"registry.example.com", "example.com.evil.net", false},
		{"foo.github.io", "bar.github.io", false}, // github.io is a public suffix
		{"127.0.0.1:5000", "127.0.0.1:5000", true},
		{"127.0.0.1:5000", "127.0.0.1:6000", false},
		{"127.0.0.1:5000", "localhost:5000", false},
		{"localhost:5000", "localhost:6000", false},
		{"[::1]:5000", "[::1]:6000", false},
		{"registry.example.com", "10.0.0.1", false},
	}
	for _, tt := range tests {
		if got := sameSite(tt.registry, tt.host); got != tt.want {
			t.Errorf("sameSite(%q, %q) = %v, want %v", tt.registry, tt.host, got, tt.want)
		}
	}
}
