package migrations

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/jackalope-app/jackalope/internal/pgtest"
)

// TestDialectsInStep checks that every migration exists for both dialects and
// that each file has an Up and a Down section, so a schema change cannot land
// in one store only.
func TestDialectsInStep(t *testing.T) {
	names := func(fsys fs.FS) []string {
		t.Helper()
		got, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatalf("glob: %v", err)
		}
		return got
	}
	pg, lite := names(Postgres()), names(SQLite())
	if len(pg) == 0 {
		t.Fatal("no PostgreSQL migrations embedded")
	}
	if diff := cmp.Diff(pg, lite); diff != "" {
		t.Errorf("PostgreSQL and SQLite migrations differ (-postgres +sqlite):\n%s", diff)
	}

	for _, dialect := range []struct {
		name string
		fsys fs.FS
	}{{"postgres", Postgres()}, {"sqlite", SQLite()}} {
		for _, name := range names(dialect.fsys) {
			b, err := fs.ReadFile(dialect.fsys, name)
			if err != nil {
				t.Fatalf("read %s/%s: %v", dialect.name, name, err)
			}
			for _, marker := range []string{"-- +goose Up", "-- +goose Down"} {
				if !strings.Contains(string(b), marker) {
					t.Errorf("%s/%s lacks %q", dialect.name, name, marker)
				}
			}
		}
	}
}

// TestUpDownUp applies every migration as the stores do (NewProvider),
// rolls all of them back and applies them again, so each Down really undoes
// its Up. PostgreSQL runs only when
// JACKALOPE_TEST_DATABASE_URL is set.
func TestUpDownUp(t *testing.T) {
	tests := []struct {
		name    string
		dialect goose.Dialect
		driver  string
		dsn     func(t *testing.T) string
	}{
		{"sqlite", goose.DialectSQLite3, "sqlite", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "migrations.db")
		}},
		{"postgres", goose.DialectPostgres, "pgx", func(t *testing.T) string {
			return pgtest.URL(t)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := sql.Open(tt.driver, tt.dsn(t))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			p, err := NewProvider(tt.dialect, db)
			if err != nil {
				t.Fatalf("NewProvider: %v", err)
			}
			sources := p.ListSources()
			latest := sources[len(sources)-1].Version

			steps := []struct {
				name string
				run  func() error
				want int64
			}{
				{"up", func() error { _, err := p.Up(t.Context()); return err }, latest},
				{"down to zero", func() error { _, err := p.DownTo(t.Context(), 0); return err }, 0},
				{"up again", func() error { _, err := p.Up(t.Context()); return err }, latest},
			}
			for _, step := range steps {
				if err := step.run(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				got, err := p.GetDBVersion(t.Context())
				if err != nil {
					t.Fatalf("%s: version: %v", step.name, err)
				}
				if got != step.want {
					t.Errorf("%s: version = %d, want %d", step.name, got, step.want)
				}
			}
		})
	}
}
