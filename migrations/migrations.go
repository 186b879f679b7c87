// Package migrations embeds the SQL migrations of the channel registry, one
// directory per SQL dialect, in the format of github.com/pressly/goose/v3
// ("-- +goose Up" / "-- +goose Down"). Both dialects keep the same versions
// so that a schema change lands in PostgreSQL and SQLite together.
package migrations

import (
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// VersionTable is goose's bookkeeping table, named for the project so that
// it cannot clash with another tool's in a shared database or schema.
const VersionTable = "jackalope_db_version"

// NewProvider returns the goose provider every registry store migrates
// with: the migrations of dialect (goose.DialectPostgres or
// goose.DialectSQLite3), bookkept in VersionTable, without goose's global
// registry or logging (the stores log what they applied), and with opts
// (a session locker, say) after those.
//
// Migrations may be applied out of order. Their versions are taken by
// branches developed side by side, so a release can bring a version lower
// than one a database already has (00002 after 00003 and 00004): goose then
// applies it, instead of refusing to start with "missing migrations". So a
// migration must not depend on any migration of a higher version.
func NewProvider(dialect goose.Dialect, db *sql.DB, opts ...goose.ProviderOption) (*goose.Provider, error) {
	var fsys fs.FS
	switch dialect {
	case goose.DialectPostgres:
		fsys = Postgres()
	case goose.DialectSQLite3:
		fsys = SQLite()
	default:
		return nil, fmt.Errorf("migrations: no migrations for dialect %q", dialect)
	}
	return goose.NewProvider(dialect, db, fsys, append([]goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(VersionTable),
		goose.WithLogger(goose.NopLogger()),
		goose.WithAllowOutofOrder(true),
	}, opts...)...)
}

// FS holds every migration: postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

// Postgres returns the PostgreSQL migrations, rooted at their directory as
// goose.NewProvider expects.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the SQLite migrations, rooted at their directory as
// goose.NewProvider expects.
func SQLite() fs.FS { return sub("sqlite") }

// sub returns the directory dir of FS. fs.Sub only fails on an invalid path
// name, and dir is one of the constants above, so a failure is a bug.
func sub(dir string) fs.FS {
	f, err := fs.Sub(FS, dir)
	if err != nil {
		panic("migrations: " + err.Error())
	}
	return f
}
