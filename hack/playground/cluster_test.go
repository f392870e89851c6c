package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const kubeconfigYAML = `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://127.0.0.1:6443"}
- name: dev
  cluster: {server: "https://127.0.0.1:7443"}
users:
- name: me
  user: {token: not-a-secret}
contexts:
- name: prod-admin
  context: {cluster: prod, user: me, namespace: catalog}
- name: dev
  context: {cluster: dev, user: me}
current-context: prod-admin
`

func TestLoadKubeconfigClusterNamesTheCurrentContext(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	if err := os.WriteFile(kc, []byte(kubeconfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", kc)
	k, err := loadKubeconfigCluster()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.String(), `context "prod-admin", server https://127.0.0.1:6443`; got != want {
		t.Errorf("cluster = %s, want %s", got, want)
	}
	if k.namespace != "catalog" {
		t.Errorf("namespace = %s, want the context's", k.namespace)
	}
}

func TestLoadKubeconfigClusterWithoutKubeconfig(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	for _, env := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		t.Setenv("KUBECONFIG", env)
		if _, err := loadKubeconfigCluster(); !errors.Is(err, errNoKubeconfig) {
			t.Errorf("KUBECONFIG=%q: err = %v, want %v", env, err, errNoKubeconfig)
		}
	}
}

func TestLoadKubeconfigClusterFromHome(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), []byte(kubeconfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	k, err := loadKubeconfigCluster()
	if err != nil {
		t.Fatal(err)
	}
	if k.context != "prod-admin" {
		t.Errorf("context = %s", k.context)
	}
}
