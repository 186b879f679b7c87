package registrytest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// auditEntry returns a valid audit entry of team for installation.
func auditEntry(team, installation, action string) registry.AuditEntry {
	return registry.AuditEntry{
		TeamID:         team,
		InstallationID: installation,
		ChannelName:    "#jamf-" + strings.ToLower(team),
		UserID:         "U" + team,
		UserName:       "Ada Lovelace",
		Action:         action,
		Detail:         "Disabled: maintenance window",
		Address:        "192.0.2.7",
	}
}

// addAudit appends e and fails the test on error.
func addAudit(t *testing.T, s registry.Store, e registry.AuditEntry) registry.AuditEntry {
	t.Helper()
	got, err := s.AddAudit(t.Context(), e)
	if err != nil {
		t.Fatalf("AddAudit(%s): %v", e.Action, err)
	}
	return got
}

func testAuditAddAndList(t *testing.T, s registry.Store) {
	before := time.Now().Truncate(time.Microsecond)
	first := addAudit(t, s, auditEntry("TA", "inst-1", "disable"))
	after := time.Now()
	if first.ID == 0 {
		t.Error("AddAudit: ID = 0, want one set by the store")
	}
	if first.At.Before(before) || first.At.After(after) || !first.At.Equal(first.At.Truncate(time.Microsecond)) {
		t.Errorf("AddAudit: At = %v, want between %v and %v, in microseconds", first.At, before, after)
	}
	want := auditEntry("TA", "inst-1", "disable")
	want.ID, want.At = first.ID, first.At
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("AddAudit returned (-want +got):\n%s", diff)
	}

	given := auditEntry("TA", "inst-2", "rotate")
	given.At = time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 7200))
	second := addAudit(t, s, given)
	if want := time.Date(2031, 5, 6, 5, 8, 9, 123456000, time.UTC); !second.At.Equal(want) || second.At.Location() != time.UTC {
		t.Errorf("AddAudit with At: At = %v, want %v in UTC", second.At, want)
	}
	third := addAudit(t, s, auditEntry("TB", "inst-3", "enable"))
	fourth := addAudit(t, s, auditEntry("TA", "inst-1", "enable"))
	if first.ID >= second.ID || second.ID >= third.ID || third.ID >= fourth.ID {
		t.Errorf("IDs %d, %d, %d, %d do not increase with each entry", first.ID, second.ID, third.ID, fourth.ID)
	}

	tests := []struct {
		name   string
		filter registry.AuditFilter
		want   []registry.AuditEntry
	}{
		{"everything, newest first", registry.AuditFilter{}, []registry.AuditEntry{fourth, third, second, first}},
		{"one team", registry.AuditFilter{TeamID: "TA"}, []registry.AuditEntry{fourth, second, first}},
		{"one installation", registry.AuditFilter{InstallationID: "inst-1"}, []registry.AuditEntry{fourth, first}},
		{"team and installation", registry.AuditFilter{TeamID: "TB", InstallationID: "inst-1"}, []registry.AuditEntry{}},
		{"limit", registry.AuditFilter{TeamID: "TA", Limit: 2}, []registry.AuditEntry{fourth, second}},
		{"unknown team", registry.AuditFilter{TeamID: "TZ"}, []registry.AuditEntry{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListAudit(t.Context(), tt.filter)
			if err != nil {
				t.Fatalf("ListAudit: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListAudit(%+v) (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

func testAuditRejectsAndCuts(t *testing.T, s registry.Store) {
	_, err := s.AddAudit(t.Context(), registry.AuditEntry{TeamID: "TA", Action: " "})
	checkRejected(t, "AddAudit without action", err)

	long := auditEntry("TA", "inst-1", "disable")
	long.Detail = strings.Repeat("é", 5000)
	long.UserName = strings.Repeat("x", 1000) + "\xff"
	got := addAudit(t, s, long)
	if len(got.Detail) > 2048 || !strings.HasPrefix(long.Detail, got.Detail) || got.Detail == "" {
		t.Errorf("AddAudit: Detail of %d bytes stored as %d bytes; want it cut to 2048 on a rune boundary", len(long.Detail), len(got.Detail))
	}
	if len(got.UserName) != 256 {
		t.Errorf("AddAudit: UserName stored as %d bytes; want it cut to 256", len(got.UserName))
	}
	listed, err := s.ListAudit(t.Context(), registry.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	if diff := cmp.Diff([]registry.AuditEntry{got}, listed); diff != "" {
		t.Errorf("ListAudit after a rejected and a cut entry (-want +got):\n%s", diff)
	}
}
