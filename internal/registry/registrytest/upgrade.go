package registrytest

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/migrations"
)

// RunUpgrades checks that a store opens databases migrated only in part:
// by an older release (only the first migration applied), and by releases
// that brought a migration of a lower version after higher ones were
// applied (migration versions are taken by branches developed side by
// side). open must make a fresh database with every migration applied but
// the versions in skip, open the store on it (which applies the rest),
// fail the test unless nothing is left pending, and return the store; the
// subtest closes it. The store must then hold and read everything the
// latest schema holds.
func RunUpgrades(t *testing.T, open func(t *testing.T, skip []int64) registry.Store) {
	t.Helper()
	versions := migrationVersions(t)
	if len(versions) < 2 {
		t.Fatalf("only %d migrations: nothing to upgrade, the check would prove nothing", len(versions))
	}
	tests := []struct {
		name string
		skip []int64
	}{{"only the first migration applied", versions[1:]}}
	// Each version below the latest, missing while a later one is applied:
	// what a database migrated by an earlier build of the merged branches
	// holds when the migration of that version arrives.
	for _, v := range versions[1 : len(versions)-1] {
		tests = append(tests, struct {
			name string
			skip []int64
		}{fmt.Sprintf("%05d arrives after later ones were applied", v), []int64{v}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, tt.skip)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			checkLatestSchema(t, s)
		})
	}
}

// checkLatestSchema writes and reads back what each migration added: an
// installation, its delivery settings (00002), its inbound auth (00003), an
// audit entry (00004) and its event filter (00005).
func checkLatestSchema(t *testing.T, s registry.Store) {
	t.Helper()
	in, _ := upsert(t, s, fixture("u"))
	in, err := s.SetInboundAuth(t.Context(), in.ID, basicAuth, "v2.sealed-auth")
	if err != nil {
		t.Fatalf("SetInboundAuth: %v", err)
	}
	checkPersisted(t, s, in)
	if in, err = s.SetDelivery(t.Context(), in.ID, registry.DeliverySettings{Interval: time.Minute, Burst: 2}); err != nil {
		t.Fatalf("SetDelivery: %v", err)
	}
	checkPersisted(t, s, in)
	in, err = s.SetEventFilter(t.Context(), in.ID, registry.EventFilter{Events: []string{"ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}})
	if err != nil {
		t.Fatalf("SetEventFilter: %v", err)
	}
	checkPersisted(t, s, in)
	e := addAudit(t, s, auditEntry(in.TeamID, in.ID, "rotate"))
	got, err := s.ListAudit(t.Context(), registry.AuditFilter{TeamID: in.TeamID})
	if err != nil || len(got) != 1 || got[0].ID != e.ID {
		t.Errorf("ListAudit = %+v, %v; want the entry added", got, err)
	}
}

// migrationVersions returns the versions of the embedded migrations in
// order, read from their file names (00001_name.sql); the dialects keep the
// same versions.
func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	names, err := fs.Glob(migrations.SQLite(), "*.sql")
	if err != nil {
		t.Fatalf("list migrations: %v", err)
	}
	versions := make([]int64, 0, len(names))
	for _, name := range names {
		digits, _, _ := strings.Cut(name, "_")
		v, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: no version: %v", name, err)
		}
		versions = append(versions, v)
	}
	return versions
}
