package registry_test

import (
	"testing"

	"github.com/plinth-dev/plinth/internal/registry"
)

func TestRegistryOf(t *testing.T) {
	tests := map[string]string{
		"alpine:3.22":                           "docker.io",
		"docker.io/library/alpine":              "docker.io",
		"index.docker.io/library/alpine":        "docker.io",
		"registry.example.com/base/python:3.13": "registry.example.com",
		"127.0.0.1:5050/base/alpine":            "127.0.0.1:5050",
	}
	for in, want := range tests {
		if got := registry.RegistryOf(mustRef(t, in)); got != want {
			t.Errorf("RegistryOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAllowedBy(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		ref      string
		want     bool
		wantErr  bool
	}{
		{name: "no patterns allow everything", ref: "quay.io/org/image:1", want: true},
		{name: "exact host", patterns: []string{"registry.example.com"}, ref: "registry.example.com/base/python:3.13", want: true},
		{name: "other host", patterns: []string{"registry.example.com"}, ref: "evil.example.org/base/python:3.13", want: false},
		{name: "host glob", patterns: []string{"*.example.com"}, ref: "eu.example.com/base/python:3.13", want: true},
		{name: "host glob does not cross into the path", patterns: []string{"*"}, ref: "registry.example.com/base/python", want: true},
		{name: "host without port does not match a port", patterns: []string{"127.0.0.1"}, ref: "127.0.0.1:5050/base/alpine", want: false},
		{name: "host with port", patterns: []string{"127.0.0.1:5050"}, ref: "127.0.0.1:5050/base/alpine", want: true},
		{name: "port glob", patterns: []string{"127.0.0.1:*"}, ref: "127.0.0.1:5050/base/alpine", want: true},
		{name: "repository glob", patterns: []string{"registry.example.com/base/*"}, ref: "registry.example.com/base/python:3.13", want: true},
		{name: "repository glob other path", patterns: []string{"registry.example.com/base/*"}, ref: "registry.example.com/team/python:3.13", want: false},
		{name: "repository glob is one level", patterns: []string{"registry.example.com/base/*"}, ref: "registry.example.com/base/py/thon:1", want: false},
		{name: "docker hub short name", patterns: []string{"docker.io"}, ref: "alpine:3.22", want: true},
		{name: "docker hub library", patterns: []string{"docker.io/library/*"}, ref: "alpine:3.22", want: true},
		{name: "docker hub legacy host in pattern", patterns: []string{"index.docker.io/library/*"}, ref: "docker.io/library/alpine", want: true},
		{name: "docker hub other namespace", patterns: []string{"docker.io/library/*"}, ref: "docker.io/bitnami/redis", want: false},
		{name: "second pattern matches", patterns: []string{"quay.io", "registry.example.com"}, ref: "registry.example.com/a", want: true},
		{name: "invalid pattern", patterns: []string{"registry.example.com/[base"}, ref: "quay.io/org/image", wantErr: true},
		{name: "invalid pattern after a match", patterns: []string{"quay.io", "[a-"}, ref: "quay.io/org/image", wantErr: true},
		{name: "empty pattern", patterns: []string{""}, ref: "quay.io/org/image", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.AllowedBy(tt.patterns, mustRef(t, tt.ref))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("AllowedBy(%q, %q) = %v, want %v", tt.patterns, tt.ref, got, tt.want)
			}
		})
	}
}
