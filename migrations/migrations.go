// Package migrations embeds the SQL migrations of the channel registry, one
// directory per SQL dialect, in the format of github.com/pressly/goose/v3
// ("-- +goose Up" / "-- +goose Down"). Both dialects keep the same versions
// so that a schema change lands in PostgreSQL and SQLite together.
package migrations

import (
	"embed"
	"io/fs"
)

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
