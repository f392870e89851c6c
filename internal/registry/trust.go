package registry

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
)

// maxTrustSettings bounds the cache of transports built for certificate
// bundles; when it is full the cache starts over.
const maxTrustSettings = 64

// errNoPEMCertificate is the cause of a certificate bundle refusal.
var errNoPEMCertificate = errors.New("no PEM certificate in bundle")

// errCustomTransport is the cause of a certificate bundle refusal when the
// base transport is not an *http.Transport, whose TLS settings can be
// cloned.
var errCustomTransport = errors.New("base transport is not an *http.Transport")

// caKey identifies a certificate bundle without keeping it: "" for none.
func caKey(pem []byte) string {
	if len(pem) == 0 {
		return ""
	}
	h := sha256.Sum256(pem)
	return hex.EncodeToString(h[:])
}

// transportFor returns the polite transport trusting the authorities of
// pem in addition to the base transport's (the system's unless the base
// transport names its own), and pem's cache key.
func (c *Client) transportFor(pem []byte) (*politeTransport, string, error) {
	key := caKey(pem)
	if key == "" {
		return c.transport, "", nil
	}
	c.mu.Lock()
	t, ok := c.trusted[key]
	c.mu.Unlock()
	if ok {
		return t, key, nil
	}

	base, ok := c.base.(*http.Transport)
	if !ok {
		return nil, "", &Error{Kind: KindTLS, Message: "certificate bundle cannot be applied to the configured HTTP transport", Err: errCustomTransport}
	}
	var pool *x509.CertPool
	if base.TLSClientConfig != nil && base.TLSClientConfig.RootCAs != nil {
		pool = base.TLSClientConfig.RootCAs.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil {
		pool = sys
	} else {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", &Error{Kind: KindTLS, Message: "certificate bundle holds no PEM certificate", Err: errNoPEMCertificate}
	}
	next := base.Clone()
	if next.TLSClientConfig == nil {
		next.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	next.TLSClientConfig.RootCAs = pool
	t = c.transport.with(next)

	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.trusted[key]; ok {
		return prev, key, nil
	}
	if len(c.trusted) >= maxTrustSettings {
		c.trusted = map[string]*politeTransport{}
	}
	c.trusted[key] = t
	return t, key, nil
}
