package v1alpha1

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultRebuildMinInterval separates two rebuild triggers of one entry when
// neither the BaseImage nor its policy sets minInterval.
const DefaultRebuildMinInterval = time.Hour

// DefaultExceptionExpiryWarning is how long before an exception expires the
// ExceptionExpiring notification fires when the policy does not say.
const DefaultExceptionExpiryWarning = 7 * 24 * time.Hour

// RebuildSpec says what plinth does when a BaseImage becomes Stale: run a
// Job, call a webhook, or both.
// +kubebuilder:validation:XValidation:rule="!has(self.jobTemplate) || (has(self.serviceAccountName) && size(self.serviceAccountName) > 0)",message="a jobTemplate needs serviceAccountName: the ServiceAccount the rebuild Job runs as"
type RebuildSpec struct {
	// jobTemplate is a batch/v1 Job template. When the entry becomes Stale,
	// plinth creates one Job from it, owned by the BaseImage, with the
	// variables PLINTH_STALE_REASON, PLINTH_IMAGE, PLINTH_DIGEST,
	// PLINTH_UPSTREAM_DIGEST, PLINTH_APPROVED_DIGEST, PLINTH_BLOCKING_CVES and
	// PLINTH_BASEIMAGE added to every container. The API server validates
	// the Job when plinth creates it; a Job it refuses is reported in
	// status.rebuild.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	JobTemplate *batchv1.JobTemplateSpec `json:"jobTemplate,omitempty"`

	// serviceAccountName is the ServiceAccount, in this namespace, that the
	// rebuild Job's pods run as; it replaces the template's.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// webhook is called with a signed JSON payload when the entry becomes
	// Stale. Unset uses the policy's spec.rebuild.webhook, if any.
	// +optional
	Webhook *WebhookTarget `json:"webhook,omitempty"`

	// minInterval is the least time between two triggers of this entry,
	// e.g. "1h"; failed triggers back off exponentially from it. Unset uses
	// the policy's, or 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="minInterval must be a duration of at least 1m such as 1h"
	MinInterval *metav1.Duration `json:"minInterval,omitempty"`
}

// PolicyRebuild holds rebuild defaults for every BaseImage of a policy.
type PolicyRebuild struct {
	// webhook is called when an entry of this policy becomes Stale and the
	// entry names no webhook of its own.
	// +optional
	Webhook *WebhookTarget `json:"webhook,omitempty"`

	// minInterval is the default least time between two triggers of one
	// entry, e.g. "1h".
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="minInterval must be a duration of at least 1m such as 1h"
	MinInterval *metav1.Duration `json:"minInterval,omitempty"`
}

// WebhookFormat is how a webhook's body is laid out.
// +kubebuilder:validation:Enum=Generic;RepositoryDispatch
type WebhookFormat string

// Webhook formats.
const (
	// WebhookGeneric posts the payload itself as JSON: for generic
	// receivers and Tekton EventListeners.
	WebhookGeneric WebhookFormat = "Generic"
	// WebhookRepositoryDispatch wraps the payload as a GitHub
	// repository_dispatch event: {"event_type": ..., "client_payload": ...}.
	WebhookRepositoryDispatch WebhookFormat = "RepositoryDispatch"
)

// WebhookTarget is an HTTP endpoint plinth POSTs signed JSON to.
type WebhookTarget struct {
	// url to POST to, http:// or https://. Redirects to another host are
	// not followed.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?#]+')",message="url must be an http:// or https:// URL with a host"
	URL string `json:"url"`

	// secretRef names a Secret, in this namespace, whose hmacKey key signs
	// every request (header X-Plinth-Signature: sha256=<hex HMAC-SHA256 of
	// the body>), and whose optional token key is sent as a bearer token
	// (Authorization: Bearer <token>), as GitHub's dispatch API needs.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`

	// format of the body: Generic (the payload) or RepositoryDispatch.
	// Defaults to Generic.
	// +optional
	// +kubebuilder:default=Generic
	Format WebhookFormat `json:"format,omitempty"`
}

// NotificationEvent is a transition a notification fires on.
// +kubebuilder:validation:Enum=ApprovalLost;Stale;ApprovalRevoked;ExceptionExpiring
type NotificationEvent string

// Notification events.
const (
	// NotificationApprovalLost: the Approved condition went from True to
	// False.
	NotificationApprovalLost NotificationEvent = "ApprovalLost"
	// NotificationStale: the Stale condition became True.
	NotificationStale NotificationEvent = "Stale"
	// NotificationApprovalRevoked: the approved digest lost its approval
	// on its own merits, e.g. after its remediation window.
	NotificationApprovalRevoked NotificationEvent = "ApprovalRevoked"
	// NotificationExceptionExpiring: an exception the approval depends on
	// expires within the policy's exceptionExpiryWarning.
	NotificationExceptionExpiring NotificationEvent = "ExceptionExpiring"
)

// NotificationTarget is a signed webhook told of transitions of the entries
// of a policy.
type NotificationTarget struct {
	// name identifies the target in status.
	// +required
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// webhook is where the notification is delivered.
	// +required
	Webhook WebhookTarget `json:"webhook"`

	// events limits the transitions delivered; empty delivers all.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Events []NotificationEvent `json:"events,omitempty"`
}

// Wants tells whether the target is told of event.
func (n NotificationTarget) Wants(event NotificationEvent) bool {
	if len(n.Events) == 0 {
		return true
	}
	for _, e := range n.Events {
		if e == event {
			return true
		}
	}
	return false
}

// Rebuild outcomes, the values of RebuildStatus.Outcome.
const (
	// RebuildJobActive: the rebuild Job is running.
	RebuildJobActive = "JobActive"
	// RebuildJobSucceeded: the rebuild Job finished; the cycle ends when a
	// new digest is approved.
	RebuildJobSucceeded = "JobSucceeded"
	// RebuildJobFailed: the rebuild Job failed; the next trigger backs off.
	RebuildJobFailed = "JobFailed"
	// RebuildJobRefused: the API server refused the Job made from the
	// template.
	RebuildJobRefused = "JobRefused"
	// RebuildServiceAccountNotFound: spec.rebuild.serviceAccountName does
	// not exist.
	RebuildServiceAccountNotFound = "ServiceAccountNotFound"
	// RebuildWebhookPending: the trigger is recorded and its webhook is
	// being delivered; a delivery cut short is repeated with the same id.
	RebuildWebhookPending = "WebhookPending"
	// RebuildWebhookDelivered: the rebuild webhook answered 2xx.
	RebuildWebhookDelivered = "WebhookDelivered"
	// RebuildWebhookFailed: the rebuild webhook could not be delivered.
	RebuildWebhookFailed = "WebhookFailed"
	// RebuildWebhookSecretInvalid: the webhook's Secret is missing or has
	// no hmacKey.
	RebuildWebhookSecretInvalid = "WebhookSecretInvalid"
	// RebuildCompleted: a new digest was approved and the entry is no
	// longer stale.
	RebuildCompleted = "Completed"
)

// RebuildStatus records the last rebuild trigger of an entry.
type RebuildStatus struct {
	// digest that was stale when the rebuild was triggered.
	// +required
	Digest string `json:"digest"`

	// staleReason is the Stale condition's reason that triggered it:
	// FixAvailable, UpstreamUpdated or MaxAgeExceeded.
	// +required
	StaleReason string `json:"staleReason"`

	// lastTriggered is when plinth last triggered a rebuild.
	// +required
	LastTriggered metav1.Time `json:"lastTriggered"`

	// attempts counts the triggers of this stale digest.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// failures counts the consecutive failed triggers; each doubles the
	// wait before the next one.
	// +optional
	Failures int32 `json:"failures,omitempty"`

	// nextAttempt is the earliest time of the next trigger while the entry
	// stays stale.
	// +optional
	NextAttempt *metav1.Time `json:"nextAttempt,omitempty"`

	// jobName is the rebuild Job, when there is one.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// webhookResponseCode is the HTTP status of the last webhook delivery;
	// 0 when none was received.
	// +optional
	WebhookResponseCode int32 `json:"webhookResponseCode,omitempty"`

	// outcome: JobActive, JobSucceeded, JobFailed, JobRefused,
	// ServiceAccountNotFound, WebhookPending, WebhookDelivered, WebhookFailed,
	// WebhookSecretInvalid or Completed.
	// +required
	Outcome string `json:"outcome"`

	// message says what happened, in words.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// MaxNotifications is the most notifications BaseImageStatus.Notifications
// keeps; the oldest delivered ones go first.
const MaxNotifications = 16

// NotificationRecord is one transition told to the policy's notification
// targets, delivered or still pending.
type NotificationRecord struct {
	// id identifies the transition; every delivery of it carries this id
	// (X-Plinth-Delivery), so receivers can drop a repeat.
	// +required
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`

	// event is the transition.
	// +required
	Event NotificationEvent `json:"event"`

	// reason is the condition reason (or exception id) of the transition.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// message says what happened.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// digest the transition is about.
	// +optional
	Digest string `json:"digest,omitempty"`

	// deadline is when an approval lapses or an exception expires, when
	// the transition has one.
	// +optional
	Deadline *metav1.Time `json:"deadline,omitempty"`

	// time of the transition.
	// +required
	Time metav1.Time `json:"time"`

	// pending lists the targets not delivered to yet.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	Pending []string `json:"pending,omitempty"`

	// attempts counts the delivery rounds made.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttempt is when delivery was last attempted.
	// +optional
	LastAttempt *metav1.Time `json:"lastAttempt,omitempty"`

	// lastError says why the last delivery round failed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
}

// FixedFinding is a blocking finding that a newly approved digest fixed.
type FixedFinding struct {
	// id of the vulnerability.
	// +required
	ID string `json:"id"`
	// openFor is how long it stayed open: from its first detection in the
	// entry to the approval of the digest without it.
	// +required
	OpenFor metav1.Duration `json:"openFor"`
}

// MaxFixedFindings is the most fixed findings a DigestRecord lists.
const MaxFixedFindings = 10

// RebuildWebhook is the webhook called when the entry becomes Stale: its
// own, else the policy's; nil when neither sets one.
func RebuildWebhook(bi *BaseImage, p *ImagePolicy) *WebhookTarget {
	if bi.Spec.Rebuild != nil && bi.Spec.Rebuild.Webhook != nil {
		return bi.Spec.Rebuild.Webhook
	}
	if p != nil && p.Spec.Rebuild != nil {
		return p.Spec.Rebuild.Webhook
	}
	return nil
}

// RebuildMinInterval is the least time between two rebuild triggers of the
// entry: its own, else the policy's, else DefaultRebuildMinInterval.
func RebuildMinInterval(bi *BaseImage, p *ImagePolicy) time.Duration {
	if bi.Spec.Rebuild != nil && bi.Spec.Rebuild.MinInterval != nil {
		return bi.Spec.Rebuild.MinInterval.Duration
	}
	if p != nil && p.Spec.Rebuild != nil && p.Spec.Rebuild.MinInterval != nil {
		return p.Spec.Rebuild.MinInterval.Duration
	}
	return DefaultRebuildMinInterval
}

// ExceptionExpiryWarningOrDefault is how long before an exception expires
// the ExceptionExpiring notification fires.
func (s *ImagePolicySpec) ExceptionExpiryWarningOrDefault() time.Duration {
	if s.ExceptionExpiryWarning != nil {
		return s.ExceptionExpiryWarning.Duration
	}
	return DefaultExceptionExpiryWarning
}
