package rebuild

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// signaturePrefix names the algorithm in SignatureHeader.
const signaturePrefix = "sha256="

// Sign returns the value of SignatureHeader for body: "sha256=" followed by
// the lowercase hex HMAC-SHA256 of body under key.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify tells whether header is a valid SignatureHeader value for body
// under key. It compares in constant time, accepts the hex digits in either
// case, and is false for an empty key or a header without the "sha256="
// prefix.
func Verify(key, body []byte, header string) bool {
	if len(key) == 0 {
		return false
	}
	hexSum, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
