package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/rebuild"
)

// WebhookSender delivers signed webhooks; *rebuild.Sender is one.
type WebhookSender interface {
	Deliver(ctx context.Context, t rebuild.Target, p rebuild.Payload) rebuild.Result
}

// RebuildJobLabel marks the Jobs plinth creates, so that the operator
// caches only those.
const RebuildJobLabel = "catalog.plinth.dev/rebuild"

// Variables given to every container of a rebuild Job.
const (
	EnvStaleReason    = "PLINTH_STALE_REASON"
	EnvImage          = "PLINTH_IMAGE"
	EnvDigest         = "PLINTH_DIGEST"
	EnvUpstreamDigest = "PLINTH_UPSTREAM_DIGEST"
	EnvApprovedDigest = "PLINTH_APPROVED_DIGEST"
	EnvBlockingCVEs   = "PLINTH_BLOCKING_CVES"
	EnvBaseImage      = "PLINTH_BASEIMAGE"
)

// Secret keys of a webhook's secretRef.
const (
	webhookKeyField   = "hmacKey"
	webhookTokenField = "token"
)

// defaultRebuildJobTTL cleans up finished rebuild Jobs whose template does
// not say when.
const defaultRebuildJobTTL = int32(24 * 60 * 60)

// maxRebuildBackoff caps the wait after failed triggers, unless minInterval
// is longer.
const maxRebuildBackoff = 24 * time.Hour

// triggerRebuild is the step after signing: when the entry is Stale and a
// rebuild is due, it creates the rebuild Job and calls the rebuild webhook.
// There is never more than one active Job per entry, triggers are at least
// minInterval apart, and failures back off exponentially from it. An entry
// whose stale digest was replaced by an approved, fresh one ends the cycle.
func (r *BaseImageReconciler) triggerRebuild(ctx context.Context, s *scope) {
	bi := s.bi
	st := &bi.Status
	hook := catalogv1.RebuildWebhook(bi, s.policy)
	var tmpl *batchv1.JobTemplateSpec
	if bi.Spec.Rebuild != nil {
		tmpl = bi.Spec.Rebuild.JobTemplate
	}
	if tmpl == nil && hook == nil {
		return
	}
	minInterval := catalogv1.RebuildMinInterval(bi, s.policy)

	if rb := st.Rebuild; rb != nil && rb.Outcome == catalogv1.RebuildJobActive {
		if err := r.followRebuildJob(ctx, s, rb, minInterval); err != nil {
			s.retryErr = err
			return
		}
	}
	stale := apimeta.IsStatusConditionTrue(st.Conditions, catalogv1.StaleCondition)
	rb := st.Rebuild
	if !stale {
		if rb != nil && rb.Outcome != catalogv1.RebuildCompleted && rb.Outcome != catalogv1.RebuildJobActive &&
			rb.Digest != s.digest && st.ApprovedDigest == s.digest {
			rb.Outcome, rb.Failures, rb.NextAttempt = catalogv1.RebuildCompleted, 0, nil
			rb.Message = fmt.Sprintf("Digest %s is approved and fresh", s.digest)
		}
		return
	}
	if rb != nil && rb.Outcome == catalogv1.RebuildJobActive {
		// Never more than one active rebuild.
		return
	}
	if rb != nil && rb.Outcome != catalogv1.RebuildWebhookPending && rb.NextAttempt != nil && s.now.Before(rb.NextAttempt.Time) {
		s.wake(rb.NextAttempt.Time)
		return
	}
	r.startRebuild(ctx, s, tmpl, hook, minInterval)
}

// followRebuildJob records the outcome of the active rebuild Job.
func (r *BaseImageReconciler) followRebuildJob(ctx context.Context, s *scope, rb *catalogv1.RebuildStatus, minInterval time.Duration) error {
	var job batchv1.Job
	err := r.Get(ctx, types.NamespacedName{Namespace: s.bi.Namespace, Name: rb.JobName}, &job)
	switch {
	case apierrors.IsNotFound(err):
		r.rebuildFailed(s, rb, minInterval, catalogv1.RebuildJobFailed,
			fmt.Sprintf("Job %s was deleted before it finished", rb.JobName), metrics.RebuildFailed)
	case err != nil:
		return err
	case jobFinished(&job, batchv1.JobComplete):
		rb.Outcome, rb.Failures = catalogv1.RebuildJobSucceeded, 0
		rb.Message = fmt.Sprintf("Job %s succeeded", rb.JobName)
		rb.NextAttempt = &metav1.Time{Time: s.now.Add(minInterval)}
		r.Metrics.ObserveRebuild(metrics.RebuildSucceeded)
		r.event(s.bi, corev1.EventTypeNormal, catalogv1.RebuildSucceededReason, "Rebuild", rb.Message)
	case jobFinished(&job, batchv1.JobFailed):
		msg := fmt.Sprintf("Job %s failed", rb.JobName)
		if c := jobCondition(&job, batchv1.JobFailed); c != nil && c.Message != "" {
			msg += ": " + c.Message
		}
		r.rebuildFailed(s, rb, minInterval, catalogv1.RebuildJobFailed, msg, metrics.RebuildFailed)
	}
	return nil
}

// rebuildFailed records a failed trigger and backs off the next one.
func (r *BaseImageReconciler) rebuildFailed(s *scope, rb *catalogv1.RebuildStatus, minInterval time.Duration, outcome, msg, metric string) {
	rb.Outcome, rb.Message = outcome, truncateMessage(msg)
	rb.Failures++
	rb.NextAttempt = &metav1.Time{Time: s.now.Add(rebuildBackoff(minInterval, rb.Failures))}
	r.Metrics.ObserveRebuild(metric)
	r.event(s.bi, corev1.EventTypeWarning, catalogv1.RebuildFailedReason, "Rebuild", rb.Message)
}

// rebuildBackoff is the wait after failures consecutive failed triggers:
// minInterval doubled for each, at most a day (or minInterval when longer).
func rebuildBackoff(minInterval time.Duration, failures int32) time.Duration {
	return backoffFor(minInterval, max(maxRebuildBackoff, minInterval), failures+1)
}

// startRebuild triggers one rebuild of the stale resolved digest.
func (r *BaseImageReconciler) startRebuild(ctx context.Context, s *scope, tmpl *batchv1.JobTemplateSpec, hook *catalogv1.WebhookTarget, minInterval time.Duration) {
	bi := s.bi
	st := &bi.Status
	stale := apimeta.FindStatusCondition(st.Conditions, catalogv1.StaleCondition)
	rb := &catalogv1.RebuildStatus{Digest: s.digest, StaleReason: stale.Reason, LastTriggered: metav1.Time{Time: s.now}, Attempts: 1}
	if prev := st.Rebuild; prev != nil && prev.Outcome != catalogv1.RebuildCompleted {
		rb.Failures = prev.Failures
		switch {
		case prev.Digest == s.digest && prev.Outcome == catalogv1.RebuildWebhookPending:
			// A delivery cut short: the same trigger again.
			rb.Attempts, rb.LastTriggered = prev.Attempts, prev.LastTriggered
		case prev.Digest == s.digest:
			rb.Attempts = prev.Attempts + 1
		}
	}
	// The same trigger gets the same Job name and delivery id, so that a
	// reconcile retried after a refused status patch creates no second Job
	// and receivers can drop the repeated delivery.
	id := triggerID(string(bi.UID), s.digest, fmt.Sprint(rb.Attempts))
	cves := blockingCVEs(st)
	r.Metrics.ObserveRebuild(metrics.RebuildTriggered)

	var failure, failureOutcome, metric string
	var parts []string
	if tmpl != nil {
		name, outcome, err := r.createRebuildJob(ctx, s, tmpl, rb, id, cves)
		switch {
		case err != nil && outcome == "":
			// The API server could not be reached: try again with backoff,
			// without counting a trigger.
			s.retryErr = err
			return
		case err != nil:
			failure, failureOutcome, metric = err.Error(), outcome, metrics.RebuildRefused
			if outcome == catalogv1.RebuildServiceAccountNotFound {
				metric = metrics.RebuildFailed
			}
		default:
			rb.JobName = name
			parts = append(parts, "created Job "+name)
		}
	}
	if hook != nil {
		// Recorded before it is sent: a reconcile that cannot write status
		// sends nothing, so a retried reconcile does not deliver twice.
		st.Rebuild = rb.DeepCopy()
		st.Rebuild.Outcome = catalogv1.RebuildWebhookPending
		st.Rebuild.Message = "Delivering the rebuild webhook for " + s.digest
		if err := s.persist(ctx); err != nil {
			s.retryErr = err
			return
		}
		p := rebuild.Payload{
			ID: id, Event: rebuild.EventStale, Reason: rb.StaleReason, Message: stale.Message,
			Namespace: bi.Namespace, Name: bi.Name, Image: string(bi.Spec.Image), Digest: s.digest,
			ApprovedDigest: st.ApprovedDigest, UpstreamDigest: st.UpstreamDigest, Policy: s.policy.Name,
			BlockingCVEs: cves, Time: rb.LastTriggered.Time,
		}
		if st.Approved != nil && st.Approved.Deadline != nil {
			p.Deadline = ptr.To(st.Approved.Deadline.Time)
		}
		code, outcome, err := r.deliver(ctx, bi.Namespace, hook, p, metrics.DeliveryRebuild)
		rb.WebhookResponseCode = int32(code)
		if err != nil {
			if failure == "" {
				failure, failureOutcome, metric = err.Error(), outcome, metrics.RebuildFailed
			} else {
				failure += "; " + err.Error()
			}
		} else {
			parts = append(parts, fmt.Sprintf("webhook answered %d", code))
		}
	}
	st.Rebuild = rb
	if failure != "" {
		if len(parts) > 0 {
			failure = strings.Join(parts, ", ") + "; " + failure
		}
		r.rebuildFailed(s, rb, minInterval, failureOutcome, "Rebuild of "+s.digest+" ("+rb.StaleReason+"): "+failure, metric)
		return
	}
	rb.Outcome = catalogv1.RebuildWebhookDelivered
	if rb.JobName != "" {
		rb.Outcome = catalogv1.RebuildJobActive
	}
	rb.Message = truncateMessage("Rebuild of " + s.digest + " (" + rb.StaleReason + "): " + strings.Join(parts, ", "))
	rb.NextAttempt = &metav1.Time{Time: s.now.Add(minInterval)}
	if rb.Outcome == catalogv1.RebuildWebhookDelivered {
		s.wake(rb.NextAttempt.Time)
	}
	r.event(bi, corev1.EventTypeNormal, catalogv1.RebuildTriggeredReason, "Rebuild", rb.Message)
}

// createRebuildJob creates the Job of one trigger from the template. A
// failure someone must fix comes with its outcome; a transient one with
// none.
func (r *BaseImageReconciler) createRebuildJob(ctx context.Context, s *scope, tmpl *batchv1.JobTemplateSpec, rb *catalogv1.RebuildStatus, id string, cves []string) (string, string, error) {
	bi := s.bi
	sa := bi.Spec.Rebuild.ServiceAccountName
	var account corev1.ServiceAccount
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: bi.Namespace, Name: sa}, &account)
	if apierrors.IsNotFound(err) {
		return "", catalogv1.RebuildServiceAccountNotFound, fmt.Errorf("ServiceAccount %q of the rebuild Job not found", sa)
	}
	if err != nil {
		return "", "", err
	}

	job := &batchv1.Job{
		ObjectMeta: *tmpl.ObjectMeta.DeepCopy(),
		Spec:       *tmpl.Spec.DeepCopy(),
	}
	job.Name = rebuildJobName(bi.Name, id)
	job.GenerateName = ""
	job.Namespace = bi.Namespace
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	job.Labels[RebuildJobLabel] = "true"
	if job.Spec.TTLSecondsAfterFinished == nil {
		job.Spec.TTLSecondsAfterFinished = ptr.To(defaultRebuildJobTTL)
	}
	pod := &job.Spec.Template.Spec
	pod.ServiceAccountName = sa
	env := []corev1.EnvVar{
		{Name: EnvStaleReason, Value: rb.StaleReason},
		{Name: EnvImage, Value: string(bi.Spec.Image)},
		{Name: EnvDigest, Value: s.digest},
		{Name: EnvUpstreamDigest, Value: bi.Status.UpstreamDigest},
		{Name: EnvApprovedDigest, Value: bi.Status.ApprovedDigest},
		{Name: EnvBlockingCVEs, Value: strings.Join(cves, ",")},
		{Name: EnvBaseImage, Value: bi.Namespace + "/" + bi.Name},
	}
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range cs {
			cs[i].Env = withEnv(cs[i].Env, env)
		}
	}
	if err := controllerutil.SetControllerReference(bi, job, r.Scheme()); err != nil {
		return "", "", err
	}
	err = r.Create(ctx, job)
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return job.Name, "", nil
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err):
		return "", catalogv1.RebuildJobRefused, fmt.Errorf("the API server refused the rebuild Job: %w", err)
	default:
		return "", "", err
	}
}

// withEnv sets vars in env, replacing variables of the same name.
func withEnv(env, vars []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+len(vars))
	for _, e := range env {
		replaced := false
		for _, v := range vars {
			replaced = replaced || v.Name == e.Name
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return append(out, vars...)
}

// rebuildJobName is a Job name unique to one trigger of the entry.
func rebuildJobName(entry, id string) string {
	const suffix = "-rebuild-"
	prefix := entry
	if n := 63 - len(suffix) - 10; len(prefix) > n {
		prefix = strings.TrimRight(prefix[:n], "-.")
	}
	return prefix + suffix + id[:10]
}

// triggerID is a stable id of one trigger or transition.
func triggerID(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// blockingCVEs are the ids of the blocking findings listed in status, at
// most MaxTopFindings.
func blockingCVEs(st *catalogv1.BaseImageStatus) []string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range st.TopFindings {
		if f.Blocking && !seen[f.ID] {
			seen[f.ID] = true
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// jobFinished tells whether a Job carries the terminal condition typ.
func jobFinished(job *batchv1.Job, typ batchv1.JobConditionType) bool {
	c := jobCondition(job, typ)
	return c != nil && c.Status == corev1.ConditionTrue
}

func jobCondition(job *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == typ {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// deliver reads a webhook's Secret and delivers p to it. It returns the
// response code, and on failure the outcome to record and why.
func (r *BaseImageReconciler) deliver(ctx context.Context, namespace string, hook *catalogv1.WebhookTarget, p rebuild.Payload, kind string) (int, string, error) {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: hook.SecretRef.Name}, &secret)
	switch {
	case apierrors.IsNotFound(err):
		return 0, catalogv1.RebuildWebhookSecretInvalid, fmt.Errorf("webhook Secret %q not found", hook.SecretRef.Name)
	case err != nil:
		return 0, catalogv1.RebuildWebhookFailed, fmt.Errorf("reading webhook Secret %q: %w", hook.SecretRef.Name, err)
	case len(secret.Data[webhookKeyField]) == 0:
		return 0, catalogv1.RebuildWebhookSecretInvalid, fmt.Errorf("webhook Secret %q has no %s", hook.SecretRef.Name, webhookKeyField)
	}
	if r.Webhooks == nil {
		return 0, catalogv1.RebuildWebhookFailed, errors.New("plinth runs without webhook deliveries")
	}
	format := rebuild.FormatGeneric
	if hook.Format == catalogv1.WebhookRepositoryDispatch {
		format = rebuild.FormatRepositoryDispatch
	}
	res := r.Webhooks.Deliver(ctx, rebuild.Target{
		URL: hook.URL, Format: format, Key: secret.Data[webhookKeyField], Token: string(secret.Data[webhookTokenField]),
	}, p)
	if res.Err != nil {
		r.Metrics.ObserveDelivery(kind, metrics.DeliveryFailed)
		// The error names the host, never the path or query, which may
		// carry credentials.
		return res.StatusCode, catalogv1.RebuildWebhookFailed, res.Err
	}
	r.Metrics.ObserveDelivery(kind, metrics.DeliverySucceeded)
	return res.StatusCode, "", nil
}

// truncateMessage keeps a status message within its 1024-byte limit.
func truncateMessage(s string) string {
	if len(s) <= 1024 {
		return s
	}
	cut := 1021
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
