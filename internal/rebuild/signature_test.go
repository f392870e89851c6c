package rebuild

import (
	"strings"
	"testing"
)

func TestSign(t *testing.T) {
	// HMAC-SHA256 of a well-known message, as computed by any other
	// implementation (e.g. `openssl dgst -sha256 -hmac key`).
	got := Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog"))
	want := "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("s3cret")
	body := []byte(`{"id":"a"}`)
	sig := Sign(key, body)
	tests := []struct {
		name   string
		key    []byte
		body   []byte
		header string
		want   bool
	}{
		{"valid", key, body, sig, true},
		{"uppercase hex", key, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256=")), true},
		{"wrong key", []byte("other"), body, sig, false},
		{"body changed", key, []byte(`{"id":"b"}`), sig, false},
		{"body with extra white space", key, []byte(`{"id": "a"}`), sig, false},
		{"no prefix", key, body, strings.TrimPrefix(sig, "sha256="), false},
		{"other algorithm", key, body, "sha1=" + strings.TrimPrefix(sig, "sha256="), false},
		{"truncated", key, body, sig[:len(sig)-2], false},
		{"not hex", key, body, "sha256=" + strings.Repeat("zz", 32), false},
		{"empty header", key, body, "", false},
		{"empty key", nil, body, Sign(nil, body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.key, tt.body, tt.header); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
