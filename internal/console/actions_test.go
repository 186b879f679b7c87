package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestActions runs every action as the member who installed the channel:
// each asks for confirmation first, then does what the `channels` and
// `dlq` commands do, and lands in the audit log.
func TestActions(t *testing.T) {
	env := newEnv(t)
	inst, hook := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "jamf", UserID: ada.UserID})
	b := env.signIn(t, ada)
	id := inst.ID
	wantChannel := func(t *testing.T, resp *http.Response, page string, notice string) {
		t.Helper()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("confirmed action = %d; want 303 back to the channel:\n%s", resp.StatusCode, page)
		}
		_, page = b.get(t, env.srv.URL+resp.Header.Get("Location"))
		if !strings.Contains(page, notice) {
			t.Errorf("channel page after the action lacks %q:\n%s", notice, page)
		}
	}

	// Every action asks first, and the confirmation changes nothing.
	for _, action := range []string{"rotate", "disable", "enable", "jamf-url", "test"} {
		resp, page := env.act(t, b, id, action, false, url.Values{"jamf_url": {"https://acme.jamfcloud.com"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="confirmed" value="yes"`) {
			t.Errorf("%s without confirmation = %d; want the confirmation page:\n%s", action, resp.StatusCode, page)
		}
	}
	if got, _ := env.store.Get(t.Context(), id); got.TokenHash != inst.TokenHash || got.Status != registry.StatusActive || got.JamfURL != "" {
		t.Fatalf("confirmation pages changed the channel: %+v", got)
	}
	if n := env.slack.Count(hook); n != 1 { // the welcome message only
		t.Fatalf("confirmation pages posted %d messages; want only the welcome", n)
	}

	// rotate: the new Jamf URL is shown once; the old token is gone from KV.
	resp, page := env.act(t, b, id, "rotate", true, nil)
	newURL := regexp.MustCompile(regexp.QuoteMeta(env.srv.URL+"/jamf/") + `[0-9a-f-]{36}`).FindString(page)
	if resp.StatusCode != http.StatusOK || newURL == "" || !strings.Contains(page, "Settings &gt; Global &gt; Webhooks") {
		t.Fatalf("rotate = %d; want the new Jamf URL with the Jamf Pro steps:\n%s", resp.StatusCode, page)
	}
	token := strings.TrimPrefix(newURL, env.srv.URL+"/jamf/")
	if en, _ := env.bus.GetInstallation(t.Context(), id); en.TokenHash != env.keys.HashToken(token) {
		t.Error("KV does not index the rotated token")
	}
	if _, page = b.get(t, env.srv.URL+"/admin/channels/"+id); strings.Contains(page, token) {
		t.Error("the channel page shows the Jamf URL again; want it shown once")
	}

	// disable with a reason, then enable.
	resp, page = env.act(t, b, id, "disable", true, url.Values{"reason": {"  maintenance   window "}})
	wantChannel(t, resp, page, "Disabled.")
	if en, _ := env.bus.GetInstallation(t.Context(), id); en.Status != registry.StatusDisabled || en.StatusReason != "maintenance window" {
		t.Errorf("after disable KV holds %s %q; want disabled, maintenance window", en.Status, en.StatusReason)
	}
	resp, page = env.act(t, b, id, "enable", true, nil)
	wantChannel(t, resp, page, "Enabled.")

	// jamf-url: a bad one is refused with the reason, a good one saved.
	resp, page = env.act(t, b, id, "jamf-url", true, url.Values{"jamf_url": {"ftp://jamf"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "must be an http or https address") {
		t.Errorf("jamf-url ftp:// = %d; want 400 saying why:\n%s", resp.StatusCode, page)
	}
	resp, page = env.act(t, b, id, "jamf-url", true, url.Values{"jamf_url": {"https://acme.jamfcloud.com/"}})
	wantChannel(t, resp, page, "Saved the Jamf Pro URL.")
	if en, _ := env.bus.GetInstallation(t.Context(), id); en.JamfURL != "https://acme.jamfcloud.com" {
		t.Errorf("KV Jamf Pro URL = %q", en.JamfURL)
	}

	// test: the message arrives and Slack's answer is shown, taken or not.
	resp, page = env.act(t, b, id, "test", true, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Test message posted") || !strings.Contains(page, "<code>200 ok</code>") {
		t.Errorf("test = %d; want Slack's ok shown:\n%s", resp.StatusCode, page)
	}
	msgs := env.slack.Messages(hook)
	if last := msgs[len(msgs)-1]; len(last.Attachments) == 0 || !strings.Contains(last.Attachments[0].Text, "sent by Ada Lovelace") {
		t.Errorf("last message in the channel = %+v; want the test message from Ada", last)
	}
	env.slack.Kill(hook, "channel_is_archived")
	_, page = env.act(t, b, id, "test", true, nil)
	if !strings.Contains(page, "Test message not posted") || !strings.Contains(page, "channel_is_archived") || strings.Contains(page, hook) {
		t.Errorf("test of an archived channel does not show Slack's answer (or shows the webhook URL):\n%s", page)
	}

	// dead letters: replay one, then drop the rest, each with its count.
	env.deadLetter(t, id, "ComputerAdded", `{"n":1}`)
	env.deadLetter(t, id, "JSSStartup", `{"n":2}`)
	env.deadLetter(t, id, "JSSShutdown", `{"n":3}`)
	dead, err := env.bus.ListDead(t.Context(), id)
	if err != nil || len(dead) != 3 {
		t.Fatalf("ListDead = %d, %v", len(dead), err)
	}
	_, page = b.get(t, env.srv.URL+"/admin/channels/"+id)
	for _, want := range []string{"ComputerAdded", "bad_message", "400 invalid_payload", "Replay all 3"} {
		if !strings.Contains(page, want) {
			t.Errorf("channel page lacks %q in its dead letters", want)
		}
	}
	seq := url.Values{"seq": {itoa(dead[0].Seq)}}
	if _, page = env.act(t, b, id, "replay", false, seq); !strings.Contains(page, "Replay 1 dead letter of #jamf?") {
		t.Errorf("replay confirmation does not give the count:\n%s", page)
	}
	resp, page = env.act(t, b, id, "replay", true, seq)
	wantChannel(t, resp, page, "Replayed 1 dead letter")
	if _, page = env.act(t, b, id, "drop", false, url.Values{"all": {"yes"}}); !strings.Contains(page, "Drop 2 dead letters of #jamf?") {
		t.Errorf("drop all confirmation does not give the count:\n%s", page)
	}
	resp, page = env.act(t, b, id, "drop", true, url.Values{"all": {"yes"}})
	wantChannel(t, resp, page, "Dropped 2 dead letters")
	if left, _ := env.bus.ListDead(t.Context(), id); len(left) != 0 {
		t.Errorf("%d dead letters left; want none", len(left))
	}
	_, page = env.act(t, b, id, "replay", false, seq)
	if !strings.Contains(page, "That dead letter is gone") {
		t.Errorf("replay of a replayed dead letter does not say it is gone:\n%s", page)
	}

	// The audit log has every change, newest first, with who and where.
	changes, err := env.store.ListAudit(t.Context(), registry.AuditFilter{TeamID: ada.TeamID})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		if c.UserID != ada.UserID || c.UserName != ada.Name || c.InstallationID != id || c.ChannelName != "#jamf" || c.Address != "127.0.0.1" {
			t.Errorf("audit entry %+v; want Ada, #jamf, from 127.0.0.1", c)
		}
		got = append(got, c.Action+": "+c.Detail)
	}
	want := []string{
		"drop: Dropped 2 dead letters.",
		"replay: Replayed 1 dead letter: #" + itoa(dead[0].Seq) + " ComputerAdded (bad_message).",
		"test: Test message: Slack answered 410 channel_is_archived.",
		"test: Test message: Slack answered 200 ok.",
		"jamf-url: Jamf Pro URL set to https://acme.jamfcloud.com.",
		"enable: Enabled.",
		"disable: Disabled: maintenance window",
		"rotate: New Jamf URL issued; the old one stopped working.",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
	_, page = b.get(t, env.srv.URL+"/admin/changes")
	if !strings.Contains(page, "Dropped 2 dead letters.") || !strings.Contains(page, "127.0.0.1") {
		t.Errorf("changes page does not show the audit log:\n%s", page)
	}
	env.checkNoSecrets(t, token, hook, strings.TrimPrefix(hook, env.slack.Issuer()))
}

// TestWhoMayChange lets the installer of a channel and the admins change
// it; another member of the workspace sees it read-only and is refused.
func TestWhoMayChange(t *testing.T) {
	env := newEnv(t)
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "jamf", UserID: ada.UserID})
	tests := []struct {
		name   string
		member slacktest.Member
		want   int
	}{
		{"installer", ada, http.StatusSeeOther},
		{"admin", admin, http.StatusSeeOther},
		{"other member", bob, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := env.signIn(t, tt.member)
			_, page := b.get(t, env.srv.URL+"/admin/channels/"+inst.ID)
			if canChange := strings.Contains(page, "/disable\""); canChange != (tt.want != http.StatusForbidden) {
				t.Errorf("channel page offers changes: %t; want %t", canChange, tt.want != http.StatusForbidden)
			}
			resp, page := env.act(t, b, inst.ID, "disable", true, nil)
			if resp.StatusCode != tt.want {
				t.Errorf("disable by %s = %d; want %d:\n%s", tt.name, resp.StatusCode, tt.want, page)
			}
			if _, err := env.in.Enable(t.Context(), inst.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
	if changes, _ := env.store.ListAudit(t.Context(), registry.AuditFilter{}); len(changes) != 2 {
		t.Errorf("audit log has %d entries; want 2 (the refused change is not one)", len(changes))
	}
}

// TestOtherWorkspaceIsNotFound answers 404 for another workspace's
// channel, the same as for a channel that does not exist, to every route.
func TestOtherWorkspaceIsNotFound(t *testing.T) {
	env := newEnv(t)
	theirs, _ := env.install(t, slacktest.Install{TeamID: eve.TeamID, ChannelName: "theirs", UserID: eve.UserID})
	b := env.signIn(t, ada)
	for _, id := range []string{theirs.ID, "00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		resp, page := b.get(t, env.srv.URL+"/admin/channels/"+id)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(page, "theirs") {
			t.Errorf("GET channel %s = %d; want 404 that names nothing:\n%s", id, resp.StatusCode, page)
		}
		resp, _ = env.act(t, b, id, "disable", true, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST disable %s = %d; want 404", id, resp.StatusCode)
		}
	}
	if got, _ := env.store.Get(t.Context(), theirs.ID); got.Status != registry.StatusActive {
		t.Error("another workspace's channel was changed")
	}
}

// TestCSRF refuses forms without this sign-in's CSRF token.
func TestCSRF(t *testing.T) {
	env := newEnv(t)
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "jamf", UserID: ada.UserID})
	b := env.signIn(t, ada)
	_, otherPage := env.signIn(t, ada).get(t, env.srv.URL+"/admin")
	tests := []struct {
		name string
		form url.Values
	}{
		{"missing", url.Values{"confirmed": {"yes"}}},
		{"garbage", url.Values{"confirmed": {"yes"}, "csrf": {"x.1.y"}}},
		{"another sign-in's", url.Values{"confirmed": {"yes"}, "csrf": {csrf(t, otherPage)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := b.post(t, env.srv.URL+"/admin/channels/"+inst.ID+"/disable", tt.form)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("disable with a %s CSRF token = %d; want 403", tt.name, resp.StatusCode)
			}
			resp, _ = b.post(t, env.srv.URL+"/admin/logout", tt.form)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("sign out with a %s CSRF token = %d; want 403", tt.name, resp.StatusCode)
			}
		})
	}
	if got, _ := env.store.Get(t.Context(), inst.ID); got.Status != registry.StatusActive {
		t.Error("a form without a valid CSRF token changed the channel")
	}
	// Signed out, a form is refused too, and nothing changes.
	resp, _ := browser(t).post(t, env.srv.URL+"/admin/channels/"+inst.ID+"/disable", url.Values{"confirmed": {"yes"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("disable signed out = %d; want 401", resp.StatusCode)
	}
	// With the token, sign out works and forgets the session.
	_, page := b.get(t, env.srv.URL+"/admin")
	resp, _ = b.post(t, env.srv.URL+"/admin/logout", url.Values{"csrf": {csrf(t, page)}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("sign out = %d; want 200", resp.StatusCode)
	}
	if resp, _ := b.get(t, env.srv.URL+"/admin"); resp.StatusCode != http.StatusFound {
		t.Errorf("GET /admin after signing out = %d; want 302 to the sign-in", resp.StatusCode)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
