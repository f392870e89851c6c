// Package signing runs the BaseImage reconciler with the real Trivy scanner,
// vulnerability DB manager and cosign signer against a real API server and a
// loopback registry, and checks what it writes with cosign's own
// verification.
package signing

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/controllers"
	"github.com/plinth-dev/plinth/internal/metrics"
	"github.com/plinth-dev/plinth/internal/registry"
	"github.com/plinth-dev/plinth/internal/scan/trivy"
	"github.com/plinth-dev/plinth/internal/sign"
	imagetest "github.com/plinth-dev/plinth/test/images"
	registrytest "github.com/plinth-dev/plinth/test/registry"
	"github.com/plinth-dev/plinth/test/testenv"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

const (
	timeout = 60 * time.Second
	tick    = 100 * time.Millisecond

	keySecret = "catalog-key"
	// interval and grace are the defaults the policies here use.
	interval = catalogv1.DefaultRescanInterval
	grace    = catalogv1.DefaultValidityGrace
)

var (
	k8sClient client.Client
	testEnv   *testenv.Environment
)

func TestMain(m *testing.M) {
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = env
	code := m.Run()
	_ = env.Stop()
	// Trivy's temporary directory of this process's in-process scans.
	_ = trivy.RemoveTempFiles()
	os.Exit(code)
}

var (
	muslCVE = vulndbtest.Advisory{ID: "CVE-2099-0001", Distro: vulndbtest.Alpine322, Package: "musl", FixedVersion: "1.2.5-r1", Severity: "CRITICAL"}
	// zlibCVE affects zlib 1.3.1-r2, in the images approved here.
	zlibCVE = vulndbtest.Advisory{ID: "CVE-2099-0002", Distro: vulndbtest.Alpine322, Package: "zlib", FixedVersion: "1.3.1-r3", Severity: "CRITICAL"}
	// busyboxCVE affects a package the images here do not have.
	busyboxCVE = vulndbtest.Advisory{ID: "CVE-2099-0009", Distro: vulndbtest.Alpine322, Package: "busybox", FixedVersion: "1.37.0-r30", Severity: "HIGH"}
)

// operator is one running operator with scanning and signing, on its own
// namespace, registry, vulnerability DB and clock.
type operator struct {
	t       *testing.T
	ns      string
	reg     *registrytest.Registry
	db      *trivy.DBManager
	clock   *clocktesting.FakeClock
	dbRef   string
	metrics *prometheus.Registry
	// scanning is the operator's scanner and DB, for a second reconciler.
	scanning *controllers.Scanning

	// writes counts the requests that change the registry (PUT, POST,
	// PATCH, DELETE), refused ones included.
	writes atomic.Int64
	// denySignatures makes the registry answer 403 to pushes of cosign's
	// .sig and .att manifests.
	denySignatures atomic.Bool

	// sigMu guards sigPushes, the pushes of cosign's .sig manifests per
	// tag (sha256-<hex>.sig), refused ones included.
	sigMu     sync.Mutex
	sigPushes map[string]int
}

// signaturePushes returns the pushes of .sig manifests per signed digest.
func (o *operator) signaturePushes() map[string]int {
	o.sigMu.Lock()
	defer o.sigMu.Unlock()
	out := map[string]int{}
	for tag, n := range o.sigPushes {
		out["sha256:"+strings.TrimSuffix(strings.TrimPrefix(tag, "sha256-"), ".sig")] = n
	}
	return out
}

func startOperator(t *testing.T, advs []vulndbtest.Advisory) *operator {
	t.Helper()
	o := &operator{t: t, clock: clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Second))}
	o.reg = registrytest.New(t, registrytest.WithMiddleware(o.middleware))
	o.dbRef = o.reg.Host + "/aquasec/trivy-db:2"
	o.publishDB(advs, o.clock.Now().Add(-time.Hour))
	o.run()
	return o
}

func (o *operator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
			o.writes.Add(1)
			p := r.URL.Path
			if _, tag, ok := strings.Cut(p, "/manifests/"); ok && r.Method == http.MethodPut && strings.HasSuffix(tag, ".sig") {
				o.sigMu.Lock()
				if o.sigPushes == nil {
					o.sigPushes = map[string]int{}
				}
				o.sigPushes[tag]++
				o.sigMu.Unlock()
			}
			if o.denySignatures.Load() && r.Method == http.MethodPut && strings.Contains(p, "/manifests/sha256-") &&
				(strings.HasSuffix(p, ".sig") || strings.HasSuffix(p, ".att")) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"push denied"}]}`)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// run starts an operator process: a DB manager and scanner on a fresh
// cache directory, and the controllers with a signer.
func (o *operator) run() {
	t := o.t
	t.Helper()
	g := NewWithT(t)
	cache := t.TempDir()
	db, err := trivy.NewDBManager(trivy.DBOptions{Repositories: []string{o.dbRef}, CacheDir: cache, Now: o.clock.Now})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	o.db = db
	scanner, err := trivy.NewScanner(trivy.Options{DB: db, CacheDir: cache})
	g.Expect(err).NotTo(HaveOccurred())
	o.metrics = prometheus.NewRegistry()
	o.scanning = &controllers.Scanning{
		Scanner: scanner, DB: db, MaxDBAge: 48 * time.Hour, Updates: db.Subscribe(),
		Metrics:     metrics.New(o.metrics, db.UpdatedAt),
		ScannerName: "trivy", ScannerVersion: trivy.Version,
	}

	// Each test runs an operator of its own, one after the other.
	skip := true
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{Scheme: testenv.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	g.Expect(controllers.SetupIndexes(ctx, mgr.GetFieldIndexer())).To(Succeed())
	g.Expect((&controllers.ImagePolicyReconciler{Client: mgr.GetClient(), Clock: o.clock,
		Recorder: mgr.GetEventRecorder("plinth")}).SetupWithManager(mgr)).To(Succeed())
	g.Expect((&controllers.BaseImageReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: o.clock,
		Registry: registry.New(registry.Options{Retries: -1}),
		Recorder: mgr.GetEventRecorder("plinth"),
		Scanning: o.scanning,
		Signer:   &sign.Signer{},
	}).SetupWithManager(mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			<-done
			_ = db.Close()
		})
	})
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	k8sClient = mgr.GetClient()

	o.ns = fmt.Sprintf("sign-%d", time.Now().UnixNano())
	g.Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.ns}})).To(Succeed())
}

func (o *operator) publishDB(advs []vulndbtest.Advisory, built time.Time) {
	o.t.Helper()
	dir := o.t.TempDir()
	if _, err := vulndbtest.Build(dir, advs, built); err != nil {
		o.t.Fatal(err)
	}
	if _, err := vulndbtest.Push(context.Background(), o.dbRef, dir); err != nil {
		o.t.Fatal(err)
	}
}

// updateDB publishes a DB with advs, built now, and loads it.
func (o *operator) updateDB(advs ...vulndbtest.Advisory) {
	o.t.Helper()
	g := NewWithT(o.t)
	before := o.db.Version()
	o.publishDB(advs, o.clock.Now())
	_, err := o.db.Update(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(o.db.Version()).NotTo(Equal(before), "the DB did not change")
}

// pushAlpine pushes an Alpine image with the given musl and zlib versions
// and returns its digest.
func (o *operator) pushAlpine(ref, musl, zlib string) string {
	o.t.Helper()
	img, err := imagetest.AlpineImage(imagetest.DistroOptions{
		Created:  o.clock.Now().Add(-time.Hour),
		Packages: []imagetest.Package{{Name: "musl", Version: musl}, {Name: "zlib", Version: zlib}},
	})
	if err != nil {
		o.t.Fatal(err)
	}
	d, err := imagetest.PushImage(context.Background(), o.reg.Host+"/"+ref, img)
	if err != nil {
		o.t.Fatal(err)
	}
	return d
}

func (o *operator) get(g Gomega, name string) *catalogv1.BaseImage {
	var bi catalogv1.BaseImage
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: name}, &bi)).To(Succeed())
	return &bi
}

func (o *operator) expect(name, typ string, st metav1.ConditionStatus, reason string) *catalogv1.BaseImage {
	o.t.Helper()
	var bi *catalogv1.BaseImage
	NewWithT(o.t).Eventually(func(g Gomega) {
		bi = o.get(g, name)
		c := apimeta.FindStatusCondition(bi.Status.Conditions, typ)
		g.Expect(c).NotTo(BeNil(), "no %s condition: %+v", typ, bi.Status.Conditions)
		g.Expect(c.Status).To(Equal(st), "%s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
	}, timeout, tick).Should(Succeed())
	return bi
}

// pokeAndWait asks for a reconcile and waits until the operator reports
// having handled it, so that what status says afterwards is its answer.
func (o *operator) pokeAndWait(name string) *catalogv1.BaseImage {
	o.t.Helper()
	g := NewWithT(o.t)
	bi := o.get(g, name)
	patch := client.MergeFrom(bi.DeepCopy())
	if bi.Annotations == nil {
		bi.Annotations = map[string]string{}
	}
	v := fmt.Sprint(time.Now().UnixNano())
	bi.Annotations[catalogv1.ReconcileRequestAnnotation] = v
	g.Expect(k8sClient.Patch(context.Background(), bi, patch)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		bi = o.get(g, name)
		return bi.Status.LastHandledReconcileAt
	}, timeout, tick).Should(Equal(v), "the reconcile requested at %s was not handled", v)
	return bi
}

// createSigningPolicy creates the namespace's policy "p", signing with the
// key in Secret secret.
func (o *operator) createSigningPolicy(secret string) {
	o.t.Helper()
	NewWithT(o.t).Expect(k8sClient.Create(context.Background(), &catalogv1.ImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "p"},
		Spec: catalogv1.ImagePolicySpec{Signing: &catalogv1.SigningPolicy{
			KeySecretRef: catalogv1.LocalObjectReference{Name: secret},
		}},
	})).To(Succeed())
}

// waitPolicyJudged waits until the policy reconciler has set the policy's
// Ready condition. Entries created before that are reconciled again when
// it appears (the policy's readiness is watched).
func (o *operator) waitPolicyJudged() {
	o.t.Helper()
	NewWithT(o.t).Eventually(func(g Gomega) {
		var p catalogv1.ImagePolicy
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "p"}, &p)).To(Succeed())
		g.Expect(apimeta.FindStatusCondition(p.Status.Conditions, catalogv1.ReadyCondition)).NotTo(BeNil())
	}, timeout, 50*time.Millisecond).Should(Succeed())
}

func (o *operator) createBaseImage(name, image string) {
	o.t.Helper()
	NewWithT(o.t).Expect(k8sClient.Create(context.Background(), &catalogv1.BaseImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name},
		Spec:       catalogv1.BaseImageSpec{Image: catalogv1.ImageReference(image), PolicyRef: catalogv1.LocalObjectReference{Name: "p"}},
	})).To(Succeed())
}

// putSecret creates or replaces the Secret name with data.
func (o *operator) putSecret(name string, data map[string][]byte) {
	o.t.Helper()
	g := NewWithT(o.t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name}}
	_, err := ctrl.CreateOrUpdate(context.Background(), k8sClient, sec, func() error {
		sec.Data = data
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
}

// digest names repo's image by digest on the test registry.
func (o *operator) digest(repo, d string) name.Digest {
	o.t.Helper()
	ref, err := name.NewDigest(o.reg.Host + "/" + repo + "@" + d)
	if err != nil {
		o.t.Fatal(err)
	}
	return ref
}

// catalogKey is a cosign key pair: the Secret data the operator reads and
// the public key a verifier holds.
type catalogKey struct {
	data   map[string][]byte
	pubPEM []byte
}

// newCosignKey generates a cosign-encrypted key pair with password, as
// "cosign generate-key-pair k8s://…" stores it.
func newCosignKey(t *testing.T, password string) catalogKey {
	t.Helper()
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(password), nil })
	if err != nil {
		t.Fatal(err)
	}
	return catalogKey{
		data:   map[string][]byte{sign.SecretKeyCosign: kb.PrivateBytes, sign.SecretKeyPassword: []byte(password), "cosign.pub": kb.PublicBytes},
		pubPEM: kb.PublicBytes,
	}
}

func (k catalogKey) fingerprint(t *testing.T) string {
	t.Helper()
	fp, err := sign.FingerprintPEM(k.pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func (o *operator) ociOptions() []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(remote.WithTransport(o.reg.Transport()))}
}

// checkOpts verifies offline, with pubPEM alone, the way "cosign verify
// --key --insecure-ignore-tlog" does.
func (o *operator) checkOpts(pubPEM []byte, claims func(oci.Signature, v1.Hash, map[string]interface{}) error) *cosign.CheckOpts {
	o.t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		o.t.Fatal(err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		o.t.Fatal(err)
	}
	return &cosign.CheckOpts{
		SigVerifier:        v,
		IgnoreTlog:         true,
		IgnoreSCT:          true,
		ClaimVerifier:      claims,
		RegistryClientOpts: o.ociOptions(),
	}
}

// verifySignatures returns the signatures on image that pubPEM verifies.
func (o *operator) verifySignatures(image name.Digest, pubPEM []byte) ([]oci.Signature, error) {
	sigs, _, err := cosign.VerifyImageSignatures(context.Background(), image, o.checkOpts(pubPEM, cosign.SimpleClaimVerifier))
	return sigs, err
}

// verifyAttestations returns the statements, by predicate type, of the
// attestations on image that pubPEM verifies.
func (o *operator) verifyAttestations(image name.Digest, pubPEM []byte) (map[string][]statement, error) {
	atts, _, err := cosign.VerifyImageAttestations(context.Background(), image, o.checkOpts(pubPEM, cosign.IntotoSubjectClaimVerifier))
	if err != nil {
		return nil, err
	}
	out := map[string][]statement{}
	for _, att := range atts {
		st := decodeStatement(o.t, att)
		out[st.PredicateType] = append(out[st.PredicateType], st)
	}
	return out, nil
}

// statement is the part of an in-toto statement the tests read.
type statement struct {
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

func decodeStatement(t *testing.T, att oci.Signature) statement {
	t.Helper()
	raw, err := att.Payload()
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Payload string }
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st statement
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (st statement) approval(t *testing.T) sign.Approval {
	t.Helper()
	var a sign.Approval
	if err := json.Unmarshal(st.Predicate, &a); err != nil {
		t.Fatalf("approval predicate: %v\n%s", err, st.Predicate)
	}
	return a
}

// stored reads what the registry holds next to image, verified or not:
// the number of signatures and the attestations by predicate type.
func (o *operator) stored(image name.Digest) (signatures int, attestations map[string][]oci.Signature) {
	o.t.Helper()
	se := ociremote.SignedUnknown(image, o.ociOptions()...)
	sigs, err := se.Signatures()
	if err != nil {
		o.t.Fatal(err)
	}
	sl, err := sigs.Get()
	if err != nil {
		o.t.Fatal(err)
	}
	atts, err := se.Attestations()
	if err != nil {
		o.t.Fatal(err)
	}
	al, err := atts.Get()
	if err != nil {
		o.t.Fatal(err)
	}
	attestations = map[string][]oci.Signature{}
	for _, att := range al {
		ann, err := att.Annotations()
		if err != nil {
			o.t.Fatal(err)
		}
		pt := ann["predicateType"]
		attestations[pt] = append(attestations[pt], att)
	}
	return len(sl), attestations
}

// counts turns stored attestations into counts by predicate type.
func counts(atts map[string][]oci.Signature) map[string]int {
	out := map[string]int{}
	for k, v := range atts {
		out[k] = len(v)
	}
	return out
}

// oneOfEach is what a signed digest carries: one attestation of each type.
var oneOfEach = map[string]int{sign.PredicateTypeApproval: 1, sign.PredicateTypeVuln: 1, sign.PredicateTypeCycloneDX: 1}

func condition(bi *catalogv1.BaseImage, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(bi.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ}
}

// signedAlpine starts an operator whose DB knows muslCVE, signs with a new
// cosign key, and waits until an approved Alpine entry is signed. It
// returns the operator, the key, the approved digest and the entry.
func signedAlpine(t *testing.T) (*operator, catalogKey, name.Digest, *catalogv1.BaseImage) {
	t.Helper()
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	key := newCosignKey(t, "s3cret")
	o.putSecret(keySecret, key.data)
	o.createSigningPolicy(keySecret)
	d := o.pushAlpine("base/alpine:3.22", "1.2.5-r1", "1.3.1-r2")
	o.createBaseImage("alpine", o.reg.Host+"/base/alpine:3.22")
	bi := o.expect("alpine", catalogv1.SignedCondition, metav1.ConditionTrue, catalogv1.SignedReason)
	return o, key, o.digest("base/alpine", d), bi
}
