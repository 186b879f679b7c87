package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// samples are the Jamf webhook bodies in testdata (copied from
// ../shared/jamf-webhooks), how Jamf Pro sends each, and the title of the
// Slack message each must become.
var samples = []struct {
	file        string
	contentType string
	title       string
}{
	{"samples/ComputerAdded.json", "application/json", "Computer Added"},
	{"samples/ComputerCheckIn.json", "application/json", "Computer Check-In"},
	{"samples/ComputerInventoryCompleted.json", "application/json", "Computer Inventory Complete"},
	{"samples/ComputerPatchPolicyCompleted.json", "application/json", "Patch Policy Completed"},
	{"samples/ComputerPolicyFinished.json", "application/json", "Computer Policy Finished"},
	{"samples/ComputerPushCapabilityChanged.json", "application/json", "Computer Push Capability Changed"},
	{"samples/DeviceAddedToDEP.json", "application/json", "Device Added to Automated Device Enrollment"},
	{"samples/DeviceRateLimited.json", "application/json", "Device Rate Limited"},
	{"samples/JSSShutdown.json", "application/json", "Jamf Pro Shutdown"},
	{"samples/JSSStartup.json", "application/json", "Jamf Pro Startup"},
	{"samples/MobileDeviceCheckIn.json", "application/json", "Mobile Device Check-In"},
	{"samples/MobileDeviceCommandCompleted.json", "application/json", "Mobile Device Command Completed"},
	{"samples/MobileDeviceEnrolled.json", "application/json", "Mobile Device Enrolled"},
	{"samples/MobileDeviceInventoryCompleted.json", "application/json", "Mobile Device Inventory Complete"},
	{"samples/MobileDevicePushSent.json", "application/json", "Mobile Device Push Sent"},
	{"samples/MobileDeviceUnEnrolled.json", "application/json", "Mobile Device Un-Enrolled"},
	{"samples/PatchSoftwareTitleUpdated.json", "application/json", "Patch Definition Update"},
	{"samples/PushSent.json", "application/json", "Push Notification Sent"},
	{"samples/RestAPIOperation.json", "application/json", "REST API Operation"},
	{"samples/SCEPChallenge.json", "application/json", "SCEP Challenge Requested"},
	{"samples/SmartGroupComputerMembershipChange.json", "application/json", "Smart Computer Group Membership Change"},
	{"samples/SmartGroupMobileDeviceMembershipChange.json", "application/json", "Smart Mobile Device Group Membership Change"},
	{"samples/SmartGroupUserMembershipChange.json", "application/json", "Smart User Group Membership Change"},
	{"samples-xml/ComputerAdded.xml", "text/xml", "Computer Added"},
}

// pngMagic starts every PNG file.
var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// TestSamplesTableIsComplete keeps the samples table in step with
// testdata, so that a sample added there is posted too.
func TestSamplesTableIsComplete(t *testing.T) {
	var onDisk []string
	for _, dir := range []string{"samples", "samples-xml"} {
		entries, err := os.ReadDir(filepath.Join("testdata", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			onDisk = append(onDisk, dir+"/"+e.Name())
		}
	}
	var inTable []string
	for _, s := range samples {
		inTable = append(inTable, s.file)
	}
	slices.Sort(onDisk)
	slices.Sort(inTable)
	if diff := cmp.Diff(onDisk, inTable); diff != "" {
		t.Errorf("samples table differs from testdata (-on disk +table):\n%s", diff)
	}
}

// TestAllInOneInProcess runs the all-in-one in this process with the fake
// Slack as its Slack app, installs it into a channel through OAuth, posts
// every Jamf sample to the Jamf URL it gives, and sees each become its
// message in the channel; then it stops it and expects a clean return.
func TestAllInOneInProcess(t *testing.T) {
	start := time.Now()
	fake := slacktest.New(t)
	env, base := allInOneEnv(t)
	// Every sample is checked in a message of its own: a pace that takes
	// them all at once, and no digests.
	env["CHANNEL_PACE"], env["CHANNEL_BURST"], env["DIGESTS"] = "100/s", "50", "off"
	authorizeURL := withSlackApp(env, fake)
	srv := startAllInOne(t, env)
	waitReady(t, srv, base+"/readyz")
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))

	pages := []struct {
		name        string
		path        string
		contentType string
		want        []byte
	}{
		{"start page", "/", "text/html", []byte("Add to Slack")},
		{"start page links the install", "/", "text/html", []byte(`href="/install"`)},
		{"computer icon", "/static/images/computer.png", "image/png", pngMagic},
		{"liveness", "/healthz", "text/plain", []byte("ok")},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			status, ct, body := get(t, base+p.path)
			if status != http.StatusOK || !strings.HasPrefix(ct, p.contentType) || !bytes.Contains(body, p.want) {
				t.Errorf("GET %s = %d %s (%d bytes), want 200 %s containing %q", p.path, status, ct, len(body), p.contentType, p.want)
			}
		})
	}

	jamfURL, webhook := installThroughSlack(t, fake, base, authorizeURL, "jamf")
	if !strings.HasPrefix(jamfURL, base+"/jamf/") {
		t.Errorf("Jamf URL %s is not under SERVER_NAME %s", jamfURL, base)
	}
	checkWelcome(t, fake, webhook, jamfURL)
	t.Logf("installed and welcomed after %v", time.Since(start).Round(time.Millisecond))

	var want []string
	for _, s := range samples {
		body, err := os.ReadFile(filepath.Join("testdata", s.file))
		if err != nil {
			t.Fatal(err)
		}
		postEvent(t, jamfURL, s.contentType, body)
		want = append(want, s.title)
	}
	msgs := fake.WaitFor(t, webhook, 1+len(samples), deliveryTimeout)[1:]
	t.Logf("%d samples delivered after %v", len(msgs), time.Since(start).Round(time.Millisecond))

	var got []string
	icons := map[string]bool{}
	for i, m := range msgs {
		if len(m.Attachments) != 1 {
			t.Errorf("message %d has %d attachments, want 1: %+v", i, len(m.Attachments), m)
			continue
		}
		a := m.Attachments[0]
		got = append(got, a.Title)
		if !strings.HasPrefix(a.Fallback, a.Title) {
			t.Errorf("message %q: fallback %q does not start with its title", a.Title, a.Fallback)
		}
		if a.ThumbURL != "" {
			icons[a.ThumbURL] = true
		}
	}
	// Workers deliver in parallel: the order is not the posting order.
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message titles differ from the samples' events (-want +got):\n%s", diff)
	}
	if len(icons) == 0 {
		t.Error("no message has an icon (thumb_url)")
	}
	for icon := range icons {
		if !strings.HasPrefix(icon, base+"/static/") {
			t.Errorf("icon %s is not served by this Jackalope (%s/static/)", icon, base)
			continue
		}
		status, ct, body := get(t, icon)
		if status != http.StatusOK || ct != "image/png" || !bytes.HasPrefix(body, pngMagic) {
			t.Errorf("GET %s = %d %s, want a PNG", icon, status, ct)
		}
	}

	stopped := time.Now()
	if err := srv.stop(t, os.Interrupt); err != nil {
		t.Errorf("AllInOne returned %v after its context ended, want nil", err)
	}
	t.Logf("stopped in %v", time.Since(stopped).Round(time.Millisecond))
}

// TestAllInOneByHandNoSlackApp runs the all-in-one without Slack app
// credentials: the page says what to set, and a channel added by hand with
// `channels add` (run while the server runs on the same DATA_DIR, so the
// command shares its embedded NATS server) receives a posted event.
func TestAllInOneByHandNoSlackApp(t *testing.T) {
	fake := slacktest.New(t)
	env, base := allInOneEnv(t)
	srv := startAllInOne(t, env)
	waitReady(t, srv, base+"/readyz")

	pages := []struct {
		name   string
		path   string
		status int
		want   []string
	}{
		{"start page", "/", http.StatusOK, []string{"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", base + "/install", "channels add"}},
		{"install", "/install", http.StatusServiceUnavailable, []string{"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			status, _, body := get(t, base+p.path)
			if status != p.status {
				t.Errorf("GET %s = %d, want %d", p.path, status, p.status)
			}
			for _, w := range p.want {
				if !bytes.Contains(body, []byte(w)) {
					t.Errorf("GET %s does not mention %q:\n%s", p.path, w, body)
				}
			}
		})
	}
	if banner := srv.output.String(); !strings.Contains(banner, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET") || !strings.Contains(banner, base) {
		t.Errorf("start-up notes do not give the base URL and the variables to set:\n%s", banner)
	}

	webhook := fake.NewWebhook("#jamf")
	out := runAllInOne(t, env, "channels", "add", "--webhook-url", webhook, "--channel", "#jamf")
	jamfURL := jamfURLIn(t, "channels add's output", out)
	if !strings.HasPrefix(jamfURL, base+"/jamf/") {
		t.Errorf("Jamf URL %s is not under SERVER_NAME %s", jamfURL, base)
	}
	postEvent(t, jamfURL, "application/json", eventBody(t, "byhand-000"))
	got := waitDelivered(t, fake, webhook, []string{"byhand-000"}, deliveryTimeout)
	if got["byhand-000"] != 1 {
		t.Errorf("the event arrived %d times, want once", got["byhand-000"])
	}

	token := jamfURL[strings.LastIndex(jamfURL, "/")+1:]
	webhookSecret := webhook[strings.LastIndex(webhook, "/")+1:]
	commands := []struct {
		name    string
		args    []string
		want    []string
		secrets []string
	}{
		{"channels list", []string{"channels", "list"}, []string{"#jamf", "active"}, []string{webhook, webhookSecret, token}},
		{"dlq list", []string{"dlq", "list"}, []string{"no dead letters"}, []string{webhook, webhookSecret, token}},
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			out := runAllInOne(t, env, c.args...)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s does not show %q:\n%s", c.name, w, out)
				}
			}
			for _, s := range c.secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s shows a secret (webhook URL or Jamf token):\n%s", c.name, out)
				}
			}
		})
	}

	if err := srv.stop(t, os.Interrupt); err != nil {
		t.Errorf("AllInOne returned %v after its context ended, want nil", err)
	}
}
