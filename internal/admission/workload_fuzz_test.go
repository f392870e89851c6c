package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/plinth-dev/plinth/internal/catalog"
)

// enrolledNamespaces answers every namespace read with a namespace in
// enforce mode, so that every request reaches the decoding of its objects.
type enrolledNamespaces struct{}

func (enrolledNamespaces) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	obj.SetName(key.Name)
	obj.SetLabels(map[string]string{ModeLabel: string(Enforce)})
	return nil
}

func (enrolledNamespaces) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return nil
}

// unknownImages classifies every image as Unknown without a registry.
type unknownImages struct{}

func (unknownImages) MatchReference(_ context.Context, ref name.Reference, _ string) (catalog.Result, error) {
	return catalog.Result{Image: ref.Name(), Class: catalog.Unknown}, nil
}

// FuzzAdmissionReview sends arbitrary bodies to the webhook's HTTP handler,
// as the API server would: decoding the AdmissionReview and the pod specs
// it carries must never panic, and every answer must be an AdmissionReview
// that echoes the request's uid and refuses what it could not read.
// The seeds are the reviews in testdata/admissionreviews.
func FuzzAdmissionReview(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "admissionreviews", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed AdmissionReviews in testdata/admissionreviews")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	scheme := runtime.NewScheme()
	if err := admissionv1.AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	reviews := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	h := &webhook.Admission{Handler: &Validator{Matcher: unknownImages{}, Namespaces: enrolledNamespaces{}, Unknown: AllowUnknown}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code != http.StatusOK {
			// controller-runtime answers 400 to bodies it cannot read.
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d for %q", rec.Code, body)
			}
			return
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %q is no AdmissionReview: %v", rec.Body.Bytes(), err)
		}
		if out.Response == nil {
			t.Fatalf("answer %q has no response", rec.Body.Bytes())
		}
		// Read the request as the webhook server does (field names are
		// case-sensitive), to compare uids.
		var in admissionv1.AdmissionReview
		if _, _, err := reviews.Decode(body, nil, &in); err != nil || in.Request == nil {
			return
		}
		if out.Response.UID != in.Request.UID {
			t.Fatalf("answer uid %q, request uid %q", out.Response.UID, in.Request.UID)
		}
		r := out.Response
		if r.Allowed && r.Result != nil && r.Result.Code >= http.StatusBadRequest {
			t.Fatalf("admitted with error code %d: %s", r.Result.Code, r.Result.Message)
		}
		if !r.Allowed && (r.Result == nil || strings.TrimSpace(r.Result.Message) == "") {
			t.Fatalf("refused without a message: %q", rec.Body.Bytes())
		}
	})
}

// FuzzDecodeWorkload decodes arbitrary JSON as each supported kind: it must
// never panic, and every image it lists is non-empty and named by a field
// path a user can find.
func FuzzDecodeWorkload(f *testing.F) {
	kinds := []schema.GroupKind{
		{Kind: "Pod"}, {Group: "apps", Kind: "Deployment"}, {Group: "apps", Kind: "StatefulSet"},
		{Group: "apps", Kind: "DaemonSet"}, {Group: "apps", Kind: "ReplicaSet"},
		{Group: "batch", Kind: "Job"}, {Group: "batch", Kind: "CronJob"},
	}
	seeds, err := filepath.Glob(filepath.Join("testdata", "admissionreviews", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var in admissionv1.AdmissionReview
		if json.Unmarshal(b, &in) == nil && in.Request != nil && len(in.Request.Object.Raw) > 0 {
			for i, k := range kinds {
				if k.Kind == in.Request.Kind.Kind {
					f.Add(uint8(i), []byte(in.Request.Object.Raw))
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, raw []byte) {
		k := kinds[int(kind)%len(kinds)]
		w, err := decodeWorkload(k, raw)
		if err != nil {
			if !strings.Contains(err.Error(), k.Kind) {
				t.Fatalf("error %q does not name the kind %s", err, k.Kind)
			}
			return
		}
		for _, c := range w.Containers {
			if c.Image == "" {
				t.Fatalf("empty image listed at %s", c.Path)
			}
			if !strings.HasSuffix(strings.SplitN(c.Path, " ", 2)[0], "]") {
				t.Fatalf("path %q names no list element", c.Path)
			}
		}
	})
}
