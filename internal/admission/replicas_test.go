package admission_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/admission"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/test/testenv"
)

// Every replica serves the webhook, so a replica that does not lead must
// still keep its catalog index: otherwise it would refuse every image.
func TestReplicaThatDoesNotLeadKeepsItsIndex(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Another replica holds the lease for the next hour.
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "plinth-replica-test"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("the-leader"), LeaseDurationSeconds: ptr.To(int32(3600)),
			AcquireTime: &metav1.MicroTime{Time: time.Now()}, RenewTime: &metav1.MicroTime{Time: time.Now()},
		},
	}
	if err := k8sClient.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme:                  testenv.Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		LeaderElection:          true,
		LeaderElectionID:        lease.Name,
		LeaderElectionNamespace: lease.Namespace,
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	index := catalog.NewIndex()
	if err := (&controllers.CatalogIndexReconciler{Client: mgr.GetClient(), Index: index}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	ready := admission.IndexSynced(mgr.GetClient(), index)
	ns := newNamespace(t, "")
	approve(t, ns)
	waitFor(t, func() error {
		return ready(httptest.NewRequest("GET", "/readyz", nil))
	})
	found := false
	for _, e := range index.Entries() {
		found = found || e.Name == (types.NamespacedName{Namespace: ns, Name: "python"})
	}
	if !found {
		t.Error("the replica's index lacks the new entry")
	}
	select {
	case <-mgr.Elected():
		t.Fatal("the replica was elected leader; the test needs one that is not")
	default:
	}
}

func TestReadyOnlyOnceTheIndexHoldsTheCatalog(t *testing.T) {
	ns := newNamespace(t, "")
	approve(t, ns)
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := admission.IndexSynced(k8sClient, testIndex)(req); err != nil {
		t.Errorf("the suite's index holds the catalog, yet: %v", err)
	}
	err := admission.IndexSynced(k8sClient, catalog.NewIndex())(req)
	if err == nil || !strings.Contains(err.Error(), "not in the catalog index yet") {
		t.Errorf("an empty index is ready: %v", err)
	}
}
