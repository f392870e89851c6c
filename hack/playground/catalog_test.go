package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/test/testenv"
)

var now = time.Date(2031, 5, 4, 12, 0, 0, 0, time.UTC)

func judged(name, image string, approved, stale, ready metav1.ConditionStatus, critical, high int32, created *time.Time) *catalogv1.BaseImage {
	bi := &catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	bi.Spec.Image = catalogv1.ImageReference(image)
	for t, s := range map[string]metav1.ConditionStatus{catalogv1.ApprovedCondition: approved, catalogv1.StaleCondition: stale, catalogv1.ReadyCondition: ready} {
		if s != "" {
			bi.Status.Conditions = append(bi.Status.Conditions, metav1.Condition{Type: t, Status: s, Reason: "Test"})
		}
	}
	if critical >= 0 {
		bi.Status.Vulnerabilities = &catalogv1.VulnerabilitySummary{Critical: catalogv1.SeverityCount{Total: critical}, High: catalogv1.SeverityCount{Total: high}}
	}
	if created != nil {
		bi.Status.ImageCreated = &metav1.Time{Time: *created}
	}
	return bi
}

// signed adds a Signed condition of status s to bi.
func signed(bi *catalogv1.BaseImage, s metav1.ConditionStatus) *catalogv1.BaseImage {
	bi.Status.Conditions = append(bi.Status.Conditions, metav1.Condition{Type: catalogv1.SignedCondition, Status: s, Reason: "Test"})
	return bi
}

func at(d time.Duration) *time.Time { t := now.Add(-d); return &t }

func TestRenderCatalogLooksLikeKubectl(t *testing.T) {
	items := []catalogv1.BaseImage{
		*judged("python-legacy", "localhost:5050/base/python:3.9", "False", "True", "False", 1, 1, at(1000*24*time.Hour)),
		*signed(judged("alpine", "localhost:5050/base/alpine:3.22", "True", "False", "True", 0, 0, at(72*time.Hour)), "True"),
		*judged("node-from-docker-hub", "docker.io/library/node:22-alpine", "False", "", "False", -1, 0, nil),
	}
	got := renderCatalog(catalogRows(items), now)
	want := `NAME                   IMAGE                              APPROVED   STALE   CRITICAL   HIGH   IMAGE AGE   SIGNED   READY
alpine                 localhost:5050/base/alpine:3.22    True       False   0          0      3d          True     True
node-from-docker-hub   docker.io/library/node:22-alpine   False                                unknown              False
python-legacy          localhost:5050/base/python:3.9     False      True    1          1      2y270d               False
`
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestSameRowsIgnoresPassingTime(t *testing.T) {
	a := catalogRows([]catalogv1.BaseImage{*judged("alpine", "r/a:1", "True", "False", "True", 0, 0, at(time.Hour))})
	b := catalogRows([]catalogv1.BaseImage{*judged("alpine", "r/a:1", "True", "False", "True", 0, 0, at(time.Hour))})
	if !sameRows(a, b) {
		t.Error("identical rows differ")
	}
	if renderCatalog(a, now) == renderCatalog(a, now.Add(3*time.Hour)) {
		t.Fatal("the age did not change with time; the test proves nothing")
	}
	for name, changed := range map[string]*catalogv1.BaseImage{
		"verdict":   judged("alpine", "r/a:1", "False", "False", "True", 0, 0, at(time.Hour)),
		"findings":  judged("alpine", "r/a:1", "True", "False", "True", 0, 1, at(time.Hour)),
		"new image": judged("alpine", "r/a:1", "True", "False", "True", 0, 0, at(time.Minute)),
		"no image":  judged("alpine", "r/a:1", "True", "False", "True", 0, 0, nil),
		"signed":    signed(judged("alpine", "r/a:1", "True", "False", "True", 0, 0, at(time.Hour)), "True"),
	} {
		if sameRows(a, catalogRows([]catalogv1.BaseImage{*changed})) {
			t.Errorf("%s: a changed row compares equal", name)
		}
	}
	if sameRows(a, nil) {
		t.Error("a removed row compares equal")
	}
}

// syncBuffer is a strings.Builder safe for one writer and one reader
// goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWatchCatalogPrintsOnlyChanges(t *testing.T) {
	bi := judged("alpine", "r/a:1", "", "", "", -1, 0, nil)
	c := fake.NewClientBuilder().WithScheme(testenv.Scheme()).WithObjects(bi).WithStatusSubresource(bi).Build()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchCatalog(ctx, c, "default", 5*time.Millisecond, &out, func() time.Time { return now })
	}()
	defer func() { cancel(); <-done }()

	tables := func() int { return strings.Count(out.String(), "NAME ") }
	eventually(t, "the first table", func() bool { return tables() == 1 }, out.String)
	if !strings.Contains(out.String(), "unknown") {
		t.Errorf("an entry without status should show an unknown image age:\n%s", out.String())
	}
	time.Sleep(50 * time.Millisecond) // ten polls
	if n := tables(); n != 1 {
		t.Fatalf("printed %d tables for an unchanged catalog:\n%s", n, out.String())
	}

	var got catalogv1.BaseImage
	if err := c.Get(ctx, client.ObjectKeyFromObject(bi), &got); err != nil {
		t.Fatal(err)
	}
	got.Status = judged("alpine", "r/a:1", "True", "False", "True", 0, 0, at(72*time.Hour)).Status
	if err := c.Status().Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed table", func() bool { return tables() == 2 }, out.String)
	last := out.String()[strings.LastIndex(out.String(), "NAME "):]
	if !strings.Contains(last, "3d") || !strings.Contains(last, "True") {
		t.Errorf("the new table does not show the verdict:\n%s", last)
	}
	time.Sleep(50 * time.Millisecond)
	if n := tables(); n != 2 {
		t.Errorf("printed %d tables for two states:\n%s", n, out.String())
	}
}

func eventually(t *testing.T, what string, ok func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, explain())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
