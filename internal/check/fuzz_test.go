package check

import (
	"strings"
	"testing"

	"github.com/plinth-dev/plinth/internal/catalog"
)

// FuzzParseDockerfile: any text gives stages or an error, never a panic,
// and no chosen image keeps a variable.
func FuzzParseDockerfile(f *testing.F) {
	f.Add("ARG B=debian\nFROM ${B}:12 AS build\nFROM build\nFROM scratch\n")
	f.Add("FROM --platform=$BUILDPLATFORM \\\n golang:1.23\n# c\nRUN x\n")
	f.Add("from ${X:-alpine}:${Y:+3}\n")
	f.Add("FROM")
	f.Fuzz(func(t *testing.T, text string) {
		stages, err := ParseDockerfile(strings.NewReader(text), map[string]string{"BUILDPLATFORM": "linux/amd64"})
		if err != nil {
			return
		}
		for i, s := range stages {
			if s.Number != i+1 {
				t.Fatalf("stage %d numbered %d", i+1, s.Number)
			}
			if strings.Contains(s.Image, "${") {
				t.Fatalf("stage %d keeps a variable: %q", s.Number, s.Image)
			}
		}
	})
}

// FuzzParseImage: a reference that parses names itself again.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"python:3.13", "Registry.Example.com:5000/base/python@sha256:" + strings.Repeat("a", 64),
		"localhost/x", "a/b/c:d", "UPPER/case", "docker.io/library/debian:12@sha256:" + strings.Repeat("0", 64), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := catalog.ParseImage(s)
		if err != nil {
			return
		}
		again, err := catalog.ParseImage(ref.Name())
		if err != nil {
			t.Fatalf("%q parsed as %q, which does not parse: %v", s, ref.Name(), err)
		}
		if again.Name() != ref.Name() {
			t.Fatalf("%q: %q then %q", s, ref.Name(), again.Name())
		}
	})
}
