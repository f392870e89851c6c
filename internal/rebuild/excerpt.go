package rebuild

import (
	"bytes"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on reading a response body.
const (
	// excerptBytes is how much of a response body is read for the error
	// message.
	excerptBytes = 1 << 10
	// drainBytes is how much more is read and dropped so that the
	// connection can be reused; a longer body closes the connection.
	drainBytes = 64 << 10
	// excerptShown is how much of the sanitised excerpt an error message
	// shows.
	excerptShown = 256
)

// readExcerpt reads the start of a response body for an error message,
// drains a bounded rest so that the connection can be reused, and closes
// the body. Read errors are ignored: the status code is what counts.
func readExcerpt(body io.ReadCloser, secrets [][]byte) string {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, excerptBytes+1))
	cut := len(b) > excerptBytes
	if cut {
		b = b[:excerptBytes]
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	return sanitize(b, cut, secrets)
}

// sanitize turns the start of a body into one line of printable text of at
// most excerptShown bytes, without any of secrets in it. When the body was
// cut, its last bytes are dropped too, so that a secret cut in half cannot
// show its first half.
func sanitize(b []byte, cut bool, secrets [][]byte) string {
	if cut {
		longest := 0
		for _, s := range secrets {
			longest = max(longest, len(s))
		}
		b = b[:max(len(b)-longest, 0)]
	}
	for _, s := range secrets {
		if len(s) > 0 {
			b = bytes.ReplaceAll(b, s, []byte("[redacted]"))
		}
	}
	var sb strings.Builder
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		sb.WriteRune(r)
	}
	return truncate(sb.String(), excerptShown)
}

// truncate cuts s to at most n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
