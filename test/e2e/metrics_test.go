package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth-dev/plinth/test/testenv"
)

// TestMetricsOfTheSampleCatalog scrapes the metrics endpoint of the operator
// the playground runs, once the sample catalog has its verdicts, and checks
// the catalog's series against what the samples are. It then checks that
// every metric the Grafana dashboard queries is one the operator exports.
func TestMetricsOfTheSampleCatalog(t *testing.T) {
	operator := build(t, "PLINTH_BINARY", ".", "plinth")
	playground := build(t, "PLINTH_PLAYGROUND_BINARY", "./hack/playground", "playground")
	addr := freeLoopbackAddress(t)
	p := startPlayground(t, playground, []string{"KUBECONFIG=" + filepath.Join(t.TempDir(), "none"), "HOME=" + t.TempDir()},
		"--operator", operator, "--registry-address", "127.0.0.1:0", "--state-dir", t.TempDir(), "--metrics-address", addr)

	// The verdicts on the sample images, as TestPlaygroundShowsTheSampleCatalog
	// reads them from the table: alpine approved, debian approved but
	// stale, python-legacy and node-from-docker-hub refused.
	wantEntries := map[string]float64{
		`plinth_catalog_entries{namespace="default",state="approved"}`:     1,
		`plinth_catalog_entries{namespace="default",state="stale"}`:        1,
		`plinth_catalog_entries{namespace="default",state="not_approved"}`: 2,
		`plinth_catalog_entries{namespace="default",state="unknown"}`:      0,
	}
	var s *scrape
	var err error
	waitFor(t, 2*time.Minute, "the sample catalog's metrics", func() bool {
		s, err = scrapeMetrics("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		for k, v := range wantEntries {
			if got, ok := s.samples[k]; !ok || got != v {
				return false
			}
		}
		// The three images plinth can read are scanned.
		return s.count("plinth_baseimage_findings{") == 30
	}, func() string { return fmt.Sprintf("scrape error: %v\n%s\n%s", err, s, p.output.String()) })

	// Exactly one series per state of the one namespace.
	if n := s.count("plinth_catalog_entries{"); n != len(wantEntries) {
		t.Errorf("%d plinth_catalog_entries series, want %d:\n%s", n, len(wantEntries), s)
	}
	// Open findings under the sample DB: python-legacy's fixed openssl
	// (critical), every Debian sample's glibc (high, fixed, accepted by an
	// exception but still open) and unfixed bash (medium).
	for k, want := range map[string]float64{
		`plinth_baseimage_findings{fixable="true",name="python-legacy",namespace="default",severity="CRITICAL"}`:  1,
		`plinth_baseimage_findings{fixable="false",name="python-legacy",namespace="default",severity="CRITICAL"}`: 0,
		`plinth_baseimage_findings{fixable="true",name="python-legacy",namespace="default",severity="HIGH"}`:      1,
		`plinth_baseimage_findings{fixable="false",name="python-legacy",namespace="default",severity="MEDIUM"}`:   1,
		`plinth_baseimage_findings{fixable="true",name="debian",namespace="default",severity="HIGH"}`:             1,
		`plinth_baseimage_findings{fixable="false",name="debian",namespace="default",severity="MEDIUM"}`:          1,
		`plinth_baseimage_findings{fixable="true",name="alpine",namespace="default",severity="HIGH"}`:             0,
		`plinth_baseimage_findings{fixable="false",name="alpine",namespace="default",severity="MEDIUM"}`:          0,
		`plinth_baseimage_deadlines_passed{name="python-legacy",namespace="default"}`:                             0,
		`plinth_catalog_deadlines_passed{namespace="default"}`:                                                    0,
		`plinth_rebuilds_total{outcome="triggered"}`:                                                              0,
		`plinth_webhook_deliveries_total{kind="notification",outcome="failure"}`:                                  0,
		`plinth_time_to_patch_seconds_count`:                                                                      0,
		`plinth_vulnerability_time_to_fix_seconds_count`:                                                          0,
		// No Pod runs in the playground: the inventory reports every class
		// at 0, and every entry with no consumers.
		`plinth_inventory_cluster_containers{class="approved"}`:                                                0,
		`plinth_inventory_cluster_containers{class="unknown"}`:                                                 0,
		`plinth_baseimage_consumer_containers{base_name="alpine",base_namespace="default",class="approved"}`:   0,
		`plinth_baseimage_consumer_containers{base_name="debian",base_namespace="default",class="superseded"}`: 0,
	} {
		if got, ok := s.samples[k]; !ok || got != want {
			t.Errorf("%s = %v (present: %v), want %v", k, got, ok, want)
		}
	}
	// Every entry of a namespace with findings has all ten of them, and
	// node-from-docker-hub, never resolved, has none.
	if n := s.count(`plinth_baseimage_findings{fixable="false",name="node-from-docker-hub"`); n != 0 {
		t.Errorf("node-from-docker-hub, never scanned, has %d findings series", n)
	}
	// The sample images were built 3 and 5 days before the playground
	// started, python:3.9 on 2024-03-01; node-from-docker-hub has no
	// readable image, so no age.
	day := 24 * time.Hour
	for name, want := range map[string]time.Duration{
		"alpine": 3 * day, "debian": 5 * day, "python-legacy": time.Since(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)),
	} {
		got, ok := s.samples[`plinth_baseimage_age_seconds{name="`+name+`",namespace="default"}`]
		if !ok || math.Abs(got-want.Seconds()) > time.Hour.Seconds() {
			t.Errorf("age of %s = %vs (present: %v), want about %v", name, got, ok, want)
		}
	}
	if n := s.count(`plinth_baseimage_age_seconds{name="node-from-docker-hub"`); n != 0 {
		t.Error("node-from-docker-hub has an age, but its image was never read")
	}
	if age := s.samples["plinth_vulndb_age_seconds"]; age < 3000 || age > 4*3600 {
		t.Errorf("plinth_vulndb_age_seconds = %v, want about an hour (the sample DB is built an hour in the past)", age)
	}

	// Every metric the dashboard queries is one the operator exports.
	used := dashboardMetrics(t, filepath.Join(testenv.Root(), "config", "grafana", "dashboard.json"))
	var missing, names []string
	for _, n := range used {
		family, suffix := n, ""
		for _, sfx := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, sfx); ok {
				family, suffix = base, sfx
			}
		}
		if !s.exports(family, suffix) {
			missing = append(missing, n)
		}
		if !slices.Contains(names, family) {
			names = append(names, family)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics the operator does not export: %s\nexported: %s",
			strings.Join(missing, ", "), strings.Join(s.names(), ", "))
	}
	// The dashboard's panels cover the catalog, findings, time to patch,
	// rebuilds, webhooks, ages, the DB, the inventory and admission: 18
	// metrics.
	if len(names) != 18 {
		t.Errorf("the dashboard queries %d distinct metrics, want 18: %s", len(names), strings.Join(names, ", "))
	}
}

// freeLoopbackAddress returns a loopback address with a port that was free
// a moment ago.
func freeLoopbackAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape is one read of a metrics endpoint in the Prometheus text format.
type scrape struct {
	text    string
	types   map[string]string  // metric family name: counter, gauge, histogram...
	samples map[string]float64 // name{labels} as exposed (labels sorted): value
}

func (s *scrape) String() string {
	if s == nil {
		return "(no scrape)"
	}
	return s.text
}

// count returns how many samples start with prefix.
func (s *scrape) count(prefix string) int {
	n := 0
	for k := range s.samples {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// exports reports whether the scrape has the metric family name, and,
// when suffix is _bucket, _sum or _count, whether that family is a
// histogram.
func (s *scrape) exports(name, suffix string) bool {
	typ, ok := s.types[name]
	return ok && (suffix == "" || typ == "histogram")
}

// names returns the plinth_ families of the scrape, sorted.
func (s *scrape) names() []string {
	var out []string
	for n := range s.types {
		if strings.HasPrefix(n, "plinth_") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// scrapeMetrics reads url and parses the samples. The client library writes
// a sample as `name{labels} value`, labels sorted by name, without
// timestamps.
func scrapeMetrics(url string) (*scrape, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s\n%s", url, resp.Status, body)
	}
	s := &scrape{text: string(body), types: map[string]string{}, samples: map[string]float64{}}
	for _, line := range strings.Split(s.text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 {
				s.types[f[0]] = f[1]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("unreadable sample %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("unreadable sample %q: %w", line, err)
		}
		s.samples[line[:i]] = v
	}
	return s, nil
}

// plinthMetric matches a plinth metric name in a PromQL expression.
var plinthMetric = regexp.MustCompile(`\bplinth_[a-zA-Z0-9_]+`)

// dashboardMetrics returns the distinct plinth metric names that the
// dashboard's queries use: panel targets (in rows too) and template
// variables.
func dashboardMetrics(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	seen := map[string]bool{}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(k, e)
			}
		case []any:
			for _, e := range v {
				walk(key, e)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				for _, m := range plinthMetric.FindAllString(v, -1) {
					seen[m] = true
				}
			}
		}
	}
	walk("", dash)
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
