package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/plinth-dev/plinth/internal/catalog"
)

// The webhook reads the mode label of namespaces.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Path is where the manager's webhook server serves the validating
// webhook; config/webhook points the ValidatingWebhookConfiguration at it.
const Path = "/validate-workloads"

// Defaults applied to zero Validator fields.
const (
	DefaultMatchTimeout = 3 * time.Second
	DefaultConcurrency  = 8
)

// AlwaysExcluded are namespaces whose requests are always admitted
// unchecked, whatever their labels: the cluster's own components must
// start even when plinth is down or the catalog is empty.
var AlwaysExcluded = []string{metav1.NamespaceSystem}

// ImageMatcher classifies an image against the catalog;
// *catalog.Matcher is one.
type ImageMatcher interface {
	MatchReference(ctx context.Context, ref name.Reference, digest string) (catalog.Result, error)
}

// Validator is the admission handler for Pods and pod templates.
type Validator struct {
	// Matcher classifies images. Required.
	Matcher ImageMatcher
	// Namespaces reads namespace metadata, usually from the manager's
	// cache. Required.
	Namespaces client.Reader
	// APIReader reads a namespace the cache does not hold yet (one created
	// a moment ago). Optional.
	APIReader client.Reader
	// Recorder records the Events of audit mode. Optional.
	Recorder events.EventRecorder
	// Metrics counts decisions. Optional.
	Metrics *Metrics
	// ExcludedNamespaces are admitted unchecked, in addition to
	// AlwaysExcluded; plinth's own namespace belongs here.
	ExcludedNamespaces []string
	// MatchTimeout bounds the time spent classifying a request's images;
	// keep it below the webhook's timeoutSeconds. Default
	// DefaultMatchTimeout.
	MatchTimeout time.Duration
	// Unknown is what enforce mode does with images that cannot be
	// classified in time. Default AllowUnknown.
	Unknown UnknownPolicy
	// Concurrency bounds the images of one request classified at once.
	// Default DefaultConcurrency.
	Concurrency int
}

var _ admission.Handler = &Validator{}

// SetupWithManager serves the validator on the manager's webhook server
// and has the manager's cache watch the metadata of namespaces, whose
// labels choose the mode.
func (v *Validator) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if v.Matcher == nil {
		return errors.New("the admission webhook needs a catalog matcher")
	}
	if v.Namespaces == nil {
		v.Namespaces = mgr.GetClient()
	}
	if v.APIReader == nil {
		v.APIReader = mgr.GetAPIReader()
	}
	if _, err := mgr.GetCache().GetInformer(ctx, namespaceMeta()); err != nil {
		return fmt.Errorf("watching namespaces: %w", err)
	}
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: v})
	return nil
}

func namespaceMeta() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return m
}

// Handle checks the images of one admission request.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	if req.UID == "" || req.Kind.Kind == "" || req.Operation == "" {
		return admission.Errored(http.StatusBadRequest, errors.New("malformed AdmissionReview: the request has no uid, kind or operation"))
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	if !supported(gk) || (req.SubResource != "" && !(gk.Kind == "Pod" && req.SubResource == "ephemeralcontainers")) {
		return admission.Allowed("not a pod spec plinth checks")
	}
	if req.Namespace == "" || v.excluded(req.Namespace) {
		return admission.Allowed("namespace excluded from admission control")
	}
	mode, err := v.mode(ctx, req.Namespace)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Reading the namespace's admission mode failed", "namespace", req.Namespace)
		return admission.Allowed("").WithWarnings("plinth: the admission mode of namespace " + req.Namespace + " could not be read; the images were not checked")
	}
	if mode == "" {
		return admission.Allowed("namespace not enrolled in admission control")
	}

	obj, err := decodeWorkload(gk, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var seen map[string]bool
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old, err := decodeWorkload(gk, req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("old object: %w", err))
		}
		// Only images the change brings are checked: scaling or
		// relabelling a workload admitted before is never refused.
		seen = make(map[string]bool, len(old.Containers))
		for _, c := range old.Containers {
			seen[c.Image] = true
		}
	}
	images := group(obj.Containers, seen)
	if len(images) == 0 {
		return admission.Allowed("no new image to check")
	}
	verdicts := v.match(ctx, images)
	d := decide(mode, v.unknownPolicy(), verdicts)
	v.Metrics.observe(mode, d, time.Since(start))
	if mode == Audit && len(d.Findings) > 0 && !ptrTrue(req.DryRun) {
		v.record(req, obj, d)
	}
	if !d.Allowed {
		return admission.Denied(d.Message)
	}
	return admission.Allowed("").WithWarnings(d.Warnings...)
}

func ptrTrue(b *bool) bool { return b != nil && *b }

func (v *Validator) excluded(ns string) bool {
	return slices.Contains(AlwaysExcluded, ns) || slices.Contains(v.ExcludedNamespaces, ns)
}

func (v *Validator) unknownPolicy() UnknownPolicy {
	if v.Unknown == "" {
		return AllowUnknown
	}
	return v.Unknown
}

// mode returns the namespace's mode, or "" when it is not enrolled.
func (v *Validator) mode(ctx context.Context, ns string) (Mode, error) {
	m := namespaceMeta()
	err := v.Namespaces.Get(ctx, client.ObjectKey{Name: ns}, m)
	if apierrors.IsNotFound(err) && v.APIReader != nil {
		err = v.APIReader.Get(ctx, client.ObjectKey{Name: ns}, m)
	}
	if err != nil {
		return "", err
	}
	mode, _ := ParseMode(m.Labels[ModeLabel])
	return mode, nil
}

// group lists the distinct images of cs, with the fields that use each, in
// spec order, leaving out those in skip.
func group(cs []container, skip map[string]bool) []verdict {
	var out []verdict
	at := map[string]int{}
	for _, c := range cs {
		if skip[c.Image] {
			continue
		}
		if i, ok := at[c.Image]; ok {
			out[i].Paths = append(out[i].Paths, c.Path)
			continue
		}
		at[c.Image] = len(out)
		out = append(out, verdict{Image: c.Image, Paths: []string{c.Path}})
	}
	return out
}

// match classifies each distinct image, a few at a time, within the match
// timeout. An image not classified by then is Unknown: the answer never
// waits for a slow registry past the deadline.
func (v *Validator) match(ctx context.Context, vs []verdict) []verdict {
	if len(vs) == 0 {
		return vs
	}
	timeout := v.MatchTimeout
	if timeout <= 0 {
		timeout = DefaultMatchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conc := v.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}

	var (
		mu       sync.Mutex
		finished = make([]bool, len(vs))
		results  = make([]verdict, len(vs))
		wg       sync.WaitGroup
	)
	copy(results, vs)
	sem := make(chan struct{}, conc)
	allDone := make(chan struct{})
	go func() {
		defer close(allDone)
		for i := range vs {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := v.matchOne(ctx, vs[i])
				mu.Lock()
				results[i], finished[i] = r, true
				mu.Unlock()
			}()
		}
		wg.Wait()
	}()
	select {
	case <-allDone:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]verdict, len(vs))
	for i := range vs {
		if finished[i] {
			out[i] = results[i]
			continue
		}
		out[i] = vs[i]
		out[i].Result = catalog.Result{Image: vs[i].Image, Class: catalog.Unknown, Reason: "not classified before the deadline"}
	}
	return out
}

// matchOne classifies one image; a panic in the matcher gives Unknown
// rather than a crashed webhook.
func (v *Validator) matchOne(ctx context.Context, in verdict) (out verdict) {
	out = in
	defer func() {
		if r := recover(); r != nil {
			ctrl.LoggerFrom(ctx).Error(fmt.Errorf("%v", r), "Matching an image panicked", "image", in.Image)
			out.Result = catalog.Result{Image: in.Image, Class: catalog.Unknown, Reason: "internal error"}
		}
	}()
	ref, err := catalog.ParseImage(in.Image)
	if err != nil {
		out.Invalid = err
		return out
	}
	res, err := v.Matcher.MatchReference(ctx, ref, "")
	if err != nil {
		out.Invalid = err
		return out
	}
	if res.Class == catalog.Unknown && res.Err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Image could not be classified", "image", in.Image, "reason", res.Reason)
	}
	out.Result = res
	return out
}

// record raises an Event for an audited request: on the workload when it
// exists already (an update), else on its namespace.
func (v *Validator) record(req admission.Request, obj workload, d decision) {
	if v.Recorder == nil {
		return
	}
	var regarding runtime.Object = &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: req.Namespace},
	}
	if req.Operation == admissionv1.Update && obj.Meta.UID != "" {
		regarding = &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{APIVersion: schema.GroupVersion{Group: req.Kind.Group, Version: req.Kind.Version}.String(), Kind: req.Kind.Kind},
			ObjectMeta: metav1.ObjectMeta{Name: obj.Meta.Name, Namespace: req.Namespace, UID: obj.Meta.UID},
		}
	}
	objName := obj.Meta.Name
	if objName == "" {
		objName = obj.Meta.GenerateName + "*"
	}
	note := describe(d.Findings[0], false)
	if n := len(d.Findings) - 1; n > 0 {
		note += fmt.Sprintf(" (and %d more images)", n)
	}
	note = fmt.Sprintf("%s %s: %s", req.Kind.Kind, objName, note)
	v.Recorder.Eventf(regarding, nil, corev1.EventTypeWarning, eventReason(d.Class), "Admitted", "%s", truncate(note, maxEventNote))
}

// maxEventNote keeps an Event's note below the API's limit of 1 KiB.
const maxEventNote = 1000

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// eventReason names the worst class in an Event's reason.
func eventReason(class string) string {
	switch class {
	case classUnapproved:
		return "UnapprovedBase"
	case classSuperseded:
		return "SupersededBase"
	}
	return "UnknownBase"
}
