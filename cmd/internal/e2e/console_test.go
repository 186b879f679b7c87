package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestConsoleInBrowser drives the Slack admin's console in headless
// Chromium against the all-in-one: Ada signs in through the fake Slack's
// OpenID Connect, sees her workspace's channels and no other, sends a test
// message, replays a dead letter and sees it arrive, and is refused a
// change on a channel she did not install. With -screenshots DIR it saves
// a screenshot of each page there (docs/ holds the README's).
func TestConsoleInBrowser(t *testing.T) {
	ctx, fake, _, base, authorizeURL := consoleAllInOne(t)

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

	// The channel page lists the dead letter with Slack's answer.
	run(t, ctx, "open #jamf-alerts", chromedp.Click(`//a[text()="#jamf-alerts"]`), chromedp.WaitVisible(chromedp.CSS("table.dead")))
	wantText(t, ctx, "channel page", "Dead letters", "ComputerAdded", "bad_message", "400 invalid_payload", "Send a test message")
	run(t, ctx, "open the preview", chromedp.Click(`//details[@class="preview"]/summary`), chromedp.WaitVisible(chromedp.CSS("div.card")))
	wantText(t, ctx, "dead letter preview", "Computer Added", "MBP-JRIVERA-01")
	screenshot(t, ctx, "console-dead-letters")

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

// consoleAllInOne starts a browser, the fake Slack and an all-in-one with
// the fake's Slack app and Sign in with Slack, ready.
func consoleAllInOne(t *testing.T) (ctx context.Context, fake *slacktest.Server, srv *service, base, authorizeURL string) {
	t.Helper()
	ctx = newBrowser(t)
	fake = slacktest.New(t)
	env, base := allInOneEnv(t)
	authorizeURL = withSlackApp(env, fake)
	env["SLACK_OIDC_ISSUER"] = fake.Issuer()
	srv = startAllInOne(t, env)
	waitReady(t, srv, base+"/readyz")
	return ctx, fake, srv, base, authorizeURL
}

// acme is a channel of the workspace Acme, installed by user.
func acme(channel, user string) slacktest.Install {
	return slacktest.Install{TeamID: "T0ACME", TeamName: "Acme", ChannelName: channel, UserID: user}
}

// waitFor loads url until, once selector is visible, its HTML holds each
// of wants.
func waitFor(t *testing.T, ctx context.Context, what, url, selector string, wants ...string) {
	t.Helper()
	testwait.Until(t, deliveryTimeout, func() error {
		run(t, ctx, "load "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(selector)))
		html := value(t, ctx, "read "+url, chromedp.OuterHTML(chromedp.CSS("html")))
		for _, want := range wants {
			if !strings.Contains(html, want) {
				return fmt.Errorf("%s: the page still lacks %q:\n%s", what, want, html)
			}
		}
		return nil
	})
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

// TestConsoleDeliveryInBrowser drives what the console shows and sets of
// the delivery engine, in headless Chromium against the all-in-one: Ada
// sets her channel to show only failed policies and sees, end to end
// through ingest and the dispatcher, that the other events are counted and
// never posted; previews and confirms a resend of the history; sees her
// channel paused by Slack's 429 with digests and events waiting; and
// requires Basic credentials, shown once. With -screenshots DIR it saves
// those pages.
func TestConsoleDeliveryInBrowser(t *testing.T) {
	ctx, fake, srv, base, authorizeURL := consoleAllInOne(t)
	jamfURL, hook := installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-policies", "U0ADA"))
	fake.WaitFor(t, hook, 1, deliveryTimeout) // the welcome
	// Other channels of the workspace: one with a dead letter, two quiet,
	// one of them Bob's.
	enrolURL, enrolHook := installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-enrolment", "U0ADA"))
	installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-inventory", "U0ADA"))
	installThroughSlackAs(t, fake, base, authorizeURL, acme("jamf-patching", "U0BOB"))
	fake.WaitFor(t, enrolHook, 1, deliveryTimeout)
	fake.Script(enrolHook, slacktest.BadPayload())
	enrolled, err := os.ReadFile(filepath.Join("testdata", "samples", "MobileDeviceEnrolled.json"))
	if err != nil {
		t.Fatal(err)
	}
	postEvent(t, enrolURL, "application/json", enrolled)

	fake.SetMember(slacktest.Member{UserID: "U0ADA", TeamID: "T0ACME", TeamName: "Acme", Name: "Ada Lovelace"})
	run(t, ctx, "sign in and open the channel", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS("table.channels")),
		chromedp.Click(`//a[text()="#jamf-policies"]`), chromedp.WaitVisible(chromedp.ID("filter")))
	channelURL := value(t, ctx, "read the channel's address", chromedp.Location())

	// Show only the failed policies.
	run(t, ctx, "only the types ticked", chromedp.Click(`//input[@name="scope" and @value="some"]`))
	value(t, ctx, "tick only ComputerPolicyFinished", chromedp.Evaluate[bool](`(function(){
		document.querySelectorAll('input[name=event]').forEach(function (box) { box.checked = box.value === "ComputerPolicyFinished"; });
		return true;
	})()`))
	run(t, ctx, "failures only, and save", chromedp.Click(`//input[@name="failures" and @value="ComputerPolicyFinished"]`),
		chromedp.Click(`//button[starts-with(text(),"Save the event filter")]`), chromedp.WaitVisible(chromedp.ID("confirm")))
	wantText(t, ctx, "filter confirmation", "Change which events #jamf-policies shows?", "Shows: ComputerPolicyFinished (failures only)")
	run(t, ctx, "confirm the filter", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(`//div[@role="status"]`))
	wantText(t, ctx, "after the filter", "Saved the event filter", "Now: ComputerPolicyFinished (failures only).")

	// Through ingest and the dispatcher: only the failure is posted.
	succeeded := bytes.Replace(renamedSample(t, "ComputerPolicyFinished.json", "passed-001"), []byte(`"successful": false`), []byte(`"successful": true`), 1)
	postEvent(t, jamfURL, "application/json", renamedSample(t, "ComputerAdded.json", "added-001"))
	postEvent(t, jamfURL, "application/json", succeeded)
	postEvent(t, jamfURL, "application/json", renamedSample(t, "ComputerPolicyFinished.json", "failed-001"))
	waitDelivered(t, fake, hook, []string{"failed-001"}, deliveryTimeout)
	metrics := base + "/metrics"
	poll(t, deliveryTimeout, func() (bool, string) {
		added := scrapeCounter(t, metrics, `jackalope_events_filtered_total{event="ComputerAdded"}`)
		policies := scrapeCounter(t, metrics, `jackalope_events_filtered_total{event="ComputerPolicyFinished"}`)
		return added == 1 && policies == 1, fmt.Sprintf("filtered events counted: %v ComputerAdded, %v ComputerPolicyFinished; want 1 each", added, policies)
	})
	if got := countIDs(fake.Messages(hook)); got["added-001"] != 0 || got["passed-001"] != 0 || got["failed-001"] != 1 {
		t.Errorf("the channel got %v; want only failed-001", got)
	}

	// Resend the history's last 15 minutes: previewed, then sent.
	run(t, ctx, "preview the resend", chromedp.Navigate(channelURL), chromedp.WaitVisible(chromedp.ID("resend")),
		chromedp.Click(`//button[starts-with(text(),"Preview the resend")]`), chromedp.WaitVisible(chromedp.ID("confirm")))
	wantText(t, ctx, "resend preview", "Resend 1 event to #jamf-policies?", "Computer Policy Finished: policy 87 failed on failed-001")
	screenshot(t, ctx, "console-resend")
	before := fake.Count(hook)
	run(t, ctx, "confirm the resend", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(`//div[@role="status"]`))
	wantText(t, ctx, "after the resend", "Resent 1 event")
	fake.WaitFor(t, hook, before+1, deliveryTimeout)

	// Slack answers 429 for 6s, then, when the channel, behind by then,
	// sends a digest, 429 for ten minutes: paused, with digests and events
	// waiting.
	fake.Script(hook, slacktest.Ratelimited("6"), slacktest.Ratelimited("600"))
	requests := len(fake.Requests(hook))
	postEvent(t, jamfURL, "application/json", renamedSample(t, "ComputerPolicyFinished.json", "paused-001"))
	poll(t, deliveryTimeout, func() (bool, string) {
		return len(fake.Requests(hook)) > requests, "Slack was never asked to post paused-001"
	})
	for _, id := range []string{"paused-002", "paused-003"} {
		postEvent(t, jamfURL, "application/json", renamedSample(t, "ComputerPolicyFinished.json", id))
	}
	// The first pause ends after 6 s, and the panel shows no pause until
	// the digest's 429 starts the second: wait for both.
	waitFor(t, ctx, "the channel paused with digests", channelURL, "#delivery-state",
		`Events waiting</dt><dd>3 <span class="badge warn">digests</span>`, "Paused by Slack")
	wantText(t, ctx, "delivery panel", "Paused by Slack", "429 (rate limited)", "Last event received", "(ComputerPolicyFinished)", "Digests")
	screenshot(t, ctx, "console-channel")
	waitFor(t, ctx, "the channels page", base+"/admin", "table.channels", "digest mode")
	waitFor(t, ctx, "the dead letter on the channels page", base+"/admin", "table.channels", `<td data-label="Dead letters"><span class="badge warn">1</span>`)
	text := wantText(t, ctx, "channels page", "paused by Slack until", "3 waiting")
	order := regexp.MustCompile(`#jamf-[a-z]+`).FindAllString(text, -1)
	if want := []string{"#jamf-enrolment", "#jamf-policies", "#jamf-inventory", "#jamf-patching"}; !slices.Equal(order, want) {
		t.Errorf("channels in order %v; want %v (dead letters, then paused, then the quiet ones)", order, want)
	}
	screenshot(t, ctx, "console-channels")
	phone(t, ctx, "console-channels-phone")

	// Require Basic credentials: the password is shown once.
	run(t, ctx, "require Basic credentials", chromedp.Navigate(channelURL), chromedp.WaitVisible(chromedp.ID("inbound")),
		chromedp.Click(`//button[starts-with(text(),"Require Basic credentials")]`), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("basic-password")))
	password := value(t, ctx, "read the password", chromedp.Value(chromedp.ID("basic-password")))
	wantText(t, ctx, "Basic credentials", "shown only once", "Basic Authentication")
	screenshot(t, ctx, "console-basic-auth")
	status := postStatus(t, jamfURL, nil)
	withBasic := postStatus(t, jamfURL, func(r *http.Request) { r.SetBasicAuth("jamf", password) })
	if status != http.StatusUnauthorized || withBasic != http.StatusNoContent {
		t.Errorf("ingest answered %d without the credentials and %d with them; want 401 and 204", status, withBasic)
	}
	if strings.Contains(srv.output.String(), password) {
		t.Error("the password reached the logs")
	}

	// Require a header instead: its value is shown once, and the Basic
	// credentials no longer do.
	run(t, ctx, "require a header", chromedp.Navigate(channelURL), chromedp.WaitVisible(chromedp.ID("inbound")),
		chromedp.Click(`//button[starts-with(text(),"Require a header")]`), chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("header-value")))
	headerValue := value(t, ctx, "read the header's value", chromedp.Value(chromedp.ID("header-value")))
	wantText(t, ctx, "header credentials", "shown only once", "Header Authentication")
	withBasic = postStatus(t, jamfURL, func(r *http.Request) { r.SetBasicAuth("jamf", password) })
	withHeader := postStatus(t, jamfURL, func(r *http.Request) { r.Header.Set("X-Jamf-Secret", headerValue) })
	if withBasic != http.StatusUnauthorized || withHeader != http.StatusNoContent {
		t.Errorf("ingest answered %d with the old Basic credentials and %d with the header; want 401 and 204", withBasic, withHeader)
	}
	if strings.Contains(srv.output.String(), headerValue) {
		t.Error("the header's value reached the logs")
	}
}
