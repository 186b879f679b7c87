package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithSearchPath(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"url", "postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test?search_path=s1"},
		{"url with query", "postgresql://u:p@h/db?sslmode=disable", "postgresql://u:p@h/db?search_path=s1&sslmode=disable"},
		{"url replaces search_path", "postgres://h/db?search_path=public", "postgres://h/db?search_path=s1"},
		{"keyword/value", "host=h dbname=db", "host=h dbname=db search_path=s1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withSearchPath(t, tt.dsn, "s1"); got != tt.want {
				t.Errorf("withSearchPath(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

func TestURLSkipsWithoutDatabase(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Run("inner", func(t *testing.T) {
		URL(t)
		t.Errorf("URL did not skip with %s empty", EnvURL)
	})
}

// TestURL checks that the schema URL gives is the connection's schema and
// that it is gone after the test.
func TestURL(t *testing.T) {
	if os.Getenv(EnvURL) == "" {
		t.Skipf("%s is not set", EnvURL)
	}
	var schema string
	t.Run("inner", func(t *testing.T) {
		conn, err := pgx.Connect(t.Context(), URL(t))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
		if err := conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatalf("current_schema: %v", err)
		}
	})
	if schema == "" {
		t.Fatal("no current schema on the URL's connection")
	}
	conn, err := pgx.Connect(t.Context(), os.Getenv(EnvURL))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		t.Fatalf("query: %v", err)
	}
	if exists {
		t.Errorf("schema %s still exists after the test", schema)
	}
}
