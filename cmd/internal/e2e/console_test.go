package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestConsoleInBrowser drives the Slack admin's console in headless
// Chromium against the all-in-one: Ada signs in through the fake Slack's
// OpenID Connect, sees her workspace's channels and no other, sends a test
// message, replays a dead letter and sees it arrive, and is refused a
// change on a channel she did not install. With -screenshots DIR it saves
// a screenshot of each page there (docs/ holds the README's).
func TestConsoleInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	fake := slacktest.New(t)
	env, base := allInOneEnv(t)
	authorizeURL := withSlackApp(env, fake)
	env["SLACK_OIDC_ISSUER"] = fake.Issuer()
	srv := startAllInOne(t, env)
	waitReady(t, srv, base+"/readyz")

	acme := func(channel, user string) slacktest.Install {
		return slacktest.Install{TeamID: "T0ACME", TeamName: "Acme", ChannelName: channel, UserID: user}
	}
	jamfURL, alerts := installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-alerts", "U0ADA"))
	installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-patching", "U0BOB"))
	installThroughSlackAs(t, fake, base, authorizeURL, slacktest.Install{TeamID: "T0OTHER", TeamName: "Other Corp", ChannelName: "other-secret", UserID: "U0EVE"})
	fake.WaitFor(t, alerts, 1, deliveryTimeout) // the welcome

	// An event Slack refuses becomes a dead letter; the channel stays.
	fake.Script(alerts, slacktest.BadPayload())
	body, err := os.ReadFile(filepath.Join("testdata", "samples", "ComputerAdded.json"))
	if err != nil {
		t.Fatal(err)
	}
	postEvent(t, jamfURL, "application/json", body)

	// Signing in goes through Slack and back to the channels page.
	fake.SetMember(slacktest.Member{UserID: "U0ADA", TeamID: "T0ACME", TeamName: "Acme", Name: "Ada Lovelace"})
	run(t, ctx, "sign in", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS("table.channels")))
	at := value(t, ctx, "read the address", chromedp.Location())
	if at != base+"/admin" {
		t.Errorf("after signing in the browser is at %s; want %s/admin", at, base)
	}

	// The dead letter shows, its channel first, once the dispatcher parked it.
	waitFor(t, ctx, "the dead letter on the channels page", base+"/admin", "table.channels", `<tr class="attention">`)
	text := pageText(t, ctx)
	if first := strings.Index(text, "#jamf-alerts"); first < 0 || first > strings.Index(text, "#jamf-patching") {
		t.Errorf("#jamf-alerts, with a dead letter, is not listed first:\n%s", text)
	}
	if strings.Contains(text, "other-secret") || strings.Contains(text, "Other Corp") {
		t.Errorf("Ada sees the other workspace's channel:\n%s", text)
	}
	wantText(t, ctx, "channels page", "#jamf-alerts", "#jamf-patching", "read-only", "Ada Lovelace")
	screenshot(t, ctx, "console-channels")
	phone(t, ctx, "console-channels-phone")

	// The channel page lists the dead letter with Slack's answer.
	run(t, ctx, "open #jamf-alerts", chromedp.Click(`//a[text()="#jamf-alerts"]`), chromedp.WaitVisible(chromedp.CSS("table.dead")))
	wantText(t, ctx, "channel page", "Dead letters", "ComputerAdded", "bad_message", "400 invalid_payload", "Send a test message")
	screenshot(t, ctx, "console-channel")

	// Send a test message: confirm, then Slack's answer.
	run(t, ctx, "send a test message", chromedp.Click(`//button[starts-with(text(),"Send a test message")]`),
		chromedp.WaitVisible(chromedp.ID("confirm")))
	wantText(t, ctx, "confirmation", "Send a test message to #jamf-alerts?")
	screenshot(t, ctx, "console-confirm")
	run(t, ctx, "confirm", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(`//h1[starts-with(text(),"Test message")]`))
	wantText(t, ctx, "test result", "Test message posted", "200 ok")
	screenshot(t, ctx, "console-test-message")
	msgs := fake.WaitFor(t, alerts, 2, deliveryTimeout)
	if a := msgs[1].Attachments; len(a) == 0 || !strings.Contains(a[0].Text, "sent by Ada Lovelace") {
		t.Errorf("second message in #jamf-alerts = %+v; want Ada's test message", msgs[1])
	}

	// Replay the dead letter and see it arrive.
	run(t, ctx, "back to the channel", chromedp.Click(`//a[text()="Back to the channel"]`), chromedp.WaitVisible(chromedp.CSS("table.dead")))
	run(t, ctx, "replay", chromedp.Click(`//table[contains(@class,"dead")]//button[starts-with(text(),"Replay")]`),
		chromedp.WaitVisible(chromedp.ID("confirm")))
	wantText(t, ctx, "replay confirmation", "Replay 1 dead letter of #jamf-alerts?")
	run(t, ctx, "confirm the replay", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(`//div[@role="status"]`))
	wantText(t, ctx, "after the replay", "Replayed 1 dead letter")
	msgs = fake.WaitFor(t, alerts, 3, deliveryTimeout)
	if a := msgs[2].Attachments; len(a) == 0 || a[0].Title != "Computer Added" {
		t.Errorf("third message in #jamf-alerts = %+v; want the replayed Computer Added", msgs[2])
	}

	// Rotate the Jamf URL: the new one is shown once.
	run(t, ctx, "rotate", chromedp.Click(`//button[starts-with(text(),"Rotate")]`), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("jamf-url")))
	wantText(t, ctx, "rotated", "New Jamf URL for #jamf-alerts", "Settings > Global > Webhooks")
	screenshot(t, ctx, "console-rotated")

	// Bob's channel is read-only for Ada, and a change is refused.
	run(t, ctx, "channels", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS("table.channels")),
		chromedp.Click(`//a[text()="#jamf-patching"]`), chromedp.WaitVisible(`//h1[starts-with(text(),"#jamf-patching")]`))
	text = wantText(t, ctx, "Bob's channel", "You can see this channel but not change it")
	if strings.Contains(text, "Send a test message…") || strings.Contains(text, "Disable…") {
		t.Errorf("Ada is offered changes on Bob's channel:\n%s", text)
	}
	id := value(t, ctx, "read the channel's address", chromedp.Location())
	id = id[strings.LastIndexByte(id, '/')+1:]
	// The form Ada is not offered, posted anyway with her CSRF token.
	value(t, ctx, "post a change anyway", chromedp.Evaluate[bool](`(function(){
		var f = document.createElement("form");
		f.method = "post";
		f.action = "/admin/channels/`+id+`/disable";
		f.innerHTML = '<input name="csrf" value="' + document.querySelector('input[name=csrf]').value + '"><input name="confirmed" value="yes">';
		document.body.appendChild(f);
		f.submit();
		return true;
	})()`))
	run(t, ctx, "refused", chromedp.WaitVisible(`//h1[text()="You cannot change this channel"]`))
	screenshot(t, ctx, "console-refused")

	// The changes page has all of Ada's changes.
	run(t, ctx, "changes", chromedp.Navigate(base+"/admin/changes"), chromedp.WaitVisible(chromedp.CSS("table.changes")))
	wantText(t, ctx, "changes page", "Test message: Slack answered 200 ok.", "Replayed 1 dead letter", "New Jamf URL issued")
	screenshot(t, ctx, "console-changes")

	run(t, ctx, "sign out", chromedp.Click(`//button[text()="Sign out"]`), chromedp.WaitVisible(`//h1[text()="Signed out"]`))
	wantText(t, ctx, "signed out", "You are signed out")
	screenshot(t, ctx, "console-signed-out")
	run(t, ctx, "channels signed out", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS("table.channels")))
}

// waitFor loads url until, once selector is visible, its HTML holds want.
func waitFor(t *testing.T, ctx context.Context, what, url, selector, want string) {
	t.Helper()
	deadline := time.After(deliveryTimeout)
	for {
		run(t, ctx, "load "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(selector)))
		html := value(t, ctx, "read "+url, chromedp.OuterHTML(chromedp.CSS("html")))
		if strings.Contains(html, want) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%s: after %v the page still lacks %q:\n%s", what, deliveryTimeout, want, html)
		case <-time.After(pollInterval):
		}
	}
}

// phone saves a screenshot of the page as a phone shows it.
func phone(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	run(t, ctx, "phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait))
	screenshot(t, ctx, name)
	run(t, ctx, "desktop size", chromedp.EmulateViewport(1280, 900))
}
