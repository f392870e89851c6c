package controllers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/rebuild"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// staleEntry pushes an image older than its policy's maxAge and returns
// its reference and digest, with the policy "p" created.
func staleEntry(t *testing.T, ns string, policy catalogv1.ImagePolicySpec) (string, string) {
	t.Helper()
	reg := registrytest.New(t)
	ref := reg.Host + "/base/debian:12"
	d := pushImage(t, ref, oldTime, "v1")
	policy.MaxAge = duration(30 * 24 * time.Hour)
	createPolicy(t, ns, "p", policy)
	return ref, d
}

func createServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	NewWithT(t).Expect(k8sClient.Create(context.Background(), sa)).To(Succeed())
}

func rebuildTemplate(restart corev1.RestartPolicy) *batchv1.JobTemplateSpec {
	return &batchv1.JobTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "platform"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: restart,
				Containers: []corev1.Container{{
					Name: "build", Image: "registry.example.com/tools/builder:1",
					Env: []corev1.EnvVar{{Name: "PLINTH_DIGEST", Value: "overridden"}, {Name: "KEEP", Value: "me"}},
				}},
			}},
		},
	}
}

// rebuildJobs lists the rebuild Jobs in a namespace, as stored.
func rebuildJobs(g Gomega, ns string) []batchv1.Job {
	var list batchv1.JobList
	g.Expect(apiReader.List(context.Background(), &list, client.InNamespace(ns), client.HasLabels{RebuildJobLabel})).To(Succeed())
	return list.Items
}

// expectRebuild waits until status.rebuild has the outcome.
func expectRebuild(t *testing.T, key client.ObjectKey, outcome string) *catalogv1.RebuildStatus {
	t.Helper()
	var rb *catalogv1.RebuildStatus
	NewWithT(t).Eventually(func(g Gomega) {
		rb = getBaseImage(g, key).Status.Rebuild
		g.Expect(rb).NotTo(BeNil())
		g.Expect(rb.Outcome).To(Equal(outcome), "rebuild: %s", rb.Message)
	}, timeout, tick).Should(Succeed())
	return rb
}

// finishJob sets a Job's status as the Job controller would when it ends.
func finishJob(t *testing.T, ns, name string, succeeded bool) {
	t.Helper()
	g := NewWithT(t)
	var job batchv1.Job
	g.Expect(apiReader.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &job)).To(Succeed())
	now := metav1.Now()
	job.Status.StartTime = &now
	if succeeded {
		job.Status.CompletionTime = &now
		job.Status.Succeeded = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
		}
	}
	g.Expect(k8sClient.Status().Update(context.Background(), &job)).To(Succeed())
}

func TestAStaleEntryGetsExactlyOneRebuildJob(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ref, d := staleEntry(t, ns, catalogv1.ImagePolicySpec{})
	createServiceAccount(t, ns, "builder")
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{JobTemplate: rebuildTemplate(corev1.RestartPolicyNever), ServiceAccountName: "builder"},
	})
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.MaxAgeExceededReason)
	rb := expectRebuild(t, key, catalogv1.RebuildJobActive)
	g.Expect(rb.Digest).To(Equal(d))
	g.Expect(rb.StaleReason).To(Equal(catalogv1.MaxAgeExceededReason))
	g.Expect(rb.Attempts).To(Equal(int32(1)))

	jobs := rebuildJobs(g, ns)
	g.Expect(jobs).To(HaveLen(1))
	job := jobs[0]
	g.Expect(job.Name).To(Equal(rb.JobName))
	g.Expect(job.Labels).To(HaveKeyWithValue("team", "platform"))
	g.Expect(job.Spec.Template.Spec.ServiceAccountName).To(Equal("builder"))
	g.Expect(job.Spec.TTLSecondsAfterFinished).NotTo(BeNil(), "finished Jobs are cleaned up")
	owner := metav1.GetControllerOf(&job)
	g.Expect(owner).NotTo(BeNil())
	g.Expect(owner.Kind).To(Equal(catalogv1.BaseImageKind))
	g.Expect(owner.Name).To(Equal("debian"))
	env := map[string]string{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		g.Expect(env).NotTo(HaveKey(e.Name), "variable %s set twice", e.Name)
		env[e.Name] = e.Value
	}
	g.Expect(env).To(HaveKeyWithValue(EnvStaleReason, catalogv1.MaxAgeExceededReason))
	g.Expect(env).To(HaveKeyWithValue(EnvDigest, d))
	g.Expect(env).To(HaveKeyWithValue(EnvImage, ref))
	g.Expect(env).To(HaveKeyWithValue(EnvBaseImage, ns+"/debian"))
	g.Expect(env).To(HaveKeyWithValue("KEEP", "me"))

	for range 10 {
		reconciled(t, key)
	}
	g.Expect(rebuildJobs(g, ns)).To(HaveLen(1), "one active rebuild at most")
	g.Expect(getBaseImage(g, key).Status.Rebuild.Attempts).To(Equal(int32(1)))
	g.Eventually(func(g Gomega) []string { return eventReasons(g, key) }, timeout, tick).
		Should(ContainElement(catalogv1.RebuildTriggeredReason))
}

func TestAFailedRebuildBacksOffAndAFreshEntryStopsTriggers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ref, d1 := staleEntry(t, ns, catalogv1.ImagePolicySpec{})
	createServiceAccount(t, ns, "builder")
	start := time.Now().UTC().Truncate(time.Second)
	setClock(t, start)
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{JobTemplate: rebuildTemplate(corev1.RestartPolicyNever), ServiceAccountName: "builder",
			MinInterval: duration(time.Minute)},
	})
	first := expectRebuild(t, key, catalogv1.RebuildJobActive)
	finishJob(t, ns, first.JobName, false)
	rb := expectRebuild(t, key, catalogv1.RebuildJobFailed)
	g.Expect(rb.Failures).To(Equal(int32(1)))
	g.Expect(rb.Message).To(ContainSubstring("backoff limit"))
	g.Expect(rb.NextAttempt).NotTo(BeNil())
	g.Expect(rb.NextAttempt.Time).To(BeTemporally("==", start.Add(2*time.Minute)), "one failure doubles minInterval")

	// Within the backoff, reconciles trigger nothing.
	setClock(t, start.Add(90*time.Second))
	for range 5 {
		reconciled(t, key)
	}
	g.Expect(rebuildJobs(g, ns)).To(HaveLen(1))

	// After it, the next trigger.
	setClock(t, start.Add(2*time.Minute+time.Second))
	reconciled(t, key)
	second := expectRebuild(t, key, catalogv1.RebuildJobActive)
	g.Expect(second.Attempts).To(Equal(int32(2)))
	g.Expect(second.JobName).NotTo(Equal(first.JobName))
	g.Expect(rebuildJobs(g, ns)).To(HaveLen(2))

	// The rebuild pushes a fresh image: once approved, the cycle ends.
	d2 := pushImage(t, ref, start.Add(-time.Hour), "v2")
	g.Expect(d2).NotTo(Equal(d1))
	finishJob(t, ns, second.JobName, true)
	reconciled(t, key)
	done := expectRebuild(t, key, catalogv1.RebuildCompleted)
	g.Expect(done.Failures).To(BeZero())
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionFalse, catalogv1.UpToDateReason)

	setClock(t, start.Add(2*time.Hour))
	for range 3 {
		reconciled(t, key)
	}
	g.Expect(rebuildJobs(g, ns)).To(HaveLen(2), "a fresh entry triggers nothing")
}

func TestRebuildsThatCannotStartSayWhyAndBackOff(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ref, _ := staleEntry(t, ns, catalogv1.ImagePolicySpec{})

	// A ServiceAccount that does not exist.
	noSA := createBaseImage(t, ns, "no-sa", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{JobTemplate: rebuildTemplate(corev1.RestartPolicyNever), ServiceAccountName: "builder"},
	})
	rb := expectRebuild(t, noSA, catalogv1.RebuildServiceAccountNotFound)
	g.Expect(rb.Message).To(ContainSubstring(`ServiceAccount "builder"`))

	// A template the API server refuses: a Job's pods cannot restart
	// Always.
	createServiceAccount(t, ns, "builder2")
	refused := createBaseImage(t, ns, "refused", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{JobTemplate: rebuildTemplate(corev1.RestartPolicyAlways), ServiceAccountName: "builder2"},
	})
	rb = expectRebuild(t, refused, catalogv1.RebuildJobRefused)
	g.Expect(rb.Message).To(ContainSubstring("restartPolicy"))

	for range 5 {
		reconciled(t, noSA)
		reconciled(t, refused)
	}
	g.Expect(rebuildJobs(g, ns)).To(BeEmpty())
	for _, key := range []client.ObjectKey{noSA, refused} {
		rb := getBaseImage(g, key).Status.Rebuild
		g.Expect(rb.Attempts).To(Equal(int32(1)), "%s: no retry before the backoff", key.Name)
		g.Expect(rb.Failures).To(Equal(int32(1)))
		g.Expect(rb.NextAttempt.Time).To(BeTemporally(">", time.Now().Add(time.Hour)))
	}
	g.Expect(eventReasons(g, noSA)).To(ContainElement(catalogv1.RebuildFailedReason))
	// The verdict itself is untouched.
	expectCondition(t, refused, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)

	// A template that needs a ServiceAccount is refused at once.
	bad := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{JobTemplate: rebuildTemplate(corev1.RestartPolicyNever)},
	}}
	err := k8sClient.Create(context.Background(), bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("serviceAccountName"))
}

// delivery is one request a receiver got.
type delivery struct {
	header  http.Header
	body    []byte
	payload rebuild.Payload
	valid   bool
}

// receiver is a webhook endpoint on loopback that checks signatures.
type receiver struct {
	*httptest.Server
	key []byte

	mu         sync.Mutex
	deliveries []delivery
	status     int
}

func newReceiver(t *testing.T, key string) *receiver {
	r := &receiver{key: []byte(key), status: http.StatusAccepted}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{header: req.Header.Clone(), body: body,
			valid: rebuild.Verify(r.key, body, req.Header.Get(rebuild.SignatureHeader))}
		_ = json.Unmarshal(body, &d.payload)
		r.mu.Lock()
		r.deliveries = append(r.deliveries, d)
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func (r *receiver) got() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

func hmacSecret(t *testing.T, ns, name, key string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"hmacKey": []byte(key)}}
	NewWithT(t).Expect(k8sClient.Create(context.Background(), s)).To(Succeed())
}

func TestTheRebuildWebhookGetsOneSignedDeliveryPerTrigger(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ref, d := staleEntry(t, ns, catalogv1.ImagePolicySpec{})
	recv := newReceiver(t, "k3y")
	hmacSecret(t, ns, "hook", "k3y")
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{
		Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
		Rebuild: &catalogv1.RebuildSpec{Webhook: &catalogv1.WebhookTarget{URL: recv.URL + "/hooks/rebuild", SecretRef: catalogv1.LocalObjectReference{Name: "hook"}}},
	})
	rb := expectRebuild(t, key, catalogv1.RebuildWebhookDelivered)
	g.Expect(rb.WebhookResponseCode).To(Equal(int32(http.StatusAccepted)))
	got := recv.got()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].valid).To(BeTrue(), "HMAC of the body with the Secret's key")
	g.Expect(rebuild.Verify([]byte("other"), got[0].body, got[0].header.Get(rebuild.SignatureHeader))).To(BeFalse())
	p := got[0].payload
	g.Expect(p.Event).To(Equal(rebuild.EventStale))
	g.Expect(p.Reason).To(Equal(catalogv1.MaxAgeExceededReason))
	g.Expect(p.Image).To(Equal(ref))
	g.Expect(p.Digest).To(Equal(d))
	g.Expect(p.Policy).To(Equal("p"))
	g.Expect(p.Namespace).To(Equal(ns))
	g.Expect(p.ID).NotTo(BeEmpty())
	g.Expect(got[0].header.Get(rebuild.DeliveryHeader)).To(Equal(p.ID))

	for range 10 {
		reconciled(t, key)
	}
	g.Expect(recv.got()).To(HaveLen(1), "minInterval separates triggers")
}

func TestRebuildWebhookFailuresAreRecordedAndBackOff(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ref, _ := staleEntry(t, ns, catalogv1.ImagePolicySpec{})
	hmacSecret(t, ns, "hook", "k3y")
	spec := func(url, secret string) catalogv1.BaseImageSpec {
		return catalogv1.BaseImageSpec{
			Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"},
			Rebuild: &catalogv1.RebuildSpec{Webhook: &catalogv1.WebhookTarget{URL: url, SecretRef: catalogv1.LocalObjectReference{Name: secret}}},
		}
	}

	// A receiver that answers 500 is retried, then backed off.
	failing := newReceiver(t, "k3y")
	failing.answer(http.StatusInternalServerError)
	k500 := createBaseImage(t, ns, "answers-500", spec(failing.URL, "hook"))
	rb := expectRebuild(t, k500, catalogv1.RebuildWebhookFailed)
	g.Expect(rb.WebhookResponseCode).To(Equal(int32(http.StatusInternalServerError)))
	g.Expect(rb.Failures).To(Equal(int32(1)))
	tries := len(failing.got())
	g.Expect(tries).To(Equal(2), "retried within the delivery")

	// A missing HMAC Secret sends nothing.
	quiet := newReceiver(t, "k3y")
	kNoSecret := createBaseImage(t, ns, "no-secret", spec(quiet.URL, "missing"))
	rb = expectRebuild(t, kNoSecret, catalogv1.RebuildWebhookSecretInvalid)
	g.Expect(rb.Message).To(ContainSubstring(`"missing"`))

	// A redirect to another host is not followed with the signature.
	other := newReceiver(t, "k3y")
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, other.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	kRedirect := createBaseImage(t, ns, "redirected", spec(redirector.URL, "hook"))
	rb = expectRebuild(t, kRedirect, catalogv1.RebuildWebhookFailed)
	g.Expect(rb.Message).To(ContainSubstring("not followed"))

	for range 5 {
		reconciled(t, k500)
		reconciled(t, kNoSecret)
		reconciled(t, kRedirect)
	}
	g.Expect(failing.got()).To(HaveLen(tries), "no hot loop on a failing receiver")
	g.Expect(quiet.got()).To(BeEmpty())
	g.Expect(other.got()).To(BeEmpty(), "the other host never saw the request")
}
