package inventory

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/plinth-dev/plinth/internal/catalog"
)

func TestDigestFromImageID(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		id, want string
	}{
		{"docker-pullable://registry.example.com/apps/web@" + d, d},
		{"docker://registry.example.com/apps/web@" + d, d},
		{"registry.example.com/apps/web@" + d, d},
		{"docker.io/library/nginx@" + d, d},
		{"127.0.0.1:5000/apps/web@" + d, d},
		// A configuration id is not a manifest digest.
		{d, ""},
		{"docker://" + d, ""},
		{"", ""},
		{"registry.example.com/apps/web@sha256:short", ""},
		{"registry.example.com/apps/web:1.0", ""},
	} {
		if got := DigestFromImageID(tc.id); got != tc.want {
			t.Errorf("DigestFromImageID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestSummaryCounts(t *testing.T) {
	python := types.NamespacedName{Namespace: "platform", Name: "python"}
	golang := types.NamespacedName{Namespace: "platform", Name: "golang"}
	s := NewStore()
	s.Set(types.NamespacedName{Namespace: "shop", Name: "web"}, []Container{
		{Name: "init", Class: catalog.Approved, Base: python},
		{Name: "app", Class: catalog.Approved, Base: python},
		{Name: "sidecar", Class: catalog.Unapproved},
	})
	s.Set(types.NamespacedName{Namespace: "shop", Name: "worker"}, []Container{
		{Name: "app", Class: catalog.Superseded, Base: python},
	})
	s.Set(types.NamespacedName{Namespace: "billing", Name: "api"}, []Container{
		{Name: "app", Class: catalog.Approved, Base: golang},
		{Name: "debug", Class: catalog.Unknown},
	})
	if s.Set(types.NamespacedName{Namespace: "billing", Name: "api"}, []Container{
		{Name: "app", Class: catalog.Approved, Base: golang},
		{Name: "debug", Class: catalog.Unknown},
	}) {
		t.Error("Set of the same containers reported a change")
	}
	sum := s.Summary()
	if got := sum.Cluster; got[catalog.Approved] != 3 || got[catalog.Superseded] != 1 || got[catalog.Unapproved] != 1 || got[catalog.Unknown] != 1 || got.Total() != 6 {
		t.Errorf("cluster counts %v", got)
	}
	if got := sum.Namespaces["shop"]; got[catalog.Approved] != 2 || got[catalog.Superseded] != 1 || got[catalog.Unapproved] != 1 {
		t.Errorf("shop counts %v", got)
	}
	p := sum.Bases[python]
	if p == nil || p.Pods != 2 || p.Namespaces != 1 || p.Containers != 3 || p.Superseded != 1 || p.ByClass[catalog.Approved] != 2 {
		t.Errorf("python consumers %+v", p)
	}
	if g := sum.Bases[golang]; g == nil || g.Pods != 1 || g.Namespaces != 1 || g.Containers != 1 {
		t.Errorf("golang consumers %+v", g)
	}

	s.Delete(types.NamespacedName{Namespace: "shop", Name: "worker"})
	if p := s.Summary().Bases[python]; p.Pods != 1 || p.Superseded != 0 {
		t.Errorf("after deleting a Pod, python consumers %+v", p)
	}
}
