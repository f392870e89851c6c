package vulnscan

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// fakeAWSKey has the shape of an AWS access key id, which Trivy's
// aws-access-key-id rule matches; it is made up.
const fakeAWSKey = "AKIAQ5TZ3NJW7XPLMK4R"

const sourceAnnotation = "org.opencontainers.image.source"

// hardImage describes an image built on the Alpine fixture.
type hardImage struct {
	user      string
	layers    [][]imagetest.Entry
	raw       []byte // a layer that is not a tar archive
	annotated bool
}

// push builds and pushes the image to repo:1.
func (o *operator) push(repo string, h hardImage) string {
	o.t.Helper()
	g := NewWithT(o.t)
	img, err := imagetest.AlpineImage(imagetest.DistroOptions{
		Created:  o.clock.Now().Add(-time.Hour),
		Packages: []imagetest.Package{{Name: "musl", Version: "1.2.5-r1"}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	var layers [][]byte
	for _, l := range h.layers {
		b, err := imagetest.LayerTar(l)
		g.Expect(err).NotTo(HaveOccurred())
		layers = append(layers, b)
	}
	if h.raw != nil {
		layers = append(layers, h.raw)
	}
	img, err = imagetest.AppendLayers(img, layers...)
	g.Expect(err).NotTo(HaveOccurred())
	if h.user != "" {
		img, err = imagetest.WithUser(img, h.user)
		g.Expect(err).NotTo(HaveOccurred())
	}
	if h.annotated {
		img = mutate.Annotations(img, map[string]string{sourceAnnotation: "https://git.example.com/base"}).(v1.Image)
	}
	d, err := imagetest.PushImage(context.Background(), o.reg.Host+"/"+repo+":1", img)
	g.Expect(err).NotTo(HaveOccurred())
	return d
}

func TestHardeningAndSecretsDecideApproval(t *testing.T) {
	g := NewWithT(t)
	// The secret scanner reads files of up to 1 MiB here, so that a file
	// over the limit stays small enough for a test (the default is 10 MiB).
	o := startOperatorWith(t, []vulndbtest.Advisory{muslCVE}, runOptions{maxSecretFileSize: 1 << 20})
	size := resource.MustParse("10Mi")
	o.createPolicy(catalogv1.ImagePolicySpec{
		Hardening: &catalogv1.HardeningPolicy{
			RequireNonRootUser: true, ForbidSetuid: true, ForbidShells: true,
			MaxCompressedSize: &size, RequiredAnnotations: []string{sourceAnnotation},
		},
		Exceptions: []catalogv1.VulnerabilityException{{
			ID: "forbidSetuid:/usr/bin/su", Expires: metav1.NewTime(o.clock.Now().Add(30 * 24 * time.Hour)), Justification: "needed by the login flow",
		}},
	})

	escape := fmt.Sprintf("plinth-escape-%d", time.Now().UnixNano())
	bigText := strings.Repeat("INSERT INTO t VALUES ('filler text of a dump');\n", (2<<20)/48) + "aws_access_key_id=" + fakeAWSKey + "\n"
	nonRoot := "65532:65532"
	tests := []struct {
		name     string
		image    hardImage
		reason   string
		findings []string
		check    func(g Gomega, bi *catalogv1.BaseImage)
	}{
		{name: "no-user", image: hardImage{annotated: true},
			reason: catalogv1.HardeningViolationReason, findings: []string{"requireNonRootUser"}},
		{name: "uid-zero", image: hardImage{user: "0:0", annotated: true},
			reason: catalogv1.HardeningViolationReason, findings: []string{"requireNonRootUser"}},
		{name: "setuid", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "usr/bin/passwd", Mode: 0o4755, Content: "passwd"}}}},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidSetuid:/usr/bin/passwd"}},
		{name: "setuid-deleted", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "usr/bin/passwd", Mode: 0o4755, Content: "passwd"}, {Name: "opt/tool/helper", Mode: 0o2755, Content: "helper"}},
			{{Name: "usr/bin/.wh.passwd"}, {Name: "opt/tool/.wh..wh..opq"}}}},
			reason: catalogv1.PolicyPassedReason},
		{name: "setuid-excepted", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "usr/bin/su", Mode: 0o4755, Content: "su"}}}},
			reason: catalogv1.PolicyPassedReason,
			check:  func(g Gomega, bi *catalogv1.BaseImage) { g.Expect(bi.Status.Hardening.Excepted).To(BeEquivalentTo(1)) }},
		{name: "shell", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "bin/sh", Mode: 0o755, Content: "#!shell"}}}},
			reason: catalogv1.HardeningViolationReason, findings: []string{"forbidShells:/bin/sh"}},
		{name: "secret", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "etc/app.env", Content: "REGION=eu-west-1\naws_access_key_id=" + fakeAWSKey + "\n"}}}},
			reason: catalogv1.SecretFoundReason, findings: []string{"aws-access-key-id:/etc/app.env"},
			check: func(g Gomega, bi *catalogv1.BaseImage) {
				c := apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ApprovedCondition)
				g.Expect(c.Message).To(MatchRegexp(`aws-access-key-id in /etc/app.env \(layer sha256:[0-9a-f]{12}\)`))
			}},
		{name: "big-file", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "srv/dump.sql", Content: bigText}}}},
			reason: catalogv1.PolicyPassedReason,
			check: func(g Gomega, bi *catalogv1.BaseImage) {
				g.Expect(bi.Status.Hardening.SecretsSkipped).To(BeEquivalentTo(1))
			}},
		{name: "unannotated", image: hardImage{user: nonRoot},
			reason: catalogv1.HardeningViolationReason, findings: []string{"requiredAnnotations:" + sourceAnnotation}},
		{name: "hardened", image: hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
			{{Name: "usr/bin/app", Mode: 0o755, Content: "app"}, {Name: "etc/app.conf", Content: "listen=:8080\n"}}}},
			reason: catalogv1.PolicyPassedReason,
			check: func(g Gomega, bi *catalogv1.BaseImage) {
				g.Expect(*bi.Status.Hardening).To(Equal(catalogv1.HardeningStatus{}))
			}},
	}
	for _, tt := range tests {
		o.push("hard/"+tt.name, tt.image)
		o.createBaseImage(tt.name, o.reg.Host+"/hard/"+tt.name+":1")
	}
	// An entry that climbs out of the root makes the image invalid: a
	// runtime would unpack it inside the image, where plinth's analysis
	// would not have looked.
	o.push("hard/traversal", hardImage{user: nonRoot, annotated: true, layers: [][]imagetest.Entry{
		{{Name: "../../etc/" + escape, Mode: 0o4755, Content: "x"}}}})
	o.createBaseImage("traversal", o.reg.Host+"/hard/traversal:1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			status := metav1.ConditionFalse
			if tt.reason == catalogv1.PolicyPassedReason {
				status = metav1.ConditionTrue
			}
			bi := o.expect(tt.name, catalogv1.ApprovedCondition, status, tt.reason)
			g.Expect(bi.Status.Hardening).NotTo(BeNil())
			g.Expect(bi.Status.Hardening.Findings).To(Equal(tt.findings))
			if tt.check != nil {
				tt.check(g, bi)
			}
		})
	}

	traversal := o.expect("traversal", catalogv1.StalledCondition, metav1.ConditionTrue, catalogv1.InvalidImageReason)
	g.Expect(apimeta.FindStatusCondition(traversal.Status.Conditions, catalogv1.StalledCondition).Message).To(ContainSubstring("outside the root"))
	g.Expect(apimeta.FindStatusCondition(traversal.Status.Conditions, catalogv1.ApprovedCondition).Status).To(Equal(metav1.ConditionUnknown))

	// The traversing entry was never written where it points.
	wd, _ := os.Getwd()
	for _, dir := range []string{"/etc", filepath.Join(wd, "../../etc"), filepath.Join(os.TempDir(), "../../etc")} {
		_, err := os.Stat(filepath.Join(dir, escape))
		g.Expect(os.IsNotExist(err)).To(BeTrue(), "%s/%s exists", dir, escape)
	}

	// A layer that is not a tar archive is a malformed image, not a
	// failure to retry.
	o.push("hard/not-tar", hardImage{user: nonRoot, annotated: true, raw: []byte(strings.Repeat("this is not a tar archive\n", 100))})
	o.createBaseImage("not-tar", o.reg.Host+"/hard/not-tar:1")
	bi := o.expect("not-tar", catalogv1.ScannedCondition, metav1.ConditionFalse, catalogv1.InvalidImageReason)
	g.Expect(apimeta.FindStatusCondition(bi.Status.Conditions, catalogv1.ScannedCondition).Message).To(ContainSubstring("a layer is not a valid tar archive"))
	o.expect("not-tar", catalogv1.ApprovedCondition, metav1.ConditionUnknown, catalogv1.NotJudgedReason)

	// The secret appears nowhere: neither in any status nor in any event.
	var list catalogv1.BaseImageList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(o.ns))).To(Succeed())
	b, err := json.Marshal(list)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).To(ContainSubstring("aws-access-key-id:/etc/app.env"))
	g.Expect(string(b)).NotTo(ContainSubstring(fakeAWSKey))
	var events eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &events, client.InNamespace(o.ns))).To(Succeed())
	b, err = json.Marshal(events)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).NotTo(ContainSubstring(fakeAWSKey))
}

func TestForbiddingShellsJudgesTheCatalogAgainWithoutDownloads(t *testing.T) {
	g := NewWithT(t)
	o := startOperator(t, []vulndbtest.Advisory{muslCVE})
	o.createPolicy(catalogv1.ImagePolicySpec{Hardening: &catalogv1.HardeningPolicy{RequireNonRootUser: true}})
	for _, name := range []string{"with-shell", "with-bash"} {
		o.push("hard/"+name, hardImage{user: "1000", layers: [][]imagetest.Entry{
			{{Name: "usr/bin/app", Mode: 0o755, Content: name}},
			{{Name: strings.TrimPrefix(map[string]string{"with-shell": "/bin/sh", "with-bash": "/usr/bin/bash"}[name], "/"), Mode: 0o755, Content: "#!shell"}},
		}})
		o.createBaseImage(name, o.reg.Host+"/hard/"+name+":1")
		o.expect(name, catalogv1.ApprovedCondition, metav1.ConditionTrue, catalogv1.PolicyPassedReason)
	}
	downloads := o.scanner.Stats().LayerDownloads
	g.Expect(downloads).To(BeNumerically(">", 0))
	o.reg.ResetCounts()

	var p catalogv1.ImagePolicy
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: o.ns, Name: "p"}, &p)).To(Succeed())
	p.Spec.Hardening.ForbidShells = true
	g.Expect(k8sClient.Update(context.Background(), &p)).To(Succeed())

	bi := o.expect("with-shell", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.HardeningViolationReason)
	g.Expect(bi.Status.Hardening.Findings).To(Equal([]string{"forbidShells:/bin/sh"}))
	bi = o.expect("with-bash", catalogv1.ApprovedCondition, metav1.ConditionFalse, catalogv1.HardeningViolationReason)
	g.Expect(bi.Status.Hardening.Findings).To(Equal([]string{"forbidShells:/usr/bin/bash"}))
	g.Expect(o.reg.BlobRequests()).To(BeZero(), "blob requests after the policy change")
	g.Expect(o.scanner.Stats().LayerDownloads).To(Equal(downloads))
}
