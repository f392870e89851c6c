package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/admission"
	"github.com/plinth-dev/plinth/internal/catalog"
	"github.com/plinth-dev/plinth/internal/registry"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
)

// BenchmarkWebhook answers AdmissionReviews for 5-container Pods over
// HTTPS, as the API server sends them, against a catalog of 1,000 digests
// (100 entries of 10 digests each) in a registry on loopback. The Pods'
// images are 200 applications built FROM catalog digests, written as tags
// or digests. Every image is seen once before timing starts, so the
// registry-requests figure, counted while timing, must be 0. It reports
// the p50 and p99 latency of an answer and the heap the index holds.
func BenchmarkWebhook(b *testing.B) {
	ctx := context.Background()
	reg, err := registrytest.NewServer("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()

	// The catalog: 100 entries, each with 10 digests (approved first).
	var bis []catalogv1.BaseImage
	var bases []string // digest references of the catalog's images
	for i := range 100 {
		repo := fmt.Sprintf("%s/base/image-%d", reg.Host, i)
		var hist []string
		for j := range 10 {
			img, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"etc/base": fmt.Sprintf("%d/%d", i, j)}})
			if err != nil {
				b.Fatal(err)
			}
			d, err := imagetest.PushImage(ctx, fmt.Sprintf("%s:v%d", repo, j), img)
			if err != nil {
				b.Fatal(err)
			}
			hist = append(hist, d)
			bases = append(bases, repo+"@"+d)
		}
		bi := catalogv1.BaseImage{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: fmt.Sprintf("image-%d", i)}}
		bi.Spec.Image = catalogv1.ImageReference(repo + ":v0")
		bi.Status.ApprovedDigest, bi.Status.ResolvedDigest = hist[0], hist[0]
		for _, h := range hist {
			bi.Status.History = append(bi.Status.History, catalogv1.DigestRecord{Digest: h})
		}
		bis = append(bis, bi)
	}
	index := catalog.NewIndex()
	index.Update(bis)
	if _, n := index.Len(); n != 1000 {
		b.Fatalf("%d catalog digests, want 1000", n)
	}

	// 200 applications, each FROM an approved catalog digest, with a layer
	// on top.
	rnd := rand.New(rand.NewPCG(1, 2))
	var apps []string
	for i := range 200 {
		base, err := imagetest.Image(imagetest.ImageOptions{Files: map[string]string{"etc/base": fmt.Sprintf("%d/0", i%100)}})
		if err != nil {
			b.Fatal(err)
		}
		app, err := appendLayer(base, fmt.Sprintf("app/%d", i))
		if err != nil {
			b.Fatal(err)
		}
		ref := fmt.Sprintf("%s/apps/app-%d:1", reg.Host, i)
		d, err := imagetest.PushImage(ctx, ref, app)
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			ref = fmt.Sprintf("%s/apps/app-%d@%s", reg.Host, i, d)
		}
		apps = append(apps, ref)
	}

	client := registry.New(registry.Options{Transport: reg.Transport(), RateLimit: 1e6, Burst: 1e6})
	matcher, err := catalog.NewMatcher(index, catalog.Options{Client: client})
	if err != nil {
		b.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{admission.ModeLabel: "enforce"}}}
	v := &admission.Validator{
		Matcher:    matcher,
		Namespaces: fake.NewClientBuilder().WithScheme(testenv.Scheme()).WithObjects(ns).Build(),
		// Enough for the first sight of every catalog digest.
		MatchTimeout: time.Minute,
	}
	srv := httptest.NewTLSServer(&webhook.Admission{Handler: v})
	defer srv.Close()
	hc := srv.Client()

	review := func(i int, images []string) []byte {
		p := pod("shop", fmt.Sprintf("pod-%d", i), images...)
		raw, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: "uid", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
				Operation: admissionv1.Create, Namespace: "shop", Name: p.Name, Object: kruntime.RawExtension{Raw: raw},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	send := func(body []byte) {
		resp, err := hc.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %v %s", resp.Status, err, out)
		}
		var r admissionv1.AdmissionReview
		if err := json.Unmarshal(out, &r); err != nil || r.Response == nil || !r.Response.Allowed || len(r.Response.Warnings) > 0 {
			b.Fatalf("a Pod on approved bases was not simply admitted: %s", out)
		}
	}
	// First sight of every application and of the catalog's layers.
	for i := 0; i < len(apps); i += 5 {
		send(review(i, apps[i:min(i+5, len(apps))]))
	}

	// 5-container Pods of random applications, all seen before.
	bodies := make([][]byte, 256)
	for i := range bodies {
		var images []string
		for range 5 {
			images = append(images, apps[rnd.IntN(len(apps))])
		}
		bodies[i] = review(i, images)
	}
	reg.ResetCounts()
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		send(bodies[i%len(bodies)])
		latencies = append(latencies, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(reg.Requests()), "registry-requests")
	b.ReportMetric(indexBytes(bis), "index-bytes")
	runtime.KeepAlive(bases)
}

// indexBytes returns the heap an index of bis holds, averaged over ten
// indexes so that other garbage collected meanwhile hardly counts.
func indexBytes(bis []catalogv1.BaseImage) float64 {
	const n = 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ixs := make([]*catalog.Index, n)
	for i := range ixs {
		ixs[i] = catalog.NewIndex()
		ixs[i].Update(bis)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ixs)
	runtime.KeepAlive(bis)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
}
