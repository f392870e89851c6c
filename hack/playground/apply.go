package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// samplesRegistry is the registry host the samples in config/samples name.
const samplesRegistry = "localhost:5050"

// sampleExceptionLifetime is how long the sample policy's exceptions last,
// counted from when the playground applies them. The samples carry a fixed
// date, which would one day pass and turn the sample verdicts (and the
// tests that check them) from approved to ExceptionExpired.
const sampleExceptionLifetime = 90 * 24 * time.Hour

// applySamples creates every object of the YAML files in dir, pointing the
// samples at registryHost and making their policy exceptions expire
// sampleExceptionLifetime after now.
func applySamples(ctx context.Context, c client.Client, dir, namespace, registryHost string, now time.Time) error {
	files, err := filepath.Glob(filepath.Join(dir, "catalog_*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no samples (catalog_*.yaml) in %s", dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte(samplesRegistry), []byte(registryHost))
		dec := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(namespace)
			if err := renewExceptions(&u, now.Add(sampleExceptionLifetime)); err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			if err := c.Create(ctx, &u); err != nil {
				return fmt.Errorf("creating %s %s from %s: %w", u.GetKind(), u.GetName(), filepath.Base(f), err)
			}
		}
	}
	return nil
}

// renewExceptions sets the expiry of every exception of an ImagePolicy to
// expires. Other kinds are left alone.
func renewExceptions(u *unstructured.Unstructured, expires time.Time) error {
	if u.GetKind() != "ImagePolicy" {
		return nil
	}
	exceptions, found, err := unstructured.NestedSlice(u.Object, "spec", "exceptions")
	if err != nil || !found {
		return err
	}
	for _, e := range exceptions {
		if m, ok := e.(map[string]any); ok {
			m["expires"] = expires.UTC().Truncate(time.Second).Format(time.RFC3339)
		}
	}
	return unstructured.SetNestedSlice(u.Object, exceptions, "spec", "exceptions")
}
