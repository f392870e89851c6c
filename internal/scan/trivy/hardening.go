package trivy

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	secretanalyzer "github.com/aquasecurity/trivy/pkg/fanal/analyzer/secret"
	"github.com/aquasecurity/trivy/pkg/fanal/secret"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/fanal/utils"

	"github.com/plinth-dev/plinth/internal/scan"
)

// The analysers plinth adds to Trivy's, run in the same pass over each
// layer as the vulnerability analysis; their results are kept in the
// layer cache with the rest (BlobInfo.CustomResources and Secrets).
// Raising a version changes Trivy's layer cache keys, so entries written
// by an older analyser are never read as complete.
const (
	// fileFactsType records, per layer, the setuid and setgid files and
	// the regular files of the bin directories.
	fileFactsType    analyzer.Type = "plinth-file-facts"
	fileFactsVersion               = 1
	// secretsType is Trivy's secret analyser with its built-in rules,
	// behind a size limit, never keeping what a rule matched.
	secretsType    analyzer.Type = "plinth-secrets"
	secretsVersion               = 1
	// secretSkippedType records a file the secret analyser skipped for
	// its size.
	secretSkippedType = "plinth-secret-skipped"
)

// DefaultMaxSecretFileSize is the largest file the secret scanner reads,
// in bytes: 10 MiB, the size above which Trivy warns about memory use.
const DefaultMaxSecretFileSize = int64(10) << 20

// maxSecretFileSize is the secret scanner's limit. Trivy's analysers are
// process-wide, so it is too; NewScanner sets it.
var maxSecretFileSize atomic.Int64

func init() {
	maxSecretFileSize.Store(DefaultMaxSecretFileSize)
	analyzer.RegisterAnalyzer(fileFactsAnalyzer{})
	analyzer.RegisterAnalyzer(&secretsAnalyzer{inner: secretanalyzer.NewSecretAnalyzer(secret.Scanner{}, "")})
}

// fileFact is what the file facts analyser records of one file.
type fileFact struct {
	Setuid bool `json:"setuid,omitempty"`
	Setgid bool `json:"setgid,omitempty"`
	// Executable: a regular file in a bin directory.
	Executable bool `json:"executable,omitempty"`
}

// fileFactsAnalyzer records setuid and setgid files and the files of the
// bin directories, whatever the policy asks, so that a policy change is
// judged without downloading a layer. Trivy hands analysers regular
// files only: symbolic links are not seen.
type fileFactsAnalyzer struct{}

func (fileFactsAnalyzer) Type() analyzer.Type { return fileFactsType }
func (fileFactsAnalyzer) Version() int        { return fileFactsVersion }

// Required decides from the path and mode alone; so does the record.
func (fileFactsAnalyzer) Required(filePath string, info os.FileInfo) bool {
	_, ok := factOf(filePath, info)
	return ok
}

func (fileFactsAnalyzer) Analyze(_ context.Context, in analyzer.AnalysisInput) (*analyzer.AnalysisResult, error) {
	f, ok := factOf(in.FilePath, in.Info)
	if !ok {
		return nil, nil
	}
	return &analyzer.AnalysisResult{CustomResources: []ftypes.CustomResource{{
		Type: string(fileFactsType), FilePath: "/" + in.FilePath, Data: f,
	}}}, nil
}

// factOf returns the record of a file, if it is one to keep. A path that
// leaves the root (../etc/x) is ignored.
func factOf(filePath string, info os.FileInfo) (fileFact, bool) {
	p, ok := imagePath(filePath)
	if !ok || !info.Mode().IsRegular() {
		return fileFact{}, false
	}
	f := fileFact{
		Setuid:     info.Mode()&os.ModeSetuid != 0,
		Setgid:     info.Mode()&os.ModeSetgid != 0,
		Executable: slices.Contains(scan.ExecutableDirs, path.Dir(p)),
	}
	return f, f.Setuid || f.Setgid || f.Executable
}

// imagePath is the absolute path of a layer entry; false for entries
// that would leave the root.
func imagePath(name string) (string, bool) {
	name = strings.TrimLeft(filepath.ToSlash(name), "/")
	if name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/..") {
		return "", false
	}
	p := path.Clean("/" + name)
	return p, p != "/"
}

// secretsAnalyzer wraps Trivy's secret analyser: files over the size
// limit are recorded as skipped rather than read into memory, and the
// matched text and surrounding code are dropped before anything is
// cached, so the secret never leaves the analysis.
type secretsAnalyzer struct {
	inner *secretanalyzer.SecretAnalyzer
}

var _ analyzer.Initializer = (*secretsAnalyzer)(nil)

func (a *secretsAnalyzer) Type() analyzer.Type { return secretsType }
func (a *secretsAnalyzer) Version() int        { return secretsVersion }

func (a *secretsAnalyzer) Init(opts analyzer.AnalyzerOptions) error {
	// Built-in rules only: a configuration file could add rules that
	// change the cache's meaning without changing its keys.
	opts.SecretScannerOption.ConfigPath = ""
	return a.inner.Init(opts)
}

func (a *secretsAnalyzer) Required(filePath string, info os.FileInfo) bool {
	if _, ok := imagePath(filePath); !ok {
		return false
	}
	return a.inner.Required(filePath, info)
}

func (a *secretsAnalyzer) Analyze(ctx context.Context, in analyzer.AnalysisInput) (*analyzer.AnalysisResult, error) {
	if size := in.Info.Size(); size > maxSecretFileSize.Load() {
		// Trivy skips binaries (but .pyc files) anyway: only text files
		// are worth reporting as skipped.
		binary, err := utils.IsBinary(in.Content, size)
		if err != nil || (binary && filepath.Ext(in.FilePath) != ".pyc") {
			return nil, nil
		}
		return &analyzer.AnalysisResult{CustomResources: []ftypes.CustomResource{{
			Type: secretSkippedType, FilePath: "/" + strings.TrimLeft(in.FilePath, "/"), Data: size,
		}}}, nil
	}
	res, err := a.inner.Analyze(ctx, in)
	if err != nil || res == nil {
		return res, err
	}
	for i := range res.Secrets {
		for j := range res.Secrets[i].Findings {
			f := &res.Secrets[i].Findings[j]
			f.Match, f.Code = "", ftypes.Code{}
		}
	}
	return res, nil
}

// layerFacts merges the per-layer records of one image, in layer order,
// applying each layer's whiteouts and opaque directories to the layers
// below it, and collects the secrets and skipped files of every layer (a
// secret in a file a later layer deletes is still in the image).
func layerFacts(blobs []ftypes.BlobInfo, facts *scan.ImageFacts) (secrets []scan.SecretFinding, skipped []scan.SkippedFile) {
	files := map[string]fileFact{}
	for _, b := range blobs {
		for _, d := range b.OpaqueDirs {
			dir, ok := imagePath(d)
			if !ok {
				continue
			}
			for p := range files {
				if strings.HasPrefix(p, dir+"/") {
					delete(files, p)
				}
			}
		}
		for _, w := range b.WhiteoutFiles {
			gone, ok := imagePath(w)
			if !ok {
				continue
			}
			for p := range files {
				if p == gone || strings.HasPrefix(p, gone+"/") {
					delete(files, p)
				}
			}
		}
		for _, cr := range b.CustomResources {
			switch cr.Type {
			case string(fileFactsType):
				var f fileFact
				if decode(cr.Data, &f) == nil {
					files[cr.FilePath] = f
				}
			case secretSkippedType:
				var size int64
				if decode(cr.Data, &size) == nil {
					skipped = append(skipped, scan.SkippedFile{Path: cr.FilePath, Size: size, Layer: b.DiffID})
				}
			}
		}
		for _, s := range b.Secrets {
			p, ok := imagePath(s.FilePath)
			if !ok {
				continue
			}
			for _, f := range s.Findings {
				secrets = append(secrets, scan.SecretFinding{RuleID: f.RuleID, Category: string(f.Category),
					Severity: f.Severity, Title: f.Title, Path: p, Line: f.StartLine, Layer: b.DiffID})
			}
		}
	}
	for p, f := range files {
		if f.Setuid || f.Setgid {
			facts.Setuid = append(facts.Setuid, scan.SetuidFile{Path: p, Setuid: f.Setuid, Setgid: f.Setgid})
		}
		if f.Executable {
			facts.Executables = append(facts.Executables, p)
		}
	}
	slices.SortFunc(facts.Setuid, func(a, b scan.SetuidFile) int { return strings.Compare(a.Path, b.Path) })
	slices.Sort(facts.Executables)
	return secrets, skipped
}

// decode reads a custom resource's data, which is the analyser's value
// when fresh and generic JSON when read back from the cache.
func decode(data any, v any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
