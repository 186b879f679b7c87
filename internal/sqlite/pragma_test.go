package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConnectionSettings checks the settings every connection gets: WAL,
// foreign keys, the busy timeout, and read-only reader connections.
func TestConnectionSettings(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "jackalope.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	for _, pool := range []struct {
		name string
		db   *sql.DB
	}{{"writer", s.writer}, {"reader", s.reader}} {
		want := map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"busy_timeout": "5000",
			"query_only":   map[bool]string{true: "1", false: "0"}[pool.name == "reader"],
		}
		got := map[string]string{}
		for name := range want {
			var v string
			if err := pool.db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", pool.name, name, err)
			}
			got[name] = v
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s connection settings (-want +got):\n%s", pool.name, diff)
		}
	}
	if _, err := s.reader.ExecContext(t.Context(), `DELETE FROM installations`); err == nil {
		t.Errorf("a reader connection could write")
	}
}
