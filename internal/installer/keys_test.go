package installer

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

const previousSecretKey = "installer-previous-secret-key-0123"

// TestReinstallRefusesCopiedToken pins the installer's side of finding 2:
// a row whose sealed token was copied from another installation does not
// show that installation's Jamf URL on re-install; it gets a new one.
func TestReinstallRefusesCopiedToken(t *testing.T) {
	env := newEnv(t)
	env.slack.AddCode("a", slacktest.Install{ChannelID: "CA", ChannelName: "a"})
	env.slack.AddCode("b", slacktest.Install{ChannelID: "CB", ChannelName: "b"})
	_, _, urlA := env.install(t, "a")
	_, _, urlB := env.install(t, "b")
	a, err := env.store.GetByChannel(t.Context(), slacktest.DefaultTeamID, "CA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.store.GetByChannel(t.Context(), slacktest.DefaultTeamID, "CB")
	if err != nil {
		t.Fatal(err)
	}
	forged := b.Keyed()
	forged.TokenSealed = a.TokenSealed
	if _, err := env.store.Rekey(t.Context(), b.ID, b.Keyed(), forged); err != nil {
		t.Fatal(err)
	}

	env.slack.AddCode("b2", slacktest.Install{ChannelID: "CB", ChannelName: "b"})
	status, page, again := env.install(t, "b2")
	if status != http.StatusOK || again == "" {
		t.Fatalf("re-install = %d:\n%s", status, page)
	}
	if again == urlA || again == urlB {
		t.Errorf("re-install shows %s; want a new Jamf URL, neither A's %s nor the unreadable %s", again, urlA, urlB)
	}
	env.checkKVMatchesSQL(t)
}

// legacyRow stores an installation the way a release before bound seals
// did, under keys: v1 seals, token hashed under keys.
func legacyRow(t *testing.T, env *testEnv, keys *secret.Keys, channel, webhook, token string) registry.Installation {
	t.Helper()
	inst, _, err := env.store.Upsert(t.Context(), registry.Installation{
		TeamID: "T1", ChannelID: channel, ChannelName: "#" + channel,
		WebhookURLSealed: keys.SealLegacy(webhook),
		TokenHash:        keys.HashToken(token), TokenSealed: keys.SealLegacy(token),
	})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestLegacySealsResealedOnWrite pins that seals made before seals were
// bound still open, and are sealed again, bound, on the next write.
func TestLegacySealsResealedOnWrite(t *testing.T) {
	env := newEnv(t)
	inst := legacyRow(t, env, env.keys, "legacy", hookA, "legacy-token-000000000")
	if _, err := env.in.setStatus(t.Context(), inst.ID, registry.StatusActive, ""); err != nil {
		t.Fatal(err)
	}
	got, err := env.store.Get(t.Context(), inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name    string
		purpose secret.Purpose
		sealed  string
		want    string
	}{
		{"webhook", secret.WebhookURL, got.WebhookURLSealed, hookA},
		{"token", secret.JamfToken, got.TokenSealed, "legacy-token-000000000"},
	} {
		plain, how, err := env.keys.Open(f.purpose, inst.ID, f.sealed)
		if err != nil || plain != f.want || how != secret.Current {
			t.Errorf("%s after a write opens as %q, %v, %v; want the value, bound under SECRET_KEY", f.name, plain, how, err)
		}
	}
	if got.TokenHash != inst.TokenHash {
		t.Error("the token hash changed: the Jamf URL would stop working")
	}
	env.checkKVMatchesSQL(t)
}

// rotatingEnv is an installer on env's store and bucket holding keys,
// logging into logs.
func (e *testEnv) withKeys(t *testing.T, keys *secret.Keys, logs *bytes.Buffer) *Installer {
	t.Helper()
	in, err := New(Options{
		Store: e.store, KV: e.kv, Keys: keys, BaseURL: e.srv.URL,
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Registerer: prometheus.NewRegistry(), Keyring: e.kv, UsedStates: e.kv,
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestReseal rotates SECRET_KEY over a registry sealed under the old key:
// everything opens during the rotation, Reseal makes it all current under
// the new key without changing a Jamf URL, a second Reseal changes
// nothing, and the published fingerprints follow.
func TestReseal(t *testing.T) {
	env := newEnv(t)
	ctx := t.Context()
	oldKeys, err := secret.New(previousSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	old := env.withKeys(t, oldKeys, &logs)
	legacy := legacyRow(t, env, oldKeys, "legacy", "https://hooks.slack.com/services/T1/B1/legacy", "legacy-token-000000000")
	added, err := old.addChannel(ctx, hookA, "#by-hand", "")
	if err != nil {
		t.Fatal(err)
	}
	authed, err := old.setInboundAuth(ctx, added.inst.ID, mustBasic(t, "jamf:s3cret-pass"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.PublishKeys(ctx); err != nil {
		t.Fatal(err)
	}

	newKeys, err := secret.New(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := secret.NewWithPrevious(testSecretKey, previousSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.withKeys(t, newKeys, &logs).CheckKeys(ctx); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("CheckKeys with the new key alone = %v; want ErrWrongKey", err)
	}
	in := env.withKeys(t, rotating, &logs)
	st, err := in.PublishKeys(ctx)
	if want := (KeyStatus{Installations: 2, Stale: 2, NeedPrevious: 2}); err != nil || st != want {
		t.Fatalf("PublishKeys during the rotation = %+v, %v; want %+v", st, err, want)
	}
	checkPublished(t, env.kv, bus.Fingerprints{Current: newKeys.Fingerprint(), Previous: oldKeys.Fingerprint()})

	// Adding the same webhook during the rotation finds its installation.
	again, err := in.addChannel(ctx, hookA, "#by-hand", "")
	if err != nil || again.created || again.inst.ID != added.inst.ID || again.token != added.token {
		t.Fatalf("add of the same webhook during the rotation = %+v, %v; want the same installation and Jamf URL", again, err)
	}

	var out bytes.Buffer
	if err := in.RunKeysCommand(ctx, []string{"reseal"}, &out); err != nil {
		t.Fatalf("keys reseal: %v\n%s", err, out.String())
	}
	// The add above was a write, so it sealed its installation again.
	if want := "Sealed again under SECRET_KEY: 1 of 2 installations (1 already were, 0 failed).\n" +
		"Nothing needs SECRET_KEY_PREVIOUS any more: remove it from every service.\n"; out.String() != want {
		t.Errorf("keys reseal printed:\n%s\nwant:\n%s", out.String(), want)
	}
	checkPublished(t, env.kv, bus.Fingerprints{Current: newKeys.Fingerprint()})
	env.checkKVMatchesSQL(t)

	current := env.withKeys(t, newKeys, &logs)
	st, err = current.CheckKeys(ctx)
	if want := (KeyStatus{Installations: 2, Current: 2}); err != nil || st != want {
		t.Errorf("CheckKeys with the new key alone after reseal = %+v, %v; want %+v", st, err, want)
	}
	for _, tc := range []struct {
		id, token string
	}{{legacy.ID, "legacy-token-000000000"}, {added.inst.ID, added.token}} {
		got, err := env.store.Get(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.TokenHash != newKeys.HashToken(tc.token) {
			t.Errorf("installation %s: token not hashed under the new key; its Jamf URL would not work", tc.id)
		}
		if got.ID == added.inst.ID {
			if got.ChannelID != manualChannelID(newKeys, hookA) {
				t.Errorf("channel key %s not made again under the new key", got.ChannelID)
			}
			if !newKeys.CheckInboundAuth(registry.BasicCredential("jamf", "s3cret-pass"), got.InboundAuth.Hash) ||
				got.InboundAuth.Hash == authed.InboundAuth.Hash {
				t.Error("inbound credentials not hashed again under the new key")
			}
		}
	}

	out.Reset()
	if err := current.RunKeysCommand(ctx, []string{"reseal"}, &out); err != nil {
		t.Fatalf("second keys reseal: %v", err)
	}
	if !strings.HasPrefix(out.String(), "Sealed again under SECRET_KEY: 0 of 2 installations (2 already were, 0 failed).") {
		t.Errorf("second keys reseal printed:\n%s", out.String())
	}
	for _, s := range []string{hookA, "s3cret-pass", "legacy-token-000000000", added.token, testSecretKey, previousSecretKey} {
		if strings.Contains(logs.String()+out.String(), s) {
			t.Errorf("logs or output show the secret %q", s)
		}
	}
}

// TestResealReportsUnreadable pins that an installation neither key opens
// is reported, not skipped silently, and that the others are still done.
func TestResealReportsUnreadable(t *testing.T) {
	env := newEnv(t)
	stranger, err := secret.New("a-key-nobody-holds-any-more-00000")
	if err != nil {
		t.Fatal(err)
	}
	legacyRow(t, env, env.keys, "ok", hookA, "token-ok-0000000000000")
	bad := legacyRow(t, env, stranger, "bad", hookB, "token-bad-000000000000")
	var out bytes.Buffer
	err = env.in.RunKeysCommand(t.Context(), []string{"reseal"}, &out)
	if err == nil || !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("keys reseal = %v; want an error naming %s", err, bad.ID)
	}
	if !strings.Contains(out.String(), "1 of 2 installations (0 already were, 1 failed)") || !strings.Contains(out.String(), "Keep SECRET_KEY_PREVIOUS") {
		t.Errorf("keys reseal printed:\n%s", out.String())
	}
}

func checkPublished(t *testing.T, kv *bus.Conn, want bus.Fingerprints) {
	t.Helper()
	got, ok, err := kv.KeyFingerprints(t.Context())
	if err != nil || !ok {
		t.Fatalf("KeyFingerprints = %v, %v", ok, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("published fingerprints (-want +got):\n%s", diff)
	}
}

func mustBasic(t *testing.T, v string) *inboundCredential {
	t.Helper()
	user, password, _ := strings.Cut(v, ":")
	c, err := basicCredential(user, password)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
