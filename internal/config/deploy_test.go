package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/secret"
)

// TestDeployShipsNoKey keeps the deploy files from running with a known
// SECRET_KEY: `kubectl apply -k deploy/kubernetes` applies no Secret (so it
// neither creates one with a placeholder nor overwrites a real one), the
// Secret template's placeholder is a key the services refuse, and
// docker-compose stops without SECRET_KEY.
func TestDeployShipsNoKey(t *testing.T) {
	const dir = "../../deploy/kubernetes"
	kustomization := read(t, filepath.Join(dir, "kustomization.yaml"))
	resources := regexp.MustCompile(`(?m)^\s+-\s+(\S+\.ya?ml)\s*$`).FindAllStringSubmatch(kustomization, -1)
	if len(resources) == 0 {
		t.Fatal("kustomization.yaml lists no resources; the check would prove nothing")
	}
	for _, r := range resources {
		if regexp.MustCompile(`(?m)^kind:\s*Secret\s*$`).MatchString(read(t, filepath.Join(dir, r[1]))) {
			t.Errorf("%s, applied by kubectl apply -k, holds a Secret: it would overwrite the real one", r[1])
		}
	}

	example := read(t, filepath.Join(dir, "secret.example.yaml"))
	m := regexp.MustCompile(`(?m)^\s+SECRET_KEY:\s*(\S+)\s*$`).FindStringSubmatch(example)
	if m == nil {
		t.Fatal("secret.example.yaml has no SECRET_KEY")
	}
	if err := secret.CheckKey(strings.Trim(m[1], `"'`)); err == nil {
		t.Errorf("the placeholder SECRET_KEY %q of secret.example.yaml would be accepted", m[1])
	}
	for _, r := range resources {
		if r[1] == "secret.example.yaml" {
			t.Error("kustomization.yaml applies secret.example.yaml")
		}
	}

	if !strings.Contains(read(t, "../../docker-compose.yml"), "SECRET_KEY: ${SECRET_KEY:?") {
		t.Error("docker-compose.yml does not stop when SECRET_KEY is unset (${SECRET_KEY:?...})")
	}
}

// TestDeployKeepsOpsEndpointsOffThePublicPort checks that the Kubernetes
// files probe and scrape the installer and ingest on their metrics port,
// not on the public one the Ingress reaches.
func TestDeployKeepsOpsEndpointsOffThePublicPort(t *testing.T) {
	for _, name := range []string{"installer.yaml", "ingest.yaml", "dispatcher.yaml"} {
		s := read(t, filepath.Join("../../deploy/kubernetes", name))
		for _, want := range []string{
			`{name: METRICS_ADDR, value: ":9090"}`,
			`prometheus.io/port: "9090"`,
			`readinessProbe: {httpGet: {path: /readyz, port: metrics}`,
			`livenessProbe: {httpGet: {path: /healthz, port: metrics}`,
		} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %s", name, want)
			}
		}
	}
	if !strings.Contains(read(t, "../../deploy/nginx.conf"), "location ~ ^/(healthz|readyz|metrics)$ { return 404; }") {
		t.Error("deploy/nginx.conf passes /healthz, /readyz or /metrics on")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
