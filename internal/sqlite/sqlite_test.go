package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pressly/goose/v3"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/registry/registrytest"
	"github.com/jackalope-app/jackalope/internal/sqlite"
	"github.com/jackalope-app/jackalope/migrations"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "jackalope.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestOpenUpgrades opens databases migrated in part, as an older release or
// migrations arriving out of order leave them (see registrytest.RunUpgrades).
func TestOpenUpgrades(t *testing.T) {
	registrytest.RunUpgrades(t, func(t *testing.T, skip []int64) registry.Store {
		path := filepath.Join(t.TempDir(), "jackalope.db")
		migrateSkipping(t, path, skip)
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open of a database without migrations %v: %v", skip, err)
		}
		if pending := pendingMigrations(t, path); pending {
			t.Errorf("Open of a database without migrations %v left some pending", skip)
		}
		return s
	})
}

// migrateSkipping applies every migration but those in skip to the SQLite
// file at path, as the store does.
func migrateSkipping(t *testing.T, path string, skip []int64) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := migrations.NewProvider(goose.DialectSQLite3, db, goose.WithExcludeVersions(skip))
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("migrate without %v: %v", skip, err)
	}
}

// pendingMigrations reports whether the SQLite file at path lacks a
// migration.
func pendingMigrations(t *testing.T, path string) bool {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := migrations.NewProvider(goose.DialectSQLite3, db)
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	pending, err := p.HasPending(t.Context())
	if err != nil {
		t.Fatalf("HasPending: %v", err)
	}
	return pending
}

// TestReopen checks that data survives closing and reopening the file, and
// that opening an up-to-date database applies migrations again harmlessly.
func TestReopen(t *testing.T) {
	// A directory that does not exist yet, with characters that are special
	// in SQLite URIs.
	path := filepath.Join(t.TempDir(), "nested dir", "data?#%", "jackalope.db")

	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	want, _, err := s.Upsert(t.Context(), registry.Installation{
		TeamID:           "T1",
		ChannelID:        "C1",
		WebhookURLSealed: "v1.webhook",
		TokenHash:        "hash-1",
		TokenSealed:      "v1.token",
		JamfURL:          "https://acme.jamfcloud.com",
	})
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}

	for i := range 2 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i+1, err)
		}
		got, err := s.List(t.Context())
		if err != nil {
			t.Fatalf("reopen %d: List: %v", i+1, err)
		}
		if diff := cmp.Diff([]registry.Installation{want}, got); diff != "" {
			t.Errorf("reopen %d: List (-want +got):\n%s", i+1, diff)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("reopen %d: Close: %v", i+1, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notADB, []byte("this is not an SQLite database, not even close to one......"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"parent is a file", filepath.Join(file, "jackalope.db")},
		{"not a database", notADB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got no error, want one", tt.path)
			}
			t.Logf("Open(%q): %v", tt.path, err)
		})
	}
}

// TestSharedFile checks that two stores on one file, as two processes would
// have, write at the same time without failing on SQLite's lock.
func TestSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jackalope.db")
	var stores [2]*sqlite.Store
	for i := range stores {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}

	const perStore = 16
	errs := make(chan error, len(stores)*perStore)
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range perStore {
			wg.Go(func() {
				key := fmt.Sprintf("%d-%d", i, j)
				_, _, err := s.Upsert(t.Context(), registry.Installation{
					ChannelID:        "C" + key,
					WebhookURLSealed: "v1.webhook-" + key,
					TokenHash:        "hash-" + key,
					TokenSealed:      "v1.token-" + key,
				})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Upsert: %v", err)
		}
	}
	got, err := stores[1].List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := len(stores) * perStore; len(got) != want {
		t.Errorf("List has %d installations, want %d", len(got), want)
	}
}
