package trivy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/plinth-dev/plinth/internal/scan"
	imagetest "github.com/plinth-dev/plinth/test/images"
	vulndbtest "github.com/plinth-dev/plinth/test/vulndb"
)

// fakeAWSKey has the shape of an AWS access key id; it is made up.
const fakeAWSKey = "AKIAQ5TZ3NJW7XPLMK4R"

// Trivy's layer keys cover the versions of the analysers that ran, so
// entries written before plinth's analysers existed, or by an older
// version of them, are never read as complete.
func TestLayerKeysCoverPlinthAnalysers(t *testing.T) {
	versions := func(disabled []analyzer.Type) analyzer.Versions {
		ag, err := analyzer.NewAnalyzerGroup(analyzer.AnalyzerOptions{DisabledAnalyzers: disabled})
		if err != nil {
			t.Fatal(err)
		}
		return ag.AnalyzerVersions()
	}
	with := versions(disabledAnalyzers)
	if with.Analyzers[string(fileFactsType)] != fileFactsVersion || with.Analyzers[string(secretsType)] != secretsVersion {
		t.Fatalf("plinth's analysers are not part of the analysis: %v", with.Analyzers)
	}
	if _, ok := with.Analyzers[string(analyzer.TypeSecret)]; ok {
		t.Fatal("Trivy's own secret analyser runs beside plinth's")
	}
	without := versions(append(slices.Clone(disabledAnalyzers), fileFactsType, secretsType))
	diffID := "sha256:" + strings.Repeat("ab", 32)
	k1, err := cache.CalcKey(diffID, 0, with, nil, artifact.Option{})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := cache.CalcKey(diffID, 0, without, nil, artifact.Option{})
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 {
		t.Fatal("the layer key does not change with plinth's analysers")
	}
}

// layerFacts reads records as the layer cache gives them back (generic
// JSON), and applies each layer's deletions to the layers below.
func TestLayerFactsMergeLayersInOrder(t *testing.T) {
	fact := func(path string, f fileFact) ftypes.CustomResource {
		var data any
		b, _ := json.Marshal(f)
		_ = json.Unmarshal(b, &data)
		return ftypes.CustomResource{Type: string(fileFactsType), FilePath: path, Data: data}
	}
	blobs := []ftypes.BlobInfo{
		{DiffID: "sha256:1", CustomResources: []ftypes.CustomResource{
			fact("/usr/bin/passwd", fileFact{Setuid: true, Executable: true}),
			fact("/usr/bin/chsh", fileFact{Setuid: true, Executable: true}),
			fact("/usr/lib/helper", fileFact{Setgid: true}),
			fact("/opt/tool/su", fileFact{Setuid: true}),
			fact("/bin/sh", fileFact{Executable: true}),
		}, Secrets: []ftypes.Secret{{FilePath: "etc/app.env", Findings: []ftypes.SecretFinding{{RuleID: "aws-access-key-id", StartLine: 2}}}}},
		{DiffID: "sha256:2", WhiteoutFiles: []string{"usr/bin/passwd", "etc/app.env", "../../escape"}, OpaqueDirs: []string{"opt/tool/"},
			CustomResources: []ftypes.CustomResource{
				// chsh rewritten without its setuid bit.
				fact("/usr/bin/chsh", fileFact{Executable: true}),
				{Type: secretSkippedType, FilePath: "/srv/dump.sql", Data: float64(3 << 20)},
			}},
	}
	var facts scan.ImageFacts
	secrets, skipped := layerFacts(blobs, &facts)
	if want := []scan.SetuidFile{{Path: "/usr/lib/helper", Setgid: true}}; !slices.Equal(facts.Setuid, want) {
		t.Errorf("setuid %v, want %v", facts.Setuid, want)
	}
	if want := []string{"/bin/sh", "/usr/bin/chsh"}; !slices.Equal(facts.Executables, want) {
		t.Errorf("executables %v, want %v", facts.Executables, want)
	}
	// A secret stays in the layer that holds it, deleted later or not.
	if want := []scan.SecretFinding{{RuleID: "aws-access-key-id", Path: "/etc/app.env", Line: 2, Layer: "sha256:1"}}; !slices.EqualFunc(secrets, want, func(a, b scan.SecretFinding) bool {
		return a.RuleID == b.RuleID && a.Path == b.Path && a.Line == b.Line && a.Layer == b.Layer
	}) {
		t.Errorf("secrets %+v, want %+v", secrets, want)
	}
	if want := []scan.SkippedFile{{Path: "/srv/dump.sql", Size: 3 << 20, Layer: "sha256:2"}}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
}

func TestScanReportsFactsAndSecretsWithoutTheSecret(t *testing.T) {
	e := newEnv(t, []vulndbtest.Advisory{muslCVE})
	big := strings.Repeat("filler line of a text file\n", (1<<20)/27+1) + "key=" + fakeAWSKey + "\n"
	layer, err := imagetest.LayerTar([]imagetest.Entry{
		{Name: "usr/bin/passwd", Mode: 0o4755, Content: "passwd"},
		{Name: "etc/app.env", Content: "aws_access_key_id=" + fakeAWSKey + "\n"},
		{Name: "srv/big.txt", Content: big},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagetest.AppendLayers(alpine(t, "amd64"), layer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = imagetest.WithUser(img, "nobody"); err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"org.opencontainers.image.version": "1.0"}).(v1.Image)
	d := e.push("base/facts", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	diffIDs := layerDiffIDs(t, img)

	r := e.mustScan(d)
	if len(r.Images) != 1 {
		t.Fatalf("facts of %d images", len(r.Images))
	}
	f := r.Images[0]
	if f.Platform != "linux/amd64" || f.User != "nobody" || f.CompressedSize != size || f.Annotations["org.opencontainers.image.version"] != "1.0" {
		t.Errorf("facts %+v, want user nobody, %d bytes and the version annotation", f, size)
	}
	if r.Annotations["org.opencontainers.image.version"] != "1.0" {
		t.Errorf("manifest annotations %v", r.Annotations)
	}
	if want := []scan.SetuidFile{{Path: "/usr/bin/passwd", Setuid: true}}; !slices.Equal(f.Setuid, want) {
		t.Errorf("setuid %v, want %v", f.Setuid, want)
	}
	if len(r.Secrets) != 2 || r.Secrets[0].Path != "/etc/app.env" || r.Secrets[1].Path != "/srv/big.txt" ||
		r.Secrets[0].RuleID != "aws-access-key-id" || r.Secrets[0].Layer != diffIDs[len(diffIDs)-1] {
		t.Errorf("secrets %+v, want the key in /etc/app.env and /srv/big.txt of the last layer", r.Secrets)
	}
	if len(r.SecretsSkipped) != 0 {
		t.Errorf("skipped %v under the default limit", r.SecretsSkipped)
	}
	assertNoSecret(t, e.cacheDir, r)

	// A lower limit skips the big file: the layers are analysed again,
	// not read from entries made under the other limit.
	e.restart(func(_ *DBOptions, o *Options) { o.MaxSecretFileSize = 512 << 10 })
	t.Cleanup(func() { maxSecretFileSize.Store(DefaultMaxSecretFileSize) })
	r = e.mustScan(d)
	if len(r.Secrets) != 1 || r.Secrets[0].Path != "/etc/app.env" {
		t.Errorf("secrets %+v, want only /etc/app.env", r.Secrets)
	}
	if len(r.SecretsSkipped) != 1 || r.SecretsSkipped[0].Path != "/srv/big.txt" || r.SecretsSkipped[0].Size != int64(len(big)) {
		t.Errorf("skipped %+v, want /srv/big.txt", r.SecretsSkipped)
	}
	if e.scanner.Stats().LayerDownloads == 0 {
		t.Error("layers analysed under another limit were reused")
	}
	assertNoSecret(t, e.cacheDir, r)
}

func layerDiffIDs(t *testing.T, img v1.Image) []string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range cf.RootFS.DiffIDs {
		out = append(out, h.String())
	}
	return out
}

// assertNoSecret checks that neither the report nor any file of the
// cache holds the secret itself.
func assertNoSecret(t *testing.T, dir string, r *scan.Report) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), fakeAWSKey) {
		t.Error("the report holds the secret")
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() || strings.HasSuffix(p, ".db") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), fakeAWSKey) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
