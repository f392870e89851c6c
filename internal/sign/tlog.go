package sign

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"

	"github.com/go-openapi/runtime"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	rekor "github.com/sigstore/rekor/pkg/client"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/models"
)

// tlogError is a failed upload to a transparency log. Its message is
// stable and names no URL; the cause is kept for logs.
type tlogError struct {
	what  string // "the signature", "the vuln attestation"
	code  int    // the log's HTTP status, 0 when it did not answer
	cause error
}

func (e *tlogError) Error() string {
	if e.code != 0 {
		return fmt.Sprintf("the transparency log refused %s (HTTP %d)", e.what, e.code)
	}
	return fmt.Sprintf("cannot upload %s to the transparency log", e.what)
}

func (e *tlogError) Unwrap() error { return e.cause }

// ErrTransparencyLogRefused is matched (errors.Is) by an upload the log
// refused as invalid (HTTP 4xx): retrying the same entry will not help.
var ErrTransparencyLogRefused = errors.New("the transparency log refused the entry")

// Is matches ErrTransparencyLogRefused for 4xx answers.
func (e *tlogError) Is(target error) bool {
	return target == ErrTransparencyLogRefused && e.code >= 400 && e.code < 500
}

// transparencyLog uploads entries to one Rekor and turns its answers into
// the bundles cosign attaches to signatures.
type transparencyLog struct {
	client *client.Rekor
	pubPEM []byte // the signing key's public key
}

// newTransparencyLog returns nil when rawURL is empty: nothing is uploaded.
func newTransparencyLog(rawURL string, key *Key) (*transparencyLog, error) {
	if rawURL == "" {
		return nil, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: the transparency log URL is not an http or https URL", ErrInvalidPublication)
	}
	c, err := rekor.GetRekorClient(rawURL, rekor.WithUserAgent("plinth"))
	if err != nil {
		return nil, fmt.Errorf("%w: the transparency log URL: %v", ErrInvalidPublication, err)
	}
	return &transparencyLog{client: c, pubPEM: key.PublicKeyPEM()}, nil
}

// signature uploads a simple-signing signature (raw) over payload as a
// hashedrekord entry, as cosign sign does, and returns its bundle.
func (l *transparencyLog) signature(ctx context.Context, raw, payload []byte) (static.Option, error) {
	h := sha256.New()
	h.Write(payload)
	entry, err := cosign.TLogUpload(ctx, l.client, raw, h, l.pubPEM)
	return bundleOption("the signature", entry, err)
}

// attestation uploads a DSSE envelope as a dsse entry, as cosign attest
// does, and returns its bundle.
func (l *transparencyLog) attestation(ctx context.Context, predicateType string, envelope []byte) (static.Option, error) {
	entry, err := cosign.TLogUploadDSSEEnvelope(ctx, l.client, envelope, l.pubPEM)
	return bundleOption("the "+predicateType+" attestation", entry, err)
}

func bundleOption(what string, entry *models.LogEntryAnon, err error) (static.Option, error) {
	if err != nil {
		te := &tlogError{what: what, cause: err}
		var apiErr interface{ Code() int }
		var rtErr *runtime.APIError
		switch {
		case errors.As(err, &apiErr):
			te.code = apiErr.Code()
		case errors.As(err, &rtErr):
			te.code = rtErr.Code
		}
		return nil, te
	}
	b := cbundle.EntryToBundle(entry)
	if b == nil {
		return nil, &tlogError{what: what, cause: errors.New("the log answered with no signed entry timestamp")}
	}
	return static.WithBundle(b), nil
}

// logged reports whether sig carries a transparency-log bundle.
func logged(sig oci.Signature) bool {
	b, err := sig.Bundle()
	return err == nil && b != nil
}
