package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/sqlite"
)

// alertsDir holds the Prometheus rules and their unit tests.
var alertsDir = filepath.Join("..", "..", "..", "deploy", "prometheus")

// envPromtool, set to "required" (CI does), makes TestAlertRules fail
// instead of skipping when promtool is not installed.
const envPromtool = "JACKALOPE_TEST_PROMTOOL"

// TestAlertRules checks deploy/prometheus/alerts.yml with promtool and runs
// its unit tests (alerts_test.yml), which feed each alert the series
// Jackalope exports and check when it fires.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(envPromtool) == "required" {
			t.Fatalf("promtool is needed (Debian's prometheus package) and %s=required: %v", envPromtool, err)
		}
		t.Skipf("promtool not found (apt-get install prometheus); set %s=required to make this a failure", envPromtool)
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(alertsDir, "alerts.yml")},
		{"test", "rules", filepath.Join(alertsDir, "alerts_test.yml")},
	} {
		out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertsUseExportedMetrics builds the registries the services build
// and checks that every metric alerts.yml and its tests name is one they
// export, so that no alert watches a series that never exists.
func TestAlertsUseExportedMetrics(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.SecretKey = "alerts-test-secret-key-0123456789abcdef"
	keys, err := Keys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	conn := bustest.New(t)
	installations, err := conn.WatchInstallations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "jackalope.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	reg := Registry()
	ing, err := Ingest(cfg, keys, conn, installations, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Counters by label exist once counted: one refused request makes the
	// ingest series.
	e := httpserver.New(httpserver.Options{Logger: logger})
	ing.Register(e)
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/jamf/unknown", strings.NewReader("{}")))
	if _, err := Dispatcher(cfg, keys, conn, installations, nil, logger, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := Installer(cfg, keys, store, conn, logger, reg); err != nil {
		t.Fatal(err)
	}
	if err := conn.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		exported[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exported[name+suffix] = true
		}
	}

	used := map[string]bool{}
	for _, file := range []string{"alerts.yml", "alerts_test.yml"} {
		b, err := os.ReadFile(filepath.Join(alertsDir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\bjackalope_[a-z_]+`).FindAllString(string(b), -1) {
			used[m] = true
		}
	}
	if len(used) < 5 {
		t.Fatalf("found only %d metric names in the rules; the pattern is wrong", len(used))
	}
	var missing []string
	for name := range used {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("the alert rules use metrics no service exports: %v", missing)
	}
}
