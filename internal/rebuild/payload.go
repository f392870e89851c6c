package rebuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Events a delivery announces, sent as Payload.Event and in EventHeader.
const (
	// EventStale: the entry became stale and a rebuild is due; Reason says
	// why (FixAvailable, UpstreamUpdated, MaxAgeExceeded).
	EventStale = "Stale"
	// EventApprovalLost: the resolved digest went from approved to not
	// approved.
	EventApprovalLost = "ApprovalLost"
	// EventApprovalRevoked: the approved digest itself lost its approval,
	// for example because a remediation window passed or an exception it
	// relied on is gone.
	EventApprovalRevoked = "ApprovalRevoked"
	// EventExceptionExpiring: an exception the approval depends on expires
	// soon.
	EventExceptionExpiring = "ExceptionExpiring"
)

// Format is how a delivery's body is laid out.
type Format string

const (
	// FormatGeneric sends the Payload itself as a JSON object. It suits
	// any receiver that reads JSON, a Tekton EventListener for one (which
	// needs an interceptor of its own to check the signature). The empty
	// Format means FormatGeneric.
	FormatGeneric Format = "Generic"
	// FormatRepositoryDispatch sends the body GitHub's "create a repository
	// dispatch event" API takes:
	//   {"event_type": "plinth-<event in lower case>", "client_payload": {"plinth": <Payload>}}
	// The Payload is nested one level down because GitHub refuses a
	// client_payload with more than 10 top-level properties.
	FormatRepositoryDispatch Format = "RepositoryDispatch"
)

// Limits on what a body carries.
const (
	// MaxBlockingCVEs is how many Payload.BlockingCVEs a body carries; the
	// rest are left out.
	MaxBlockingCVEs = 100
	// MaxBodyBytes is the largest body Body produces, well under the 64 KB
	// GitHub accepts for a repository dispatch client_payload.
	MaxBodyBytes = 60 << 10
	// maxIDLength bounds Payload.ID, which is also sent as a header.
	maxIDLength = 256
	// maxEventLength keeps "plinth-" plus the event within the 100
	// characters GitHub accepts for event_type.
	maxEventLength = 93
)

// Payload is the JSON body of a FormatGeneric delivery, and the
// client_payload.plinth object of a FormatRepositoryDispatch one.
type Payload struct {
	// ID identifies one transition. It is the same on every attempt and
	// every retry of its delivery, and is sent in DeliveryHeader, so a
	// receiver that sees an ID twice can drop the second delivery.
	// Required: 1 to 256 visible ASCII characters (no spaces).
	ID string `json:"id"`
	// Event is one of the Event constants. Required.
	Event string `json:"event"`
	// Reason is the reason of the condition behind the event, e.g.
	// FixAvailable, UpstreamUpdated or MaxAgeExceeded.
	Reason string `json:"reason"`
	// Message is the condition's human-readable message.
	Message string `json:"message,omitempty"`
	// Namespace is the BaseImage's namespace.
	Namespace string `json:"namespace"`
	// Name is the BaseImage's name.
	Name string `json:"name"`
	// Image is the BaseImage's spec.image.
	Image string `json:"image"`
	// Digest is the digest the image resolves to now.
	Digest string `json:"digest,omitempty"`
	// ApprovedDigest is the newest approved digest, if any.
	ApprovedDigest string `json:"approvedDigest,omitempty"`
	// UpstreamDigest is the digest of the upstream image, when one is set.
	UpstreamDigest string `json:"upstreamDigest,omitempty"`
	// Policy is the name of the ImagePolicy that judges the entry.
	Policy string `json:"policy"`
	// Deadline is when something happens unless the entry is rebuilt: a
	// remediation window closes, an exception expires.
	Deadline *time.Time `json:"deadline,omitempty"`
	// BlockingCVEs are the ids of the findings that block or will block
	// approval; at most MaxBlockingCVEs are sent.
	BlockingCVEs []string `json:"blockingCVEs,omitempty"`
	// Time is when the transition was observed.
	Time time.Time `json:"time"`
}

// ErrInvalidPayload is wrapped by the error Body and Sender.Deliver return
// for a payload or format they cannot send.
var ErrInvalidPayload = errors.New("invalid webhook payload")

// Body returns the exact bytes Sender.Deliver sends for p in format f, and
// signs. Times are written in UTC with RFC 3339 precision to the
// nanosecond as encoding/json writes them; BlockingCVEs beyond
// MaxBlockingCVEs are left out. Body fails for an unknown format, an empty
// or unsendable ID or Event, and a body over MaxBodyBytes.
func Body(f Format, p Payload) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	p = p.normalized()
	var v any
	switch f {
	case FormatGeneric, "":
		v = p
	case FormatRepositoryDispatch:
		v = repositoryDispatch{
			EventType:     "plinth-" + strings.ToLower(p.Event),
			ClientPayload: dispatchPayload{Plinth: p},
		}
	default:
		return nil, fmt.Errorf("%w: unknown format %q, want %s or %s", ErrInvalidPayload, truncate(string(f), 64), FormatGeneric, FormatRepositoryDispatch)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	if len(b) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: body is %d bytes, more than %d", ErrInvalidPayload, len(b), MaxBodyBytes)
	}
	return b, nil
}

// repositoryDispatch is the body of GitHub's repository dispatch API.
type repositoryDispatch struct {
	EventType     string          `json:"event_type"`
	ClientPayload dispatchPayload `json:"client_payload"`
}

type dispatchPayload struct {
	Plinth Payload `json:"plinth"`
}

func (p Payload) validate() error {
	switch {
	case p.ID == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidPayload)
	case len(p.ID) > maxIDLength:
		return fmt.Errorf("%w: id is longer than %d characters", ErrInvalidPayload, maxIDLength)
	case !visibleASCII(p.ID):
		return fmt.Errorf("%w: id has characters other than visible ASCII", ErrInvalidPayload)
	case p.Event == "":
		return fmt.Errorf("%w: event is empty", ErrInvalidPayload)
	case len(p.Event) > maxEventLength:
		return fmt.Errorf("%w: event is longer than %d characters", ErrInvalidPayload, maxEventLength)
	case !visibleASCII(p.Event):
		return fmt.Errorf("%w: event has characters other than visible ASCII", ErrInvalidPayload)
	}
	return nil
}

// normalized returns p with its times in UTC and its CVE list capped, so
// that the same transition gives the same bytes wherever it is built.
func (p Payload) normalized() Payload {
	p.Time = p.Time.UTC()
	if p.Deadline != nil {
		d := p.Deadline.UTC()
		p.Deadline = &d
	}
	if len(p.BlockingCVEs) > MaxBlockingCVEs {
		p.BlockingCVEs = p.BlockingCVEs[:MaxBlockingCVEs]
	}
	return p
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
