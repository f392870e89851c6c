package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plinth-dev/plinth/internal/registry"
)

func TestKeychainFromPullSecretsResolves(t *testing.T) {
	hub := dockerConfigSecret("hub", "https://index.docker.io/v1/", "hubuser", "hubpass")
	team := dockerConfigSecret("team", "registry.example.com/team", "teamuser", "teampass")
	wide := dockerConfigSecret("wide", "registry.example.com", "wideuser", "widepass")
	wildcard := dockerConfigSecret("wildcard", "*.mirror.example.com", "mirroruser", "mirrorpass")
	legacy := corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Type:       corev1.SecretTypeDockercfg,
		Data: map[string][]byte{
			corev1.DockerConfigKey: []byte(`{"127.0.0.1:5050":{"username":"localuser","password":"localpass"}}`),
		},
	}
	kc, err := registry.KeychainFromPullSecrets([]corev1.Secret{hub, team, wide, wildcard, legacy})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo     string
		wantUser string
	}{
		{repo: "alpine", wantUser: "hubuser"},
		{repo: "docker.io/library/alpine", wantUser: "hubuser"},
		{repo: "index.docker.io/library/alpine", wantUser: "hubuser"},
		{repo: "registry.example.com/team/python", wantUser: "teamuser"},
		{repo: "registry.example.com/other/python", wantUser: "wideuser"},
		{repo: "registry.example.com/teamster/python", wantUser: "wideuser"},
		{repo: "eu.mirror.example.com/base/alpine", wantUser: "mirroruser"},
		{repo: "a.eu.mirror.example.com/base/alpine", wantUser: ""},
		{repo: "127.0.0.1:5050/base/alpine", wantUser: "localuser"},
		{repo: "127.0.0.1:5051/base/alpine", wantUser: ""},
		{repo: "quay.io/org/image", wantUser: ""},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			repo, err := name.NewRepository(tt.repo)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := kc.Resolve(repo)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := authn.Authorization(context.Background(), auth)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != tt.wantUser {
				t.Errorf("username = %q, want %q", cfg.Username, tt.wantUser)
			}
		})
	}
}

func TestKeychainWithoutSecretsIsAnonymous(t *testing.T) {
	kc, err := registry.KeychainFromPullSecrets(nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(name.MustParseReference("registry.example.com/base/alpine").Context())
	if err != nil {
		t.Fatal(err)
	}
	if auth != authn.Anonymous {
		t.Errorf("got %v, want anonymous", auth)
	}
}

func TestKeychainFromPullSecretsRejectsInvalid(t *testing.T) {
	const password = "hunter2-very-secret"
	secret := func(typ corev1.SecretType, key, value string) corev1.Secret {
		return corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "team"},
			Type:       typ,
			Data:       map[string][]byte{key: []byte(value)},
		}
	}
	tests := []struct {
		name   string
		secret corev1.Secret
	}{
		{"wrong type", secret(corev1.SecretTypeOpaque, "password", password)},
		{"missing key", secret(corev1.SecretTypeDockerConfigJson, corev1.DockerConfigKey, `{}`)},
		{"bad json", secret(corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":{"r.example.com":{"password":"`+password+`"`)},
		{"bad dockercfg json", secret(corev1.SecretTypeDockercfg, corev1.DockerConfigKey, password)},
		{"bad base64", secret(corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":{"r.example.com":{"auth":"`+password+`!"}}}`)},
		{"auth without colon", secret(corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey, `{"auths":{"r.example.com":{"auth":"aHVudGVyMi12ZXJ5LXNlY3JldA=="}}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.KeychainFromPullSecrets([]corev1.Secret{tt.secret})
			if !errors.Is(err, registry.ErrInvalidPullSecret) {
				t.Fatalf("err = %v, want ErrInvalidPullSecret", err)
			}
			if !strings.Contains(err.Error(), "team/creds") {
				t.Errorf("message %q does not name the secret", err.Error())
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("message %q leaks the secret content", err.Error())
			}
		})
	}
}
