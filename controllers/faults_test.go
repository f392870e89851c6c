package controllers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	registrytest "github.com/plinth-dev/plinth/test/registry"
)

// statusFaults refuses the status writes of the suite's BaseImage
// reconciler in the namespaces a test arms, with the errors it names, in
// order; it counts every status write it sees per namespace.
var statusFaults = &faultPlan{errs: map[string][]error{}, writes: map[string]int{}}

type faultPlan struct {
	mu     sync.Mutex
	errs   map[string][]error
	writes map[string]int
}

// client wraps c so that its status writes go through the plan.
func (f *faultPlan) client(c client.Client) client.Client {
	return interceptor.NewClient(withoutWatch{c}, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if err := f.next(sub, obj); err != nil {
				return err
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if err := f.next(sub, obj); err != nil {
				return err
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
}

// withoutWatch lets the interceptor wrap the manager's client, which has
// no Watch method; the reconciler never watches through its client.
type withoutWatch struct{ client.Client }

func (withoutWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watching through the reconciler's client is not supported")
}

func (f *faultPlan) next(sub string, obj client.Object) error {
	if sub != "status" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := obj.GetNamespace()
	f.writes[ns]++
	errs := f.errs[ns]
	if len(errs) == 0 {
		return nil
	}
	f.errs[ns] = errs[1:]
	return errs[0]
}

// arm makes the next status writes in ns fail with errs, one each.
func (f *faultPlan) arm(ns string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[ns] = append(f.errs[ns], errs...)
}

// pending is how many armed faults have not been used yet.
func (f *faultPlan) pending(ns string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.errs[ns])
}

// statusWrites is how many status writes were tried in ns, refused ones
// included.
func (f *faultPlan) statusWrites(ns string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes[ns]
}

var baseImagesResource = schema.GroupResource{Group: catalogv1.GroupVersion.Group, Resource: "baseimages"}

func conflictErr(name string) error {
	return apierrors.NewConflict(baseImagesResource, name, errFault)
}

func serverErr() error { return apierrors.NewInternalError(errFault) }

var errFault = faultError("injected by the test")

type faultError string

func (e faultError) Error() string { return string(e) }

// Conflicts and server errors on status writes delay the verdict but do
// not change it: the entry ends Ready with the verdict it would have had,
// after a bounded number of reconciles, and every transition is told once,
// as one event and one notification (redelivered, if at all, under the
// same id).
func TestStatusWriteConflictsAndServerErrorsConverge(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := registrytest.New(t)
	ref := reg.Host + "/base/debian:12"
	created := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	d := pushImage(t, ref, created, "faults")
	recv := newReceiver(t, "f4ults")
	hmacSecret(t, ns, "hook", "f4ults")
	createPolicy(t, ns, "p", catalogv1.ImagePolicySpec{
		MaxAge: duration(30 * 24 * time.Hour),
		Notifications: []catalogv1.NotificationTarget{{
			Name:    "security",
			Webhook: catalogv1.WebhookTarget{URL: recv.URL, SecretRef: catalogv1.LocalObjectReference{Name: "hook"}},
		}},
	})

	// The first verdict: its first four status writes are refused.
	faults := []error{conflictErr("debian"), serverErr(), conflictErr("debian"), serverErr()}
	statusFaults.arm(ns, faults...)
	key := createBaseImage(t, ns, "debian", catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(ref), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}})
	expectCondition(t, key, catalogv1.ReadyCondition, metav1.ConditionTrue, catalogv1.SucceededReason)
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	bi := getBaseImage(g, key)
	g.Expect(bi.Status.ResolvedDigest).To(Equal(d))
	g.Expect(bi.Status.ApprovedDigest).To(Equal(d))
	g.Expect(statusFaults.pending(ns)).To(BeZero(), "every armed fault was met")
	// Settled: no reconcile loops on the refusals.
	g.Consistently(func() int { return statusFaults.statusWrites(ns) }, 2*time.Second, tick).
		Should(BeNumerically("<=", len(faults)+2), "status writes for one verdict")
	g.Expect(eventReasons(g, key)).To(ConsistOf(catalogv1.NewDigestReason, catalogv1.PolicyPassedReason))
	g.Expect(recv.got()).To(BeEmpty(), "a first approval is no transition to tell")

	// A transition under faults: the image outgrows maxAge.
	writes := statusFaults.statusWrites(ns)
	faults = []error{serverErr(), conflictErr("debian"), serverErr()}
	statusFaults.arm(ns, faults...)
	setClock(t, created.Add(31*24*time.Hour))
	requestReconcile(t, key)
	expectCondition(t, key, catalogv1.StaleCondition, metav1.ConditionTrue, catalogv1.MaxAgeExceededReason)
	expectCondition(t, key, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	g.Eventually(func(g Gomega) {
		bi := getBaseImage(g, key)
		g.Expect(bi.Status.Notifications).To(HaveLen(1))
		g.Expect(bi.Status.Notifications[0].Pending).To(BeEmpty(), "delivered")
	}, timeout, tick).Should(Succeed())
	g.Expect(statusFaults.pending(ns)).To(BeZero(), "every armed fault was met")
	g.Consistently(func() int { return statusFaults.statusWrites(ns) - writes }, 2*time.Second, tick).
		Should(BeNumerically("<=", len(faults)+2), "status writes for one transition")

	ids := map[string]bool{}
	for _, dl := range recv.got() {
		g.Expect(dl.valid).To(BeTrue())
		g.Expect(dl.payload.Event).To(Equal(string(catalogv1.NotificationStale)))
		ids[dl.payload.ID] = true
	}
	g.Expect(ids).To(HaveLen(1), "one transition, one notification id")
	g.Expect(ids).To(HaveKey(getBaseImage(g, key).Status.Notifications[0].ID))
	g.Expect(eventReasons(g, key)).To(ConsistOf(catalogv1.NewDigestReason, catalogv1.PolicyPassedReason, catalogv1.MaxAgeExceededReason))
}
