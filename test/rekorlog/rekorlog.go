// Package rekorlog serves, on loopback, the part of Rekor's API that cosign
// uses to upload an entry (POST /api/v1/log/entries): it checks and
// canonicalizes the proposed entry with Rekor's own entry types and answers
// with a signed entry timestamp made with a key of its own, which a trusted
// root can list. It keeps no Merkle tree: there are no inclusion proofs.
package rekorlog

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/go-openapi/runtime"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"         // dsse entries, as cosign attest uploads
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1" // hashedrekord entries, as cosign sign uploads
	"github.com/sigstore/sigstore-go/pkg/root"
)

// Log is a transparency log served over HTTP on 127.0.0.1.
type Log struct {
	// URL is the log's base URL, what a client uploads to.
	URL string
	// ID is the log's identifier: the SHA-256 of its public key's DER.
	ID []byte

	key     *ecdsa.PrivateKey
	started time.Time

	mu      sync.Mutex
	entries []json.RawMessage // canonical bodies, by log index
	refuse  bool
}

// New starts a log with a new P-256 key until the test ends.
func New(t testing.TB) *Log {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	l := &Log{ID: id[:], key: key, started: time.Now().Add(-time.Minute)}
	srv := httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(srv.Close)
	l.URL = srv.URL
	return l
}

// Authority is the log as a trusted root lists it.
func (l *Log) Authority() *root.TransparencyLog {
	return &root.TransparencyLog{
		BaseURL:             l.URL,
		ID:                  l.ID,
		ValidityPeriodStart: l.started,
		HashFunc:            crypto.SHA256,
		PublicKey:           l.key.Public(),
		SignatureHashFunc:   crypto.SHA256,
	}
}

// Entries returns the canonical bodies of the entries logged so far.
func (l *Log) Entries() []json.RawMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]json.RawMessage(nil), l.entries...)
}

// SetRefusing makes the log answer uploads with 400 (true), or accept them
// again (false).
func (l *Log) SetRefusing(refuse bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuse = refuse
}

func (l *Log) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/log/entries" {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	refuse := l.refuse
	l.mu.Unlock()
	if refuse {
		fail(w, http.StatusBadRequest, "entry refused")
		return
	}
	pe, err := models.UnmarshalProposedEntry(http.MaxBytesReader(w, r.Body, 1<<20), runtime.JSONConsumer())
	if err != nil {
		fail(w, http.StatusBadRequest, "not a proposed entry")
		return
	}
	entry, err := types.UnmarshalEntry(pe)
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid entry: "+err.Error())
		return
	}
	body, err := types.CanonicalizeEntry(context.Background(), entry)
	if err != nil {
		fail(w, http.StatusBadRequest, "cannot canonicalize the entry: "+err.Error())
		return
	}

	l.mu.Lock()
	index := int64(len(l.entries))
	l.entries = append(l.entries, body)
	l.mu.Unlock()

	payload := struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	}{base64.StdEncoding.EncodeToString(body), time.Now().Unix(), index, hex.EncodeToString(l.ID)}
	raw, err := json.Marshal(payload)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	canonical, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	digest := sha256.Sum256(canonical)
	set, err := ecdsa.SignASN1(rand.Reader, l.key, digest[:])
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	leaf := sha256.Sum256(append([]byte{0}, body...))
	uuid := hex.EncodeToString(leaf[:])
	resp := map[string]any{uuid: map[string]any{
		"body":           payload.Body,
		"integratedTime": payload.IntegratedTime,
		"logID":          payload.LogID,
		"logIndex":       payload.LogIndex,
		"verification":   map[string]any{"signedEntryTimestamp": set},
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, `{"code":%d,"message":%q}`, code, msg)
}
