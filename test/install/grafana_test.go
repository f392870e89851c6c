package install

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestGrafanaComponent renders config/default with config/grafana, checks
// that the dashboard's ConfigMap is what the Grafana sidecar loads (label
// grafana_dashboard: "1", a stable name, valid dashboard JSON reading a
// chosen Prometheus data source), and has the API server accept it as a
// dry-run.
func TestGrafanaComponent(t *testing.T) {
	objs := renderWith(t, "prometheus", "grafana")
	cm := find(t, objs, "ConfigMap", "plinth-grafana-dashboard")
	if cm.GetNamespace() != namespace {
		t.Errorf("ConfigMap in namespace %q, want %s", cm.GetNamespace(), namespace)
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap labels %v lack the Grafana sidecar's grafana_dashboard: \"1\"", cm.GetLabels())
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if len(data) != 1 {
		t.Fatalf("ConfigMap holds %d files, want the dashboard only", len(data))
	}
	raw, ok := data["plinth-catalog.json"]
	if !ok {
		t.Fatalf("ConfigMap keys %v, want plinth-catalog.json", data)
	}
	var dash struct {
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type, Title string
			Datasource  *struct{ Type, UID string }
			Targets     []struct {
				Expr       string `json:"expr"`
				Datasource *struct{ Type, UID string }
			}
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(raw), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if dash.UID == "" || dash.SchemaVersion < 39 {
		t.Errorf("dashboard uid %q, schemaVersion %d; want a uid and schemaVersion 39 or later", dash.UID, dash.SchemaVersion)
	}
	hasDatasource := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasource = true
		}
	}
	if !hasDatasource {
		t.Error("the dashboard has no datasource variable of type prometheus")
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			for _, ds := range []*struct{ Type, UID string }{p.Datasource, q.Datasource} {
				if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
					t.Errorf("panel %q reads data source %+v, want the ${datasource} variable", p.Title, ds)
				}
			}
			if !strings.Contains(q.Expr, "plinth_") {
				t.Errorf("panel %q queries %q, no plinth metric", p.Title, q.Expr)
			}
		}
	}
	if queries < 10 {
		t.Errorf("the dashboard has %d queries", queries)
	}

	// The API server accepts it (a ConfigMap holds at most 1 MiB).
	e := controlPlane(t)
	c, _ := newClient(t, e)
	ctx := context30s(t)
	ensureNamespace(t, ctx, c, objs)
	if err := c.Create(ctx, cm.DeepCopy(), client.DryRunAll); err != nil {
		t.Errorf("the API server refuses the dashboard's ConfigMap: %v", err)
	}

	// On its own, next to config/default, it renders the same ConfigMap.
	if objs := renderWith(t, "grafana"); find(t, objs, "ConfigMap", "plinth-grafana-dashboard") == nil {
		t.Error("config/grafana alone renders no dashboard")
	}
}
