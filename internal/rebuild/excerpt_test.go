package rebuild

import (
	"io"
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	secrets := [][]byte{[]byte("hmac-key-123"), []byte("ghp_token")}
	tests := []struct {
		name string
		in   string
		cut  bool
		want string
	}{
		{"plain", "no such hook", false, "no such hook"},
		{"white space and control characters collapse", "line one\r\n\tline\x00two\x1b[31m", false, "line one line two [31m"},
		{"invalid UTF-8", "bad \xff\xfe bytes", false, "bad bytes"},
		{"unicode kept", "déjà vu", false, "déjà vu"},
		{"secrets redacted", `{"auth":"Bearer ghp_token","key":"hmac-key-123"}`, false, `{"auth":"Bearer [redacted]","key":"[redacted]"}`},
		{"half a secret at a cut is dropped", "echo: some text hmac-k", true, "echo: some"},
		{"long text shortened", strings.Repeat("x", 300), false, strings.Repeat("x", excerptShown) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitize([]byte(tt.in), tt.cut, secrets); got != tt.want {
				t.Errorf("sanitize = %q, want %q", got, tt.want)
			}
		})
	}
}

type countingBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestReadExcerptIsBounded(t *testing.T) {
	body := &countingBody{r: strings.NewReader("error " + strings.Repeat("y", 10<<20))}
	got := readExcerpt(body, nil)
	if !strings.HasPrefix(got, "error yyy") || len(got) > excerptShown+3 {
		t.Errorf("excerpt = %q", got)
	}
	if body.read > excerptBytes+1+drainBytes {
		t.Errorf("read %d bytes of a 10 MiB body, want at most %d", body.read, excerptBytes+1+drainBytes)
	}
	if !body.closed {
		t.Error("body not closed")
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	if got := truncate("ééé", 3); got != "é..." {
		t.Errorf("truncate = %q, want %q", got, "é...")
	}
}
