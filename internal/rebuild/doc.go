// Package rebuild delivers signed webhook calls: the call that asks a CI
// system to rebuild a stale catalog entry, and the notifications of notable
// transitions. It is plain Go over net/http; the controllers decide when to
// call and record the Result.
//
// # Request
//
// A delivery is an HTTP POST to the target URL (http or https) with these
// headers:
//
//	Content-Type:        application/json
//	User-Agent:          plinth
//	X-Plinth-Signature:  sha256=<lowercase hex HMAC-SHA256 of the exact body bytes under the key>
//	X-Plinth-Event:      Stale | ApprovalLost | ApprovalRevoked | ExceptionExpiring
//	X-Plinth-Delivery:   <payload id, the same on every retry of one delivery>
//	Authorization:       Bearer <token>   (only when a token is set)
//	Accept:              application/vnd.github+json   (only with the RepositoryDispatch format)
//
// A delivery without a key is refused before any request: nothing unsigned
// is ever sent.
//
// # Body
//
// With the Generic format the body is the Payload as a JSON object:
//
//	{
//	  "id": "3f0c6a52-...",                    unique per transition, same on retries
//	  "event": "Stale",
//	  "reason": "FixAvailable",                the condition reason
//	  "message": "...",                        omitted when empty
//	  "namespace": "platform",
//	  "name": "python",                        the BaseImage
//	  "image": "registry.example.com/base/python:3.13-slim",
//	  "digest": "sha256:...",                  resolved digest, omitted when empty
//	  "approvedDigest": "sha256:...",          omitted when empty
//	  "upstreamDigest": "sha256:...",          omitted when empty
//	  "policy": "default",
//	  "deadline": "2026-12-01T00:00:00Z",      omitted when none
//	  "blockingCVEs": ["CVE-2026-1234"],       at most 100, omitted when none
//	  "time": "2026-11-30T08:00:00Z"
//	}
//
// Times are RFC 3339 in UTC, with fractional seconds when they have any.
// With the RepositoryDispatch format the body is
// what GitHub's "create a repository dispatch event" endpoint
// (POST https://api.github.com/repos/OWNER/REPO/dispatches, with a token
// allowed to write the repository's contents) takes:
//
//	{"event_type": "plinth-stale", "client_payload": {"plinth": { ...the Payload... }}}
//
// event_type is "plinth-" followed by the event in lower case
// (plinth-stale, plinth-approvallost, plinth-approvalrevoked,
// plinth-exceptionexpiring), so a workflow selects it with
// `on: repository_dispatch: types: [plinth-stale]` and reads, say,
// `github.event.client_payload.plinth.image`. The Payload is nested under
// "plinth" because GitHub refuses a client_payload with more than 10
// top-level properties. GitHub answers 204 on success. A body is at most
// MaxBodyBytes (60 KiB), under GitHub's 64 KB limit.
//
// # Verifying a delivery
//
// A receiver computes the HMAC-SHA256 of the raw body bytes, before any JSON
// parsing, under the shared key, and compares it in constant time with the
// hex digits after "sha256=" in X-Plinth-Signature; Verify does exactly that.
// It then drops a delivery whose X-Plinth-Delivery it has already seen:
// every retry of one delivery carries the same id, the same bytes and the
// same signature.
//
// # Retries and answers
//
// Any 2xx answer is success. Connection errors, attempts that time out
// (10 s by default, redirects and reading the answer included), 5xx and
// 429 answers are retried within one delivery, 3 attempts by default, after
// 1 s, then 2 s, plus up to a quarter more of jitter, never past the
// caller's deadline. On a 429 or 503 a Retry-After in seconds or as an HTTP
// date replaces the backoff; one longer than 1 minute (or than the time left)
// ends the delivery at once, and Result.RetryAfter tells the caller when to
// try again (at most 1 minute). Other 4xx answers are final.
//
// A 307 or 308 redirect to the same scheme, host and port is followed, at
// most 3 times, with the same body and headers. A redirect elsewhere is not
// followed, so the signature and token never reach another host: it fails
// the delivery with a message naming the Location's scheme and host. 301,
// 302 and 303 are not followed either, as they would turn the POST into a
// GET without a body; they fail the delivery too.
//
// # Errors
//
// Errors are stable sentences meant for status conditions. They name the
// receiver's host and port, never the URL's path or query (which may hold a
// secret), the key or the token; at most 256 bytes of the answer's body
// are quoted, made printable, with any occurrence of the key or token
// replaced by "[redacted]". For example:
//
//	webhook ci.example.com: answered 404 Not Found: no such hook
//	webhook ci.example.com: answered 503 Service Unavailable (3 attempts)
//	webhook ci.example.com: no answer within 10s (3 attempts)
//	webhook ci.example.com: answered 307 Temporary Redirect to https://elsewhere.example, another scheme or host; not followed, ...
//
// Error.Retryable tells whether a later delivery may succeed without anyone
// changing the configuration.
package rebuild
