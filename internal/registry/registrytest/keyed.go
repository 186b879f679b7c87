package registrytest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/registry"
)

// basicAuth and headerAuth are valid inbound auth settings.
var (
	basicAuth  = registry.InboundAuth{Scheme: registry.AuthBasic, Hash: "auth-hash-basic"}
	headerAuth = registry.InboundAuth{Scheme: registry.AuthHeader, Headers: "X-Jamf-Secret,X-Other", Hash: "auth-hash-header"}
)

// ignoreUpdated leaves UpdatedAt out of a comparison.
var ignoreUpdated = cmpopts.IgnoreFields(registry.Installation{}, "UpdatedAt")

// rekeyed returns in's keyed values as a key rotation would make them
// again, each marked with tag.
func rekeyed(in registry.Installation, tag string) registry.Keyed {
	k := registry.Keyed{
		ChannelID:        in.ChannelID,
		WebhookURLSealed: "v2.sealed-webhook-" + tag,
		TokenHash:        "hash-" + tag,
		TokenSealed:      "v2.sealed-token-" + tag,
	}
	if in.InboundAuth.Enabled() {
		k.InboundAuthHash, k.InboundAuthSealed = "auth-hash-"+tag, "v2.sealed-auth-"+tag
	}
	return k
}

// withKeyed returns in holding k.
func withKeyed(in registry.Installation, k registry.Keyed) registry.Installation {
	in.ChannelID = k.ChannelID
	in.WebhookURLSealed = k.WebhookURLSealed
	in.TokenHash, in.TokenSealed = k.TokenHash, k.TokenSealed
	in.InboundAuth.Hash, in.InboundAuthSealed = k.InboundAuthHash, k.InboundAuthSealed
	return in
}

func testGetByChannel(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b := fixture("b")
	b.ChannelID = a.ChannelID // the same channel ID in another team
	b, _ = upsert(t, s, b)
	for _, want := range []registry.Installation{a, b} {
		got, err := s.GetByChannel(t.Context(), want.TeamID, want.ChannelID)
		if err != nil {
			t.Fatalf("GetByChannel(%s, %s): %v", want.TeamID, want.ChannelID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetByChannel(%s, %s) (-want +got):\n%s", want.TeamID, want.ChannelID, diff)
		}
	}
	manual := fixture("m")
	manual.TeamID = "" // channels added by hand have no team
	manual, _ = upsert(t, s, manual)
	if got, err := s.GetByChannel(t.Context(), "", manual.ChannelID); err != nil || got.ID != manual.ID {
		t.Errorf("GetByChannel(\"\", %s) = %s, %v; want %s", manual.ChannelID, got.ID, err, manual.ID)
	}
}

func testRekey(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	other, _ := upsert(t, s, fixture("b"))
	orig, err := s.SetInboundAuth(t.Context(), orig.ID, basicAuth, "v2.sealed-auth")
	if err != nil {
		t.Fatalf("SetInboundAuth: %v", err)
	}

	next := rekeyed(orig, "new")
	next.ChannelID = "manual-rekeyed"
	got, err := s.Rekey(t.Context(), orig.ID, orig.Keyed(), next)
	if err != nil {
		t.Fatalf("Rekey: %v", err)
	}
	want := withKeyed(orig, next)
	if diff := cmp.Diff(want, got, ignoreUpdated); diff != "" {
		t.Errorf("Rekey returned (-want +got):\n%s", diff)
	}
	if got.Keyed() != next {
		t.Errorf("Rekey stored %+v, want %+v", got.Keyed(), next)
	}
	checkNotBefore(t, "UpdatedAt", got.UpdatedAt, orig.UpdatedAt)
	checkPersisted(t, s, got)
	checkPersisted(t, s, other)
	if byHash, err := s.GetByTokenHash(t.Context(), next.TokenHash); err != nil || byHash.ID != orig.ID {
		t.Errorf("GetByTokenHash(new hash) = %s, %v; want %s", byHash.ID, err, orig.ID)
	}

	// A second rekey from the values read before the first is refused:
	// another write got there first.
	_, err = s.Rekey(t.Context(), orig.ID, orig.Keyed(), rekeyed(orig, "late"))
	if !errors.Is(err, registry.ErrChanged) {
		t.Errorf("Rekey from stale values: err = %v, want registry.ErrChanged", err)
	}
	checkPersisted(t, s, got)

	// Rekeying to the same values is a no-op that succeeds.
	again, err := s.Rekey(t.Context(), orig.ID, next, next)
	if err != nil || again.Keyed() != next {
		t.Errorf("Rekey to the same values = %+v, %v; want them kept", again.Keyed(), err)
	}

	invalid := next
	invalid.TokenHash = ""
	_, err = s.Rekey(t.Context(), orig.ID, next, invalid)
	checkRejected(t, "Rekey with an empty token hash", err)
	halfAuth := next
	halfAuth.InboundAuthSealed = ""
	_, err = s.Rekey(t.Context(), orig.ID, next, halfAuth)
	checkRejected(t, "Rekey with a hash but no sealed credentials", err)
	checkPersisted(t, s, again)
}

func testRekeyConflicts(t *testing.T, s registry.Store) {
	a, _ := upsert(t, s, fixture("a"))
	b := fixture("b")
	b.TeamID = a.TeamID
	b, _ = upsert(t, s, b)

	tests := []struct {
		name string
		next func() registry.Keyed
		want error
	}{
		{"token hash of another installation", func() registry.Keyed {
			k := rekeyed(a, "x")
			k.TokenHash = b.TokenHash
			return k
		}, registry.ErrTokenInUse},
		{"channel of another installation of the team", func() registry.Keyed {
			k := rekeyed(a, "y")
			k.ChannelID = b.ChannelID
			return k
		}, registry.ErrChannelInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Rekey(t.Context(), a.ID, a.Keyed(), tt.next())
			if !errors.Is(err, tt.want) {
				t.Errorf("Rekey: err = %v, want %v", err, tt.want)
			}
			checkPersisted(t, s, a)
			checkPersisted(t, s, b)
		})
	}
}

func testSetInboundAuth(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	if orig.InboundAuth.Enabled() || orig.InboundAuthSealed != "" || orig.Entry().InboundAuth.Enabled() {
		t.Fatalf("a new installation has inbound auth: %+v", orig.InboundAuth)
	}
	prev := orig
	steps := []struct {
		name   string
		auth   registry.InboundAuth
		sealed string
	}{
		{"basic", basicAuth, "v2.sealed-basic"},
		{"header", headerAuth, "v2.sealed-header"},
		{"cleared", registry.InboundAuth{}, ""},
		{"basic again", basicAuth, "v2.sealed-basic-2"},
	}
	for _, step := range steps {
		got, err := s.SetInboundAuth(t.Context(), orig.ID, step.auth, step.sealed)
		if err != nil {
			t.Fatalf("%s: SetInboundAuth: %v", step.name, err)
		}
		want := orig
		want.InboundAuth, want.InboundAuthSealed = step.auth, step.sealed
		if diff := cmp.Diff(want, got, ignoreUpdated); diff != "" {
			t.Errorf("%s: SetInboundAuth returned (-want +got):\n%s", step.name, diff)
		}
		if got.Entry().InboundAuth != step.auth {
			t.Errorf("%s: read model carries %+v, want %+v", step.name, got.Entry().InboundAuth, step.auth)
		}
		checkNotBefore(t, "UpdatedAt", got.UpdatedAt, prev.UpdatedAt)
		checkPersisted(t, s, got)
		prev = got
	}

	// A re-install of the channel keeps what Jamf Pro must send.
	again := fixture("b")
	again.TeamID, again.ChannelID = orig.TeamID, orig.ChannelID
	reinstalled, created := upsert(t, s, again)
	if created || reinstalled.InboundAuth != basicAuth || reinstalled.InboundAuthSealed != "v2.sealed-basic-2" {
		t.Errorf("re-install: created %v, inbound auth %+v %q; want the inbound auth kept", created,
			reinstalled.InboundAuth, reinstalled.InboundAuthSealed)
	}
}

func testSetInboundAuthRejectsInvalid(t *testing.T, s registry.Store) {
	orig, _ := upsert(t, s, fixture("a"))
	tests := []struct {
		name   string
		auth   registry.InboundAuth
		sealed string
	}{
		{"unknown scheme", registry.InboundAuth{Scheme: "digest", Hash: "h"}, "v2.sealed"},
		{"no hash", registry.InboundAuth{Scheme: registry.AuthBasic}, "v2.sealed"},
		{"no sealed credentials", basicAuth, ""},
		{"basic with headers", registry.InboundAuth{Scheme: registry.AuthBasic, Headers: "X-A", Hash: "h"}, "v2.sealed"},
		{"header without names", registry.InboundAuth{Scheme: registry.AuthHeader, Hash: "h"}, "v2.sealed"},
		{"sealed credentials without a scheme", registry.InboundAuth{}, "v2.sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.SetInboundAuth(t.Context(), orig.ID, tt.auth, tt.sealed)
			checkRejected(t, "SetInboundAuth", err)
			checkPersisted(t, s, orig)
		})
	}
}
