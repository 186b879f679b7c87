package postgres_test

import (
	"database/sql"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/pressly/goose/v3"

	"github.com/jackalope-app/jackalope/internal/pgtest"
	"github.com/jackalope-app/jackalope/internal/postgres"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/registry/registrytest"
	"github.com/jackalope-app/jackalope/migrations"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s, err := postgres.Open(t.Context(), pgtest.URL(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestOpenUpgrades opens schemas migrated in part, as an older release or
// migrations arriving out of order leave them (see registrytest.RunUpgrades).
func TestOpenUpgrades(t *testing.T) {
	registrytest.RunUpgrades(t, func(t *testing.T, skip []int64) registry.Store {
		dsn := pgtest.URL(t)
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		p, err := migrations.NewProvider(goose.DialectPostgres, db, goose.WithExcludeVersions(skip))
		if err != nil {
			t.Fatalf("NewProvider: %v", err)
		}
		if _, err := p.Up(t.Context()); err != nil {
			t.Fatalf("migrate without %v: %v", skip, err)
		}
		s, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open of a schema without migrations %v: %v", skip, err)
		}
		all, err := migrations.NewProvider(goose.DialectPostgres, db)
		if err != nil {
			t.Fatalf("NewProvider: %v", err)
		}
		if pending, err := all.HasPending(t.Context()); err != nil || pending {
			t.Errorf("Open of a schema without migrations %v: pending %v, %v; want none", skip, pending, err)
		}
		return s
	})
}

// TestReopen checks that data survives reopening and that opening an
// up-to-date schema, also from several processes at once, applies
// migrations again harmlessly.
func TestReopen(t *testing.T) {
	dsn := pgtest.URL(t)

	// Installers starting together race to migrate a new schema.
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}

	want, _, err := stores[0].Upsert(t.Context(), registry.Installation{
		TeamID:           "T1",
		ChannelID:        "C1",
		WebhookURLSealed: "v1.webhook",
		TokenHash:        "hash-1",
		TokenSealed:      "v1.token",
	})
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	for _, s := range stores {
		s.Close()
	}

	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff([]registry.Installation{want}, got); diff != "" {
		t.Errorf("List after reopen (-want +got):\n%s", diff)
	}
}

// TestOpenErrors checks that a failed Open names the problem and the server
// but never shows the password.
func TestOpenErrors(t *testing.T) {
	const password = "s3cret-Pw0rd"
	tests := []struct {
		name     string
		url      string
		needsDB  bool     // the case needs the test database
		wantText []string // parts the error must name
	}{
		{
			name:     "malformed url",
			url:      "postgres://jack:" + password + "@127.0.0.1:badport/test",
			wantText: []string{"invalid database url"},
		},
		{
			name:     "unknown sslmode",
			url:      "postgres://jack:" + password + "@127.0.0.1/test?sslmode=sometimes",
			wantText: []string{"invalid database url", "sslmode"},
		},
		{
			name:     "quoted keyword/value password",
			url:      "host=127.0.0.1 user=jack password='a " + password + "' sslmode=sometimes",
			wantText: []string{"invalid database url", "sslmode"},
		},
		{
			name:     "unreachable host",
			url:      "postgres://jack:" + password + "@127.0.0.1:1/test?connect_timeout=5",
			wantText: []string{"connect to 127.0.0.1:1/test"},
		},
		{
			name:     "unreachable host keyword/value",
			url:      "host=127.0.0.1 port=1 user=jack password=" + password + " dbname=test connect_timeout=5",
			wantText: []string{"connect to 127.0.0.1:1/test"},
		},
		{
			name:     "unknown database",
			needsDB:  true,
			wantText: []string{"jackalope_no_such_db"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.url
			if tt.needsDB {
				dsn = otherDatabase(t, "jackalope_no_such_db", password)
			}
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got no error, want one")
			}
			msg := err.Error()
			t.Logf("Open: %v", msg)
			if strings.Contains(msg, password) {
				t.Errorf("Open error shows the password: %q", msg)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(msg, want) {
					t.Errorf("Open error %q does not name %q", msg, want)
				}
			}
		})
	}
}

// otherDatabase returns the test database URL pointed at database db, with
// password set (trust authentication ignores it). It skips the test without
// a test database.
func otherDatabase(t *testing.T, db, password string) string {
	t.Helper()
	base := os.Getenv(pgtest.EnvURL)
	if base == "" {
		t.Skipf("%s is not set", pgtest.EnvURL)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skipf("%s is not a postgres:// URL", pgtest.EnvURL)
	}
	user := "postgres"
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	u.Path = "/" + db
	return u.String()
}
