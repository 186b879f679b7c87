// Package pgtest gives a test a PostgreSQL schema of its own, in the
// database JACKALOPE_TEST_DATABASE_URL names, so tests run in parallel and
// leave nothing behind. Without the variable, tests that need PostgreSQL
// skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the URL of the test database.
const EnvURL = "JACKALOPE_TEST_DATABASE_URL"

// setupTimeout bounds creating and dropping a schema.
const setupTimeout = 30 * time.Second

// URL creates a fresh, empty schema in the test database and returns a
// database URL whose connections use it (search_path), for postgres.Open or
// any pgx client. The schema is dropped, with everything in it, when the
// test ends; close connections to it in earlier cleanups. URL skips the test
// when JACKALOPE_TEST_DATABASE_URL is empty and fails it when the database
// cannot be reached.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Skipf("%s is not set; set it to a PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run this test", EnvURL)
	}

	b := make([]byte, 8)
	rand.Read(b)
	schema := "jackalope_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	exec(ctx, t, base, "CREATE SCHEMA "+ident)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		exec(ctx, t, base, "DROP SCHEMA IF EXISTS "+ident+" CASCADE")
	})
	return withSearchPath(t, base, schema)
}

// exec runs one statement on a connection of its own and fails the test on
// error. pgx keeps passwords out of its error messages.
func exec(ctx context.Context, t testing.TB, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvURL, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }() // the statement ran; nothing to keep
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// withSearchPath returns dsn, a URL or keyword/value DSN, with search_path
// set to schema.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: %s is not a valid URL", EnvURL) // the URL may hold a password: not shown
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
