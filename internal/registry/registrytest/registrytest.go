// Package registrytest is the conformance suite of registry.Store: every
// store (PostgreSQL, SQLite) runs the same Run, so they behave alike down to
// errors, ordering and times.
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// Run runs the conformance suite against the stores open returns. Every
// subtest calls open for a fresh, empty store, runs in parallel with the
// others and closes the store when it ends; open must not close it.
func Run(t *testing.T, open func(t *testing.T) registry.Store) {
	t.Helper()
	tests := []struct {
		name string
		test func(t *testing.T, s registry.Store)
	}{
		{"UpsertCreates", testUpsertCreates},
		{"UpsertWithID", testUpsertWithID},
		{"UpsertRejectsInvalid", testUpsertRejectsInvalid},
		{"ReinstallKeepsIdentity", testReinstallKeepsIdentity},
		{"ChannelKeyIncludesTeam", testChannelKeyIncludesTeam},
		{"GetByTokenHash", testGetByTokenHash},
		{"NotFound", testNotFound},
		{"ListOrder", testListOrder},
		{"SetStatus", testSetStatus},
		{"SetStatusRejectsInvalid", testSetStatusRejectsInvalid},
		{"RotateToken", testRotateToken},
		{"RotateTokenToHashInUse", testRotateTokenToHashInUse},
		{"SetJamfURL", testSetJamfURL},
		{"SetDelivery", testSetDelivery},
		{"SetEventFilter", testSetEventFilter},
		{"Ping", testPing},
		{"Delete", testDelete},
		{"DuplicateTokenHash", testDuplicateTokenHash},
		{"DuplicateID", testDuplicateID},
		{"ConcurrentUpserts", testConcurrentUpserts},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"CanceledContext", testCanceledContext},
		{"GetByChannel", testGetByChannel},
		{"Rekey", testRekey},
		{"RekeyConflicts", testRekeyConflicts},
		{"SetInboundAuth", testSetInboundAuth},
		{"SetInboundAuthRejectsInvalid", testSetInboundAuthRejectsInvalid},
		{"AuditAddAndList", testAuditAddAndList},
		{"AuditRejectsAndCuts", testAuditRejectsAndCuts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.test(t, s)
		})
	}
}

// ignoreTimes leaves CreatedAt and UpdatedAt out of a comparison; tests that
// do so check the times on their own.
var ignoreTimes = cmpopts.IgnoreFields(registry.Installation{}, "CreatedAt", "UpdatedAt")

// fixture returns a valid installation for a new channel, its fields derived
// from key so that two fixtures never share a unique value.
func fixture(key string) registry.Installation {
	return registry.Installation{
		TeamID:           "T" + strings.ToUpper(key),
		TeamName:         "Team " + key,
		ChannelID:        "C" + strings.ToUpper(key),
		ChannelName:      "#jamf-" + key,
		WebhookURLSealed: "v1.sealed-webhook-" + key,
		ConfigurationURL: "https://team-" + key + ".slack.com/services/B" + strings.ToUpper(key),
		InstallingUser:   "U" + strings.ToUpper(key),
		TokenHash:        "hash-" + key,
		TokenSealed:      "v1.sealed-token-" + key,
	}
}

// upsert stores in and fails the test on error.
func upsert(t *testing.T, s registry.Store, in registry.Installation) (registry.Installation, bool) {
	t.Helper()
	got, created, err := s.Upsert(t.Context(), in)
	if err != nil {
		t.Fatalf("Upsert(%s/%s): %v", in.TeamID, in.ChannelID, err)
	}
	return got, created
}

// get reads id and fails the test on error.
func get(t *testing.T, s registry.Store, id string) registry.Installation {
	t.Helper()
	got, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return got
}

// list reads every installation and fails the test on error.
func list(t *testing.T, s registry.Store) []registry.Installation {
	t.Helper()
	got, err := s.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

// ids returns the IDs of ins, in order.
func ids(ins []registry.Installation) []string {
	out := make([]string, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

// wantStored returns what a store should hold after creating in as id.
func wantStored(in registry.Installation, id string) registry.Installation {
	in.ID = id
	in.Status = registry.StatusActive
	in.StatusReason = ""
	return in
}

// checkPersisted fails the test unless the store holds exactly want.
func checkPersisted(t *testing.T, s registry.Store, want registry.Installation) {
	t.Helper()
	if diff := cmp.Diff(want, get(t, s, want.ID)); diff != "" {
		t.Errorf("Get(%s) differs from the returned row (-returned +stored):\n%s", want.ID, diff)
	}
}

// checkRejected fails the test unless err is a failure other than
// registry.ErrNotFound.
func checkRejected(t *testing.T, op string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one", op)
	}
	if errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("%s: got %v, want an error that is not registry.ErrNotFound", op, err)
	}
	t.Logf("%s: rejected as wanted: %v", op, err)
}

// checkNotFound fails the test unless err wraps registry.ErrNotFound.
func checkNotFound(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("%s: got error %v, want registry.ErrNotFound", op, err)
	}
}

// checkNotBefore fails the test if got is before min.
func checkNotBefore(t *testing.T, name string, got, min time.Time) {
	t.Helper()
	if got.Before(min) {
		t.Errorf("%s = %v, want at or after %v", name, got, min)
	}
}

func testUpsertCreates(t *testing.T, s registry.Store) {
	in := fixture("a")
	in.JamfURL = "https://acme.jamfcloud.com"
	// Status and reason of the input are not taken: a new installation is active.
	in.Status = registry.StatusDisabled
	in.StatusReason = "ignored"

	before := time.Now().Truncate(time.Microsecond)
	got, created := upsert(t, s, in)
	after := time.Now()

	if !created {
		t.Errorf("Upsert: created = false, want true")
	}
	if _, err := uuid.Parse(got.ID); err != nil {
		t.Errorf("Upsert: ID %q is not a UUID: %v", got.ID, err)
	}
	if diff := cmp.Diff(wantStored(in, got.ID), got, ignoreTimes); diff != "" {
		t.Errorf("Upsert returned (-want +got):\n%s", diff)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", got.CreatedAt, before, after)
	}
	if !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
	checkPersisted(t, s, got)

	other, created := upsert(t, s, fixture("b"))
	if !created {
		t.Errorf("Upsert of a second channel: created = false, want true")
	}
	if other.ID == got.ID {
		t.Errorf("two installations share ID %s", got.ID)
	}
}

func testUpsertWithID(t *testing.T, s registry.Store) {
	in := fixture("a")
	in.ID = uuid.NewString()
	got, created := upsert(t, s, in)
	if !created {
		t.Errorf("Upsert: created = false, want true")
	}
	if got.ID != in.ID {
		t.Errorf("Upsert: ID = %q, want the given %q", got.ID, in.ID)
	}
	checkPersisted(t, s, got)
}

func testUpsertRejectsInvalid(t *testing.T, s registry.Store) {
	tests := []struct {
		name   string
		mutate func(*registry.Installation)
	}{
		{"no channel id", func(in *registry.Installation) { in.ChannelID = "" }},
		{"no webhook url", func(in *registry.Installation) { in.WebhookURLSealed = "" }},
		{"no token hash", func(in *registry.Installation) { in.TokenHash = "" }},
		{"no sealed token", func(in *registry.Installation) { in.TokenSealed = "" }},
		{"id not a uuid", func(in *registry.Installation) { in.ID = "not-a-uuid" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fixture("a")
			tt.mutate(&in)
			_, _, err := s.Upsert(t.Context(), in)
			checkRejected(t, "Upsert", err)
		})
	}
	if got := list(t, s); len(got) != 0 {
		t.Errorf("List after rejected upserts = %v, want none", ids(got))
	}
}

func testReinstallKeepsIdentity(t *testing.T, s registry.Store) {
	first := fixture("a")
	first.JamfURL = "https://acme.jamfcloud.com"
	orig, _ := upsert(t, s, first)
	disabled, err := s.SetStatus(t.Context(), orig.ID, registry.StatusDisabled, "channel_not_found")
	if err != nil {
		t.Fatalf("SetStatus: %v", err)
	}

	// The same team and channel installed again: new names, new webhook,
	// a new token and Jamf URL that must not replace the old ones, and an ID
	// that must be ignored.
	again := fixture("b")
	again.ID = uuid.NewString()
	again.TeamID, again.ChannelID = first.TeamID, first.ChannelID
	again.JamfURL = "https://other.jamfcloud.com"
	got, created := upsert(t, s, again)

	if created {
		t.Errorf("Upsert of an installed channel: created = true, want false")
	}
	want := orig
	want.TeamName = again.TeamName
	want.ChannelName = again.ChannelName
	want.WebhookURLSealed = again.WebhookURLSealed
	want.ConfigurationURL = again.ConfigurationURL
	want.InstallingUser = again.InstallingUser
	want.Status = registry.StatusActive
	want.StatusReason = ""
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
		t.Errorf("re-install returned (-want +got):\n%s", diff)
	}
	checkNotBefore(t, "UpdatedAt", got.UpdatedAt, disabled.UpdatedAt)
	checkPersisted(t, s, got)

	if _, err := s.GetByTokenHash(t.Context(), again.TokenHash); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetByTokenHash(re-install token): got error %v, want registry.ErrNotFound (the old token stays)", err)
	}
	if _, err := s.Get(t.Context(), again.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get(re-install ID): got error %v, want registry.ErrNotFound (the old ID stays)", err)
	}
	if diff := cmp.Diff([]string{orig.ID}, ids(list(t, s))); diff != "" {
		t.Errorf("List IDs (-want +got):\n%s", diff)
	}
}

func testChannelKeyIncludesTeam(t *testing.T, s registry.Store) {
	a := fixture("a")
	b := fixture("b")
	b.ChannelID = a.ChannelID
	gotA, _ := upsert(t, s, a)
	gotB, created := upsert(t, s, b)
	if !created {
		t.Errorf("Upsert of the same channel ID in another team: created = false, want true")
	}
	if gotA.ID == gotB.ID {
		t.Errorf("two teams' channels share ID %s", gotA.ID)
	}
	if got := list(t, s); len(got) != 2 {
		t.Errorf("List has %d installations, want 2", len(got))
	}
}

func testGetByTokenHash(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b, _ := upsert(t, s, fixture("b"))
	for _, want := range []registry.Installation{a, b} {
		got, err := s.GetByTokenHash(t.Context(), want.TokenHash)
		if err != nil {
			t.Fatalf("GetByTokenHash(%s): %v", want.TokenHash, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetByTokenHash(%s) (-want +got):\n%s", want.TokenHash, diff)
		}
	}
}

func testNotFound(t *testing.T, s registry.Store) {
	// One installation exists so that a store cannot pass by being empty.
	existing, _ := upsert(t, s, fixture("a"))
	missing := uuid.NewString()
	for _, id := range []string{missing, "not-a-uuid", ""} {
		tests := []struct {
			name string
			op   func(ctx context.Context) error
		}{
			{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, id); return err }},
			{"SetStatus", func(ctx context.Context) error {
				_, err := s.SetStatus(ctx, id, registry.StatusDisabled, "gone")
				return err
			}},
			{"RotateToken", func(ctx context.Context) error {
				_, err := s.RotateToken(ctx, id, "hash-new", "v1.sealed-token-new")
				return err
			}},
			{"SetJamfURL", func(ctx context.Context) error {
				_, err := s.SetJamfURL(ctx, id, "https://acme.jamfcloud.com")
				return err
			}},
			{"Delete", func(ctx context.Context) error { return s.Delete(ctx, id) }},
			{"Rekey", func(ctx context.Context) error {
				_, err := s.Rekey(ctx, id, existing.Keyed(), rekeyed(existing, "new"))
				return err
			}},
			{"SetInboundAuth", func(ctx context.Context) error {
				_, err := s.SetInboundAuth(ctx, id, basicAuth, "v2.sealed-auth")
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s(%q)", tt.name, id), func(t *testing.T) {
				checkNotFound(t, tt.name, tt.op(t.Context()))
			})
		}
	}
	for _, hash := range []string{"hash-missing", ""} {
		_, err := s.GetByTokenHash(t.Context(), hash)
		checkNotFound(t, fmt.Sprintf("GetByTokenHash(%q)", hash), err)
	}
	for _, key := range [][2]string{{existing.TeamID, "C-MISSING"}, {"T-MISSING", existing.ChannelID}, {"", ""}} {
		_, err := s.GetByChannel(t.Context(), key[0], key[1])
		checkNotFound(t, fmt.Sprintf("GetByChannel(%q, %q)", key[0], key[1]), err)
	}
	checkPersisted(t, s, existing)
}

func testListOrder(t *testing.T, s registry.Store) {
	if got := list(t, s); len(got) != 0 {
		t.Fatalf("List of an empty store = %v, want none", ids(got))
	}
	// IDs descend while creation times ascend, so a store that orders by ID
	// first fails.
	givenIDs := []string{
		"ffffffff-0000-4000-8000-000000000000",
		"88888888-0000-4000-8000-000000000000",
		"11111111-0000-4000-8000-000000000000",
	}
	var want []registry.Installation
	for i, id := range givenIDs {
		if i > 0 {
			time.Sleep(2 * time.Millisecond) // distinct creation times
		}
		in := fixture(fmt.Sprintf("n%d", i))
		in.ID = id
		got, _ := upsert(t, s, in)
		want = append(want, got)
	}
	// Re-installing the first channel keeps its creation time and its place.
	again := fixture("n0")
	again.TeamName = "Renamed"
	want[0], _ = upsert(t, s, again)

	if diff := cmp.Diff(want, list(t, s)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testSetStatus(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	tests := []struct {
		name       string
		status     registry.Status
		reason     string
		wantReason string
	}{
		{"disable with reason", registry.StatusDisabled, "channel_not_found", "channel_not_found"},
		{"change reason", registry.StatusDisabled, "no_service", "no_service"},
		{"enable clears reason", registry.StatusActive, "ignored", ""},
		{"disable without reason", registry.StatusDisabled, "", ""},
	}
	prev := orig
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.SetStatus(t.Context(), orig.ID, tt.status, tt.reason)
			if err != nil {
				t.Fatalf("SetStatus: %v", err)
			}
			want := orig
			want.Status, want.StatusReason = tt.status, tt.wantReason
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
				t.Errorf("SetStatus returned (-want +got):\n%s", diff)
			}
			checkNotBefore(t, "UpdatedAt", got.UpdatedAt, prev.UpdatedAt)
			checkPersisted(t, s, got)
			prev = got
		})
	}
}

func testSetStatusRejectsInvalid(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	for _, status := range []registry.Status{"", "paused", "ACTIVE"} {
		t.Run(fmt.Sprintf("%q", status), func(t *testing.T) {
			_, err := s.SetStatus(t.Context(), orig.ID, status, "reason")
			checkRejected(t, "SetStatus", err)
			checkPersisted(t, s, orig)
		})
	}
}

func testRotateToken(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	other, _ := upsert(t, s, fixture("b"))

	got, err := s.RotateToken(t.Context(), orig.ID, "hash-rotated", "v1.sealed-token-rotated")
	if err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	want := orig
	want.TokenHash, want.TokenSealed = "hash-rotated", "v1.sealed-token-rotated"
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
		t.Errorf("RotateToken returned (-want +got):\n%s", diff)
	}
	checkNotBefore(t, "UpdatedAt", got.UpdatedAt, orig.UpdatedAt)
	checkPersisted(t, s, got)

	if _, err := s.GetByTokenHash(t.Context(), orig.TokenHash); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetByTokenHash(old hash): got error %v, want registry.ErrNotFound", err)
	}
	byNew, err := s.GetByTokenHash(t.Context(), "hash-rotated")
	if err != nil {
		t.Fatalf("GetByTokenHash(new hash): %v", err)
	}
	if byNew.ID != orig.ID {
		t.Errorf("GetByTokenHash(new hash).ID = %s, want %s", byNew.ID, orig.ID)
	}
	checkPersisted(t, s, other)

	_, err = s.RotateToken(t.Context(), orig.ID, "", "v1.sealed-token-empty")
	checkRejected(t, "RotateToken with an empty hash", err)
	checkPersisted(t, s, got)
}

func testRotateTokenToHashInUse(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b, _ := upsert(t, s, fixture("b"))
	_, err := s.RotateToken(t.Context(), a.ID, b.TokenHash, "v1.sealed-token-stolen")
	checkRejected(t, "RotateToken to another installation's hash", err)
	if !errors.Is(err, registry.ErrTokenInUse) {
		t.Errorf("RotateToken to a taken hash: err = %v; want registry.ErrTokenInUse", err)
	}
	checkPersisted(t, s, a)
	checkPersisted(t, s, b)
}

func testSetJamfURL(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	prev := orig
	for _, jamfURL := range []string{"https://acme.jamfcloud.com", "https://jamf.acme.example:8443", ""} {
		t.Run(fmt.Sprintf("%q", jamfURL), func(t *testing.T) {
			got, err := s.SetJamfURL(t.Context(), orig.ID, jamfURL)
			if err != nil {
				t.Fatalf("SetJamfURL: %v", err)
			}
			want := orig
			want.JamfURL = jamfURL
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
				t.Errorf("SetJamfURL returned (-want +got):\n%s", diff)
			}
			checkNotBefore(t, "UpdatedAt", got.UpdatedAt, prev.UpdatedAt)
			checkPersisted(t, s, got)
			prev = got
		})
	}
}

func testSetDelivery(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	settings := []registry.DeliverySettings{
		{Interval: 500 * time.Millisecond, Burst: 5, Digests: registry.DigestsOn, DigestAfter: 10 * time.Second},
		{Interval: time.Minute, Digests: registry.DigestsOff},
		{},
	}
	for _, d := range settings {
		t.Run(fmt.Sprintf("%+v", d), func(t *testing.T) {
			got, err := s.SetDelivery(t.Context(), orig.ID, d)
			if err != nil {
				t.Fatalf("SetDelivery: %v", err)
			}
			want := orig
			want.Delivery = d
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
				t.Errorf("SetDelivery returned (-want +got):\n%s", diff)
			}
			checkPersisted(t, s, got)
		})
	}
	t.Run("reinstall keeps the settings", func(t *testing.T) {
		d := registry.DeliverySettings{Interval: 2 * time.Second, Burst: 1}
		if _, err := s.SetDelivery(t.Context(), orig.ID, d); err != nil {
			t.Fatal(err)
		}
		again, _ := upsert(t, s, fixture("a"))
		if again.Delivery != d {
			t.Errorf("after a reinstall Delivery = %+v, want %+v", again.Delivery, d)
		}
	})
	for _, bad := range []registry.DeliverySettings{
		{Interval: time.Microsecond}, {Burst: -1}, {Burst: 1000}, {Digests: "sometimes"}, {DigestAfter: time.Millisecond},
	} {
		if _, err := s.SetDelivery(t.Context(), orig.ID, bad); err == nil {
			t.Errorf("SetDelivery(%+v) succeeded, want it refused", bad)
		}
	}
	_, err := s.SetDelivery(t.Context(), "7c2b0c3e-0000-4000-8000-000000000000", registry.DeliverySettings{})
	checkNotFound(t, "SetDelivery of a missing installation", err)
}

func testSetEventFilter(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	filters := []registry.EventFilter{
		{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}},
		{FailuresOnly: []string{"ComputerPatchPolicyCompleted", "ComputerPolicyFinished"}},
		{Events: []string{"JSSShutdown"}},
		{},
	}
	for _, f := range filters {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			got, err := s.SetEventFilter(t.Context(), orig.ID, f)
			if err != nil {
				t.Fatalf("SetEventFilter: %v", err)
			}
			want := orig
			want.Filter = f
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")); diff != "" {
				t.Errorf("SetEventFilter returned (-want +got):\n%s", diff)
			}
			checkNotBefore(t, "UpdatedAt", got.UpdatedAt, orig.UpdatedAt)
			checkPersisted(t, s, got)
		})
	}
	t.Run("reinstall keeps the filter", func(t *testing.T) {
		f := registry.EventFilter{Events: []string{"ComputerAdded"}}
		if _, err := s.SetEventFilter(t.Context(), orig.ID, f); err != nil {
			t.Fatal(err)
		}
		again, _ := upsert(t, s, fixture("a"))
		if !again.Filter.Equal(f) {
			t.Errorf("after a reinstall Filter = %+v, want %+v", again.Filter, f)
		}
		if listed := list(t, s); len(listed) != 1 || !listed[0].Filter.Equal(f) {
			t.Errorf("List = %+v; want the one installation with its filter", listed)
		}
	})
	for _, bad := range []registry.EventFilter{
		{Events: []string{"b", "a"}}, {Events: []string{"a,b"}}, {Events: []string{""}},
		{Events: []string{"ComputerAdded"}, FailuresOnly: []string{"ComputerPolicyFinished"}},
	} {
		if _, err := s.SetEventFilter(t.Context(), orig.ID, bad); err == nil {
			t.Errorf("SetEventFilter(%+v) succeeded, want it refused", bad)
		}
	}
	_, err := s.SetEventFilter(t.Context(), "7c2b0c3e-0000-4000-8000-000000000000", registry.EventFilter{})
	checkNotFound(t, "SetEventFilter of a missing installation", err)
}

func testPing(t *testing.T, s registry.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func testDelete(t *testing.T, s registry.Store) {
	gone, _ := upsert(t, s, fixture("a"))
	kept, _ := upsert(t, s, fixture("b"))

	if err := s.Delete(t.Context(), gone.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Get(t.Context(), gone.ID)
	checkNotFound(t, "Get after Delete", err)
	_, err = s.GetByTokenHash(t.Context(), gone.TokenHash)
	checkNotFound(t, "GetByTokenHash after Delete", err)
	checkNotFound(t, "second Delete", s.Delete(t.Context(), gone.ID))
	if diff := cmp.Diff([]registry.Installation{kept}, list(t, s)); diff != "" {
		t.Errorf("List after Delete (-want +got):\n%s", diff)
	}

	// Installing the channel again makes a new installation.
	again, created := upsert(t, s, fixture("a"))
	if !created {
		t.Errorf("Upsert after Delete: created = false, want true")
	}
	if again.ID == gone.ID {
		t.Errorf("Upsert after Delete reused ID %s", gone.ID)
	}
}

func testDuplicateTokenHash(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b := fixture("b")
	b.TokenHash = a.TokenHash
	_, _, err := s.Upsert(t.Context(), b)
	checkRejected(t, "Upsert with another installation's token hash", err)
	if !errors.Is(err, registry.ErrTokenInUse) {
		t.Errorf("Upsert with a taken token hash: err = %v; want registry.ErrTokenInUse", err)
	}
	if diff := cmp.Diff([]registry.Installation{a}, list(t, s)); diff != "" {
		t.Errorf("List after rejected upsert (-want +got):\n%s", diff)
	}
}

func testDuplicateID(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b := fixture("b")
	b.ID = a.ID
	_, _, err := s.Upsert(t.Context(), b)
	checkRejected(t, "Upsert of another channel with a taken ID", err)
	if !errors.Is(err, registry.ErrIDInUse) {
		t.Errorf("Upsert with a taken ID: err = %v; want registry.ErrIDInUse", err)
	}
	if diff := cmp.Diff([]registry.Installation{a}, list(t, s)); diff != "" {
		t.Errorf("List after rejected upsert (-want +got):\n%s", diff)
	}
}

func testConcurrentUpserts(t *testing.T, s registry.Store) {
	const n = 16
	type result struct {
		in      registry.Installation
		got     registry.Installation
		created bool
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		// Every goroutine installs the same channel with its own token, as
		// concurrent "Add to Slack" clicks would.
		in := fixture(fmt.Sprintf("g%d", i))
		in.TeamID, in.ChannelID = "TSHARED", "CSHARED"
		results[i].in = in
		wg.Go(func() {
			<-start
			results[i].got, results[i].created, results[i].err = s.Upsert(t.Context(), in)
		})
	}
	close(start)
	wg.Wait()

	var winner *result
	for i := range results {
		r := &results[i]
		if r.err != nil {
			t.Fatalf("concurrent Upsert %d: %v", i, r.err)
		}
		if r.created {
			if winner != nil {
				t.Fatalf("concurrent Upserts %s and %s both report created", winner.got.ID, r.got.ID)
			}
			winner = r
		}
	}
	if winner == nil {
		t.Fatalf("no concurrent Upsert reports created")
	}
	for i, r := range results {
		if r.got.ID != winner.got.ID || r.got.TokenHash != winner.in.TokenHash {
			t.Errorf("Upsert %d returned ID %s token hash %s, want the first's %s and %s",
				i, r.got.ID, r.got.TokenHash, winner.got.ID, winner.in.TokenHash)
		}
	}
	got := list(t, s)
	if len(got) != 1 {
		t.Fatalf("List after concurrent upserts has %d installations, want 1", len(got))
	}
	if got[0].ID != winner.got.ID || got[0].TokenHash != winner.in.TokenHash || !got[0].CreatedAt.Equal(winner.got.CreatedAt) {
		t.Errorf("stored installation %s (token hash %s, created %v), want %s (%s, %v)",
			got[0].ID, got[0].TokenHash, got[0].CreatedAt, winner.got.ID, winner.in.TokenHash, winner.got.CreatedAt)
	}
}

func testTimesRoundTrip(t *testing.T, s registry.Store) {
	created, _ := upsert(t, s, fixture("a"))
	time.Sleep(2 * time.Millisecond) // so the update lands at a later time
	updated, err := s.SetJamfURL(t.Context(), created.ID, "https://acme.jamfcloud.com")
	if err != nil {
		t.Fatalf("SetJamfURL: %v", err)
	}
	if !updated.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("CreatedAt after an update = %v, want %v", updated.CreatedAt, created.CreatedAt)
	}
	if !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("UpdatedAt after an update = %v, want after %v", updated.UpdatedAt, created.UpdatedAt)
	}

	// What a store returns is what it reads back: times carry no more
	// precision than it keeps (microseconds) and compare equal after a read.
	for name, tm := range map[string]time.Time{"CreatedAt": updated.CreatedAt, "UpdatedAt": updated.UpdatedAt} {
		if !tm.Equal(tm.Truncate(time.Microsecond)) {
			t.Errorf("%s = %v has sub-microsecond precision", name, tm)
		}
	}
	checkPersisted(t, s, updated)
	byHash, err := s.GetByTokenHash(t.Context(), updated.TokenHash)
	if err != nil {
		t.Fatalf("GetByTokenHash: %v", err)
	}
	if diff := cmp.Diff(updated, byHash); diff != "" {
		t.Errorf("GetByTokenHash (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]registry.Installation{updated}, list(t, s)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testCanceledContext(t *testing.T, s registry.Store) {
	existing, _ := upsert(t, s, fixture("a"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		op   func() error
	}{
		{"Upsert", func() error { _, _, err := s.Upsert(ctx, fixture("b")); return err }},
		{"Get", func() error { _, err := s.Get(ctx, existing.ID); return err }},
		{"GetByTokenHash", func() error { _, err := s.GetByTokenHash(ctx, existing.TokenHash); return err }},
		{"List", func() error { _, err := s.List(ctx); return err }},
		{"SetStatus", func() error {
			_, err := s.SetStatus(ctx, existing.ID, registry.StatusDisabled, "x")
			return err
		}},
		{"RotateToken", func() error { _, err := s.RotateToken(ctx, existing.ID, "hash-x", "v1.x"); return err }},
		{"SetJamfURL", func() error { _, err := s.SetJamfURL(ctx, existing.ID, "https://x.example"); return err }},
		{"Delete", func() error { return s.Delete(ctx, existing.ID) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: got error %v, want context.Canceled", tt.name, err)
			}
		})
	}
	checkPersisted(t, s, existing)
	if got := list(t, s); len(got) != 1 {
		t.Errorf("List has %d installations after canceled calls, want 1", len(got))
	}
}
