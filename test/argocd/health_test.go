package argocd

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

const digest = "sha256:0f5a8e8f1a5cf6b7b2c2e3d4a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2"

// cond is a condition as plinth writes it for generation 2.
func cond(typ string, s metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: 2,
		LastTransitionTime: metav1.NewTime(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)),
	}
}

// baseImage is a BaseImage at generation 2 whose status observed
// observedGeneration and holds conds.
func baseImage(observedGeneration int64, conds ...metav1.Condition) *catalogv1.BaseImage {
	return &catalogv1.BaseImage{
		TypeMeta:   metav1.TypeMeta{APIVersion: catalogv1.GroupVersion.String(), Kind: "BaseImage"},
		ObjectMeta: metav1.ObjectMeta{Name: "debian", Namespace: "catalog", Generation: 2},
		Spec: catalogv1.BaseImageSpec{
			Image:     "registry.example.com/base/debian:bookworm-slim",
			PolicyRef: catalogv1.LocalObjectReference{Name: "standard"},
		},
		Status: catalogv1.BaseImageStatus{ObservedGeneration: observedGeneration, Conditions: conds},
	}
}

func suspended(bi *catalogv1.BaseImage) *catalogv1.BaseImage {
	bi.Spec.Suspend = true
	return bi
}

func withGeneration(bi *catalogv1.BaseImage, g int64) *catalogv1.BaseImage {
	bi.Generation = g
	return bi
}

// imagePolicy is an ImagePolicy at generation 2 whose status observed
// observedGeneration and holds conds.
func imagePolicy(observedGeneration int64, conds ...metav1.Condition) *catalogv1.ImagePolicy {
	return &catalogv1.ImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: catalogv1.GroupVersion.String(), Kind: "ImagePolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: "catalog", Generation: 2},
		Spec:       catalogv1.ImagePolicySpec{AllowedRegistries: []string{"registry.example.com"}},
		Status:     catalogv1.ImagePolicyStatus{ObservedGeneration: observedGeneration, Conditions: conds},
	}
}

const (
	approvedMsg  = "Approved digest " + digest
	scanningMsg  = "Scanning " + digest + " against vulnerability DB 2026-11-30T06:00:00Z"
	suspendedMsg = "The entry is suspended: its last verdict is kept and not updated"
	deniedMsg    = "2 vulnerabilities exceed the policy: CVE-2026-0001 (CRITICAL), CVE-2026-0002 (HIGH)"
	secretMsg    = `pull secret "registry-creds" not found`
	dbMsg        = "Digest " + digest + " is not judged yet: no vulnerability DB is loaded yet"
)

var (
	yes     = metav1.ConditionTrue
	no      = metav1.ConditionFalse
	unknown = metav1.ConditionUnknown
)

// healthCase is an object in one state, the health Argo CD must show for
// it, and what kstatus computes for it.
type healthCase struct {
	name    string
	obj     any
	want    health
	kstatus status.Status
	// differs says why the health does not follow kstatus here; empty when
	// it does (Current is Healthy, InProgress Progressing, Failed Degraded
	// or, for a suspended entry, Suspended).
	differs string
}

var baseImageCases = []healthCase{
	{
		name:    "new, no status yet",
		obj:     baseImage(0),
		want:    health{"Progressing", "Waiting for plinth to check the entry"},
		kstatus: status.CurrentStatus,
		differs: "kstatus calls an object without conditions Current; nothing has been judged yet",
	},
	{
		name:    "first check retried after a registry error, no observedGeneration yet",
		obj:     baseImage(0, cond(catalogv1.ReconcilingCondition, yes, catalogv1.ProgressingWithRetryReason, "registry unavailable: 503 Service Unavailable"), cond(catalogv1.ReadyCondition, no, catalogv1.RegistryUnavailableReason, "registry unavailable: 503 Service Unavailable")),
		want:    health{"Progressing", "registry unavailable: 503 Service Unavailable"},
		kstatus: status.InProgressStatus,
	},
	{
		name: "approved",
		obj: baseImage(2,
			cond(catalogv1.ScannedCondition, yes, catalogv1.ScanSucceededReason, "Scanned"),
			cond(catalogv1.ApprovedCondition, yes, catalogv1.PolicyPassedReason, "Digest meets the policy"),
			cond(catalogv1.StaleCondition, no, catalogv1.UpToDateReason, "No rebuild is due"),
			cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg)),
		want:    health{"Healthy", approvedMsg},
		kstatus: status.CurrentStatus,
	},
	{
		name: "approved, stale and unsigned by the publisher in Warn mode",
		obj: baseImage(2,
			cond(catalogv1.VerifiedCondition, no, catalogv1.SignatureMissingReason, "The digest carries no signature"),
			cond(catalogv1.ApprovedCondition, yes, catalogv1.PolicyPassedReason, "Digest meets the policy"),
			cond(catalogv1.StaleCondition, yes, catalogv1.FixAvailableReason, "A fix is available for CVE-2026-0001"),
			cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg)),
		want:    health{"Healthy", approvedMsg},
		kstatus: status.CurrentStatus,
	},
	{
		name:    "approved, spec changed since",
		obj:     baseImage(1, cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg)),
		want:    health{"Progressing", "Waiting for plinth to check generation 2"},
		kstatus: status.InProgressStatus,
	},
	{
		name: "scanning a new digest, the last verdict still Ready",
		obj: baseImage(2,
			cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg),
			cond(catalogv1.ReconcilingCondition, yes, catalogv1.ProgressingReason, scanningMsg)),
		want:    health{"Progressing", scanningMsg},
		kstatus: status.InProgressStatus,
	},
	{
		name: "approved, signing retried",
		obj: baseImage(2,
			cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg),
			cond(catalogv1.ReconcilingCondition, yes, catalogv1.ProgressingWithRetryReason, "signing: registry unavailable")),
		want:    health{"Progressing", "signing: registry unavailable"},
		kstatus: status.InProgressStatus,
	},
	{
		name: "pull secret missing",
		obj: baseImage(2,
			cond(catalogv1.StalledCondition, yes, catalogv1.PullSecretNotFoundReason, secretMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.PullSecretNotFoundReason, secretMsg)),
		want:    health{"Degraded", secretMsg},
		kstatus: status.FailedStatus,
	},
	{
		name: "denied by the policy",
		obj: baseImage(2,
			cond(catalogv1.ApprovedCondition, no, catalogv1.VulnerabilitiesExceedThresholdReason, deniedMsg),
			cond(catalogv1.StalledCondition, yes, catalogv1.PolicyDeniedReason, deniedMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.VulnerabilitiesExceedThresholdReason, deniedMsg)),
		want:    health{"Degraded", deniedMsg},
		kstatus: status.FailedStatus,
	},
	{
		name: "waiting for the vulnerability DB",
		obj: baseImage(2,
			cond(catalogv1.ScannedCondition, no, catalogv1.VulnDBUnavailableReason, "no vulnerability DB is loaded yet"),
			cond(catalogv1.ApprovedCondition, unknown, catalogv1.NotJudgedReason, dbMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.VulnDBUnavailableReason, dbMsg)),
		want:    health{"Progressing", dbMsg},
		kstatus: status.InProgressStatus,
	},
	{
		name:    "Ready Unknown",
		obj:     baseImage(2, cond(catalogv1.ReadyCondition, unknown, catalogv1.ProgressingReason, "Checking")),
		want:    health{"Progressing", "Checking"},
		kstatus: status.InProgressStatus,
	},
	{
		name: "suspended",
		obj: suspended(baseImage(2,
			cond(catalogv1.ApprovedCondition, yes, catalogv1.PolicyPassedReason, "Digest meets the policy"),
			cond(catalogv1.StalledCondition, yes, catalogv1.SuspendedReason, suspendedMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.SuspendedReason, suspendedMsg))),
		want:    health{"Suspended", suspendedMsg},
		kstatus: status.FailedStatus,
	},
	{
		name: "Stalled with reason Suspended, spec.suspend unset",
		obj: baseImage(2,
			cond(catalogv1.StalledCondition, yes, catalogv1.SuspendedReason, suspendedMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.SuspendedReason, suspendedMsg)),
		want:    health{"Suspended", suspendedMsg},
		kstatus: status.FailedStatus,
	},
	{
		name:    "suspend set, not yet observed",
		obj:     suspended(withGeneration(baseImage(2, cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, approvedMsg)), 3)),
		want:    health{"Suspended", "The entry is suspended"},
		kstatus: status.InProgressStatus,
		differs: "spec.suspend is the user's word; plinth confirms it with Stalled=Suspended at its next reconcile",
	},
	{
		name: "resumed, not yet observed",
		obj: withGeneration(baseImage(2,
			cond(catalogv1.StalledCondition, yes, catalogv1.SuspendedReason, suspendedMsg),
			cond(catalogv1.ReadyCondition, no, catalogv1.SuspendedReason, suspendedMsg)), 3),
		want:    health{"Progressing", "Waiting for plinth to check generation 3"},
		kstatus: status.InProgressStatus,
	},
	{
		name:    "conditions without Ready",
		obj:     baseImage(2, cond(catalogv1.ScannedCondition, yes, catalogv1.ScanSucceededReason, "Scanned")),
		want:    health{"Progressing", "Waiting for the Ready condition"},
		kstatus: status.CurrentStatus,
		differs: "kstatus calls an object without Ready Current; plinth always writes Ready with its verdict",
	},
}

var imagePolicyCases = []healthCase{
	{
		name:    "new, no status yet",
		obj:     imagePolicy(0),
		want:    health{"Progressing", "Waiting for plinth to check the policy"},
		kstatus: status.CurrentStatus,
		differs: "kstatus calls an object without conditions Current; nothing has been judged yet",
	},
	{
		name:    "valid",
		obj:     imagePolicy(2, cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, "Policy is valid")),
		want:    health{"Healthy", "Policy is valid"},
		kstatus: status.CurrentStatus,
	},
	{
		name:    "valid, spec changed since",
		obj:     imagePolicy(1, cond(catalogv1.ReadyCondition, yes, catalogv1.SucceededReason, "Policy is valid")),
		want:    health{"Progressing", "Waiting for plinth to check generation 2"},
		kstatus: status.InProgressStatus,
	},
	{
		name: "invalid",
		obj: imagePolicy(2,
			cond(catalogv1.StalledCondition, yes, catalogv1.InvalidSpecReason, `exceptions[0].expires is in the past`),
			cond(catalogv1.ReadyCondition, no, catalogv1.InvalidSpecReason, `exceptions[0].expires is in the past`)),
		want:    health{"Degraded", `exceptions[0].expires is in the past`},
		kstatus: status.FailedStatus,
	},
	{
		name:    "Ready False, neither Stalled nor Reconciling",
		obj:     imagePolicy(2, cond(catalogv1.ReadyCondition, no, catalogv1.ProgressingReason, "Checking")),
		want:    health{"Progressing", "Checking"},
		kstatus: status.InProgressStatus,
	},
}

func TestBaseImageHealth(t *testing.T) {
	runCases(t, readScript(t, "health-baseimage.lua"), baseImageCases)
}

func TestImagePolicyHealth(t *testing.T) {
	runCases(t, readScript(t, "health-imagepolicy.lua"), imagePolicyCases)
}

func runCases(t *testing.T, script string, cases []healthCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runHealth(script, tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("health = %+v, want %+v", got, tc.want)
			}

			// The object is what kstatus says it is, and the health follows
			// kstatus unless the case says why not.
			u, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.kstatus {
				t.Errorf("kstatus = %s, want %s", res.Status, tc.kstatus)
			}
			agrees := map[status.Status][]string{
				status.CurrentStatus:    {"Healthy"},
				status.InProgressStatus: {"Progressing"},
				status.FailedStatus:     {"Degraded", "Suspended"},
			}
			same := false
			for _, h := range agrees[res.Status] {
				same = same || h == got.Status
			}
			switch {
			case !same && tc.differs == "":
				t.Errorf("health %s does not follow kstatus %s", got.Status, res.Status)
			case same && tc.differs != "":
				t.Errorf("health %s follows kstatus %s, yet the case says it differs", got.Status, res.Status)
			}
		})
	}
}

// An object no script expects still gets a health, never a Lua error.
func TestHealthOfOddObjects(t *testing.T) {
	odd := map[string]map[string]any{
		"no metadata.generation": {
			"apiVersion": "catalog.plinth.dev/v1alpha1", "kind": "BaseImage",
			"metadata": map[string]any{"name": "debian"},
			"status": map[string]any{"conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "Succeeded"},
			}},
		},
		"empty status": {
			"apiVersion": "catalog.plinth.dev/v1alpha1", "kind": "BaseImage",
			"metadata": map[string]any{"name": "debian", "generation": int64(1)},
			"spec":     map[string]any{},
			"status":   map[string]any{},
		},
	}
	want := map[string]health{
		"no metadata.generation": {"Healthy", ""},
		"empty status":           {"Progressing", ""},
	}
	for _, file := range []string{"health-baseimage.lua", "health-imagepolicy.lua"} {
		script := readScript(t, file)
		for name, obj := range odd {
			got, err := runHealth(script, &unstructured.Unstructured{Object: obj})
			if err != nil {
				t.Errorf("%s, %s: %v", file, name, err)
				continue
			}
			if got.Status != want[name].Status {
				t.Errorf("%s, %s: health %s, want %s", file, name, got.Status, want[name].Status)
			}
		}
	}
}
