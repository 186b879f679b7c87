package console_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jackalope-app/jackalope/internal/console"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// sample returns a Jamf Pro webhook body of internal/render/testdata.
func sample(t *testing.T, event string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "render", "testdata", event+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// memHistory is a History of delivered events in memory.
type memHistory struct {
	mu     sync.Mutex
	kept   []jamf.DeadLetter
	resent [][2]time.Time
}

func (h *memHistory) EachHistory(_ context.Context, id string, since, until time.Time, f func(jamf.DeadLetter) error) error {
	h.mu.Lock()
	kept := append([]jamf.DeadLetter(nil), h.kept...)
	h.mu.Unlock()
	for _, d := range kept {
		if d.InstallationID == id && !d.At.Before(since) && !d.At.After(until) {
			if err := f(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *memHistory) ResendHistory(ctx context.Context, id string, since, until time.Time) (int, error) {
	n := 0
	_ = h.EachHistory(ctx, id, since, until, func(jamf.DeadLetter) error { n++; return nil })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resent = append(h.resent, [2]time.Time{since, until})
	return n, nil
}

// TestSettings sets a channel's pace and digests, its event filter and its
// inbound Basic auth in the console: each asks first, is read by the
// parser `channels set` uses (and refused with its reason), lands in SQL,
// the read model and the audit log, and no password reaches a log or the
// audit log.
func TestSettings(t *testing.T) {
	env := newEnv(t, func(o *console.Options) {
		o.Defaults = registry.DeliverySettings{Interval: time.Second, Burst: 3, Digests: registry.DigestsOn, DigestAfter: 5 * time.Second}
	})
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "jamf", UserID: ada.UserID})
	id := inst.ID
	b := env.signIn(t, ada)

	_, page := b.get(t, env.srv.URL+"/admin/channels/"+id)
	for _, want := range []string{`placeholder="default (1/s)"`, `placeholder="default (3)"`, "default (on)", "Now: all.", "Jamf Pro must send only the token"} {
		if !strings.Contains(page, want) {
			t.Errorf("channel page lacks %q", want)
		}
	}

	steps := []struct {
		name    string
		action  string
		form    url.Values
		confirm []string // what the confirmation says
		status  int      // of the confirmed post
		after   []string // what the channel page then says
		check   func(t *testing.T, got registry.Installation)
	}{
		{
			name: "pace and digests", action: "delivery",
			form:    url.Values{"pace": {"2/s"}, "burst": {"5"}, "digest": {"off"}, "digest-after": {""}},
			confirm: []string{"Pace: 2/s, burst 5", "Digests: off, after default (5s)"},
			status:  http.StatusSeeOther, after: []string{"Saved the pace and digests", "Now: pace 2/s, burst 5; digests off"},
			check: func(t *testing.T, got registry.Installation) {
				want := registry.DeliverySettings{Interval: 500 * time.Millisecond, Burst: 5, Digests: registry.DigestsOff}
				if got.Delivery != want {
					t.Errorf("stored delivery settings %+v, want %+v", got.Delivery, want)
				}
			},
		},
		{
			name: "pace back to the default", action: "delivery",
			form:    url.Values{"pace": {"default"}, "burst": {""}, "digest": {""}, "digest-after": {"30s"}},
			confirm: []string{"Pace: default (1/s), burst default (3)", "after 30s"},
			status:  http.StatusSeeOther, after: []string{"Now: pace default (1/s), burst default (3); digests default (on) after 30s"},
			check: func(t *testing.T, got registry.Installation) {
				if want := (registry.DeliverySettings{DigestAfter: 30 * time.Second}); got.Delivery != want {
					t.Errorf("stored delivery settings %+v, want %+v", got.Delivery, want)
				}
			},
		},
		{
			name: "event filter", action: "filter",
			form:    url.Values{"scope": {"some"}, "event": {"ComputerPolicyFinished", "ComputerAdded"}, "failures": {"ComputerPolicyFinished"}},
			confirm: []string{"Shows: ComputerAdded, ComputerPolicyFinished (failures only)"},
			status:  http.StatusSeeOther, after: []string{"Saved the event filter", "Now: ComputerAdded, ComputerPolicyFinished (failures only)."},
			check: func(t *testing.T, got registry.Installation) {
				want := registry.EventFilter{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}}
				if diff := cmp.Diff(want, got.Filter); diff != "" {
					t.Errorf("stored filter (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "every event, failures only of API calls", action: "filter",
			form:    url.Values{"scope": {"all"}, "event": {"ComputerAdded"}, "failures": {"RestAPIOperation"}},
			confirm: []string{"Shows: all; RestAPIOperation (failures only)"},
			status:  http.StatusSeeOther, after: []string{"Now: all; RestAPIOperation (failures only)."},
			check: func(t *testing.T, got registry.Installation) {
				want := registry.EventFilter{FailuresOnly: []string{"RestAPIOperation"}}
				if diff := cmp.Diff(want, got.Filter, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("stored filter (-want +got):\n%s", diff)
				}
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp, page := env.act(t, b, id, st.action, false, st.form)
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="confirmed" value="yes"`) {
				t.Fatalf("%s without confirmation = %d; want the confirmation page:\n%s", st.action, resp.StatusCode, page)
			}
			for _, want := range st.confirm {
				if !strings.Contains(page, want) {
					t.Errorf("confirmation lacks %q:\n%s", want, page)
				}
			}
			// The confirmation posts back what it shows, as a browser would.
			form := hiddenFields(page)
			resp, page = b.post(t, env.srv.URL+"/admin/channels/"+id+"/"+st.action, form)
			if resp.StatusCode != st.status {
				t.Fatalf("confirmed %s = %d; want %d:\n%s", st.action, resp.StatusCode, st.status, page)
			}
			_, page = b.get(t, env.srv.URL+resp.Header.Get("Location"))
			for _, want := range st.after {
				if !strings.Contains(page, want) {
					t.Errorf("channel page after %s lacks %q", st.name, want)
				}
			}
			got, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			st.check(t, got)
			if en, err := env.bus.GetInstallation(t.Context(), id); err != nil || !en.Equal(got.Entry()) {
				t.Errorf("the read model holds %+v, %v; want what SQL holds", en, err)
			}
		})
	}

	refused := []struct {
		action, problem string
		form            url.Values
	}{
		{"delivery", `pace &#34;fast&#34; is not N/s, N/min or N/h`, url.Values{"pace": {"fast"}}},
		{"delivery", `burst 500 is out of range`, url.Values{"burst": {"500"}}},
		{"filter", "tick at least one event type", url.Values{"scope": {"some"}}},
		{"filter", "ComputerPolicyFinished is not among the events shown", url.Values{"scope": {"some"}, "event": {"ComputerAdded"}, "failures": {"ComputerPolicyFinished"}}},
		{"filter", "ComputerAdded events do not say whether they succeeded", url.Values{"scope": {"all"}, "failures": {"ComputerAdded"}}},
		{"filter", "is not a Jamf Pro webhook event", url.Values{"scope": {"some"}, "event": {"<b>Nope</b>"}}},
		{"inbound-auth", "without a colon", url.Values{"scheme": {"basic"}, "user": {"ja:mf"}}},
		{"inbound-auth", "user name is empty", url.Values{"scheme": {"basic"}, "user": {" "}}},
		{"inbound-auth", "Content-Type is set by Jamf Pro or HTTP itself", url.Values{"scheme": {"header"}, "header": {"content-type"}}},
		{"inbound-auth", "is not a header name", url.Values{"scheme": {"header"}, "header": {"X Secret"}}},
		{"inbound-auth", "header name is empty", url.Values{"scheme": {"header"}, "header": {" "}}},
	}
	before, _ := env.store.Get(t.Context(), id)
	for _, r := range refused {
		for _, confirmed := range []bool{false, true} {
			resp, page := env.act(t, b, id, r.action, confirmed, r.form)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, r.problem) {
				t.Errorf("%s %v (confirmed %t) = %d; want 400 saying %q:\n%s", r.action, r.form, confirmed, resp.StatusCode, r.problem, page)
			}
			if strings.Contains(page, "<b>Nope</b>") {
				t.Error("a refused form's value reached the page unescaped")
			}
		}
	}
	if after, _ := env.store.Get(t.Context(), id); after.Delivery != before.Delivery || !after.Filter.Equal(before.Filter) || after.InboundAuth != before.InboundAuth {
		t.Error("a refused form changed the channel")
	}

	// Basic auth: the password is made, shown once, and only its hash kept.
	resp, page := env.act(t, b, id, "inbound-auth", false, url.Values{"scheme": {"basic"}, "user": {"jamf-pro"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "User name: jamf-pro") || !strings.Contains(page, "Jamf Pro gets 401") {
		t.Fatalf("inbound-auth confirmation = %d:\n%s", resp.StatusCode, page)
	}
	resp, page = b.post(t, env.srv.URL+"/admin/channels/"+id+"/inbound-auth", hiddenFields(page))
	password := regexp.MustCompile(`id="basic-password" type="text" readonly value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || password == nil || !strings.Contains(page, "Basic Authentication") {
		t.Fatalf("confirmed inbound-auth = %d; want the new credentials with the Jamf Pro steps:\n%s", resp.StatusCode, page)
	}
	got, _ := env.store.Get(t.Context(), id)
	if got.InboundAuth.Scheme != registry.AuthBasic || got.InboundAuth.Hash != env.keys.HashInboundAuth(registry.BasicCredential("jamf-pro", password[1])) {
		t.Errorf("stored inbound auth %+v; want basic with the hash of jamf-pro and the password shown", got.InboundAuth)
	}
	if _, page = b.get(t, env.srv.URL+"/admin/channels/"+id); strings.Contains(page, password[1]) || !strings.Contains(page, "Jamf Pro must send HTTP Basic credentials") {
		t.Error("the channel page shows the password again, or not that Basic credentials are required")
	}

	// Header auth: the same, with the header name given and its value made.
	resp, page = env.act(t, b, id, "inbound-auth", false, url.Values{"scheme": {"header"}, "header": {"x-jamf-secret"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Header: X-Jamf-Secret") || !strings.Contains(page, "Jamf Pro gets 401") {
		t.Fatalf("inbound-auth header confirmation = %d:\n%s", resp.StatusCode, page)
	}
	resp, page = b.post(t, env.srv.URL+"/admin/channels/"+id+"/inbound-auth", hiddenFields(page))
	value := regexp.MustCompile(`id="header-value" type="text" readonly value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || value == nil || !strings.Contains(page, "Header Authentication") || !strings.Contains(page, `value="X-Jamf-Secret"`) ||
		!strings.Contains(page, `id="header-json" type="text" readonly value="{&#34;X-Jamf-Secret&#34;:&#34;`+value[1]+`&#34;}"`) {
		t.Fatalf("confirmed inbound-auth header = %d; want the header and its new value with the Jamf Pro steps:\n%s", resp.StatusCode, page)
	}
	got, _ = env.store.Get(t.Context(), id)
	if got.InboundAuth.Scheme != registry.AuthHeader || got.InboundAuth.Headers != "X-Jamf-Secret" ||
		got.InboundAuth.Hash != env.keys.HashInboundAuth(registry.HeaderCredential([]string{"X-Jamf-Secret"}, []string{value[1]})) {
		t.Errorf("stored inbound auth %+v; want the header X-Jamf-Secret with the hash of the value shown", got.InboundAuth)
	}
	if _, page = b.get(t, env.srv.URL+"/admin/channels/"+id); strings.Contains(page, value[1]) || !strings.Contains(page, "Jamf Pro must send the header(s) X-Jamf-Secret") {
		t.Error("the channel page shows the header's value again, or not that the header is required")
	}

	resp, page = env.act(t, b, id, "inbound-auth", true, url.Values{"scheme": {"none"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("inbound-auth none = %d:\n%s", resp.StatusCode, page)
	}
	if got, _ := env.store.Get(t.Context(), id); got.InboundAuth.Enabled() || got.InboundAuthSealed != "" {
		t.Errorf("inbound auth after none = %+v", got.InboundAuth)
	}

	changes, err := env.store.ListAudit(t.Context(), registry.AuditFilter{TeamID: ada.TeamID, InstallationID: id})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, c := range changes {
		details = append(details, c.Action+": "+c.Detail)
		if strings.Contains(c.Detail, password[1]) || strings.Contains(c.Detail, value[1]) {
			t.Error("the audit log holds the password or the header's value")
		}
	}
	want := []string{
		"inbound-auth: Inbound auth removed: Jamf Pro needs only the token.",
		"inbound-auth: Jamf Pro must send the header X-Jamf-Secret; a new value was made and shown once.",
		"inbound-auth: Jamf Pro must send HTTP Basic credentials (user jamf-pro); a new password was made and shown once.",
		"filter: Event filter set: shows all; RestAPIOperation (failures only).",
		"filter: Event filter set: shows ComputerAdded, ComputerPolicyFinished (failures only).",
		"delivery: Pace and digests set: pace default, digests default after 30s.",
		"delivery: Pace and digests set: pace 2/s burst 5, digests off.",
	}
	if diff := cmp.Diff(want, details); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
	env.checkNoSecrets(t, password[1], value[1])
}

// hiddenFields returns the form a confirmation page posts: its hidden
// fields.
func hiddenFields(page string) url.Values {
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(page, -1) {
		form.Add(m[1], htmlUnescape(m[2]))
	}
	return form
}

// htmlUnescape undoes what html/template escapes in an attribute.
func htmlUnescape(s string) string {
	return strings.NewReplacer("&#43;", "+", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(s)
}

// TestResend previews a window of delivered events, then resends exactly
// that window: the preview counts them by type, lists them with their
// message, and says which the channel's filter hides.
func TestResend(t *testing.T) {
	history := &memHistory{}
	env := newEnv(t, func(o *console.Options) { o.History, o.HistoryMaxAge = history, 24*time.Hour })
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, TeamName: "Acme", ChannelName: "jamf", UserID: ada.UserID})
	if _, err := env.in.SetEventFilter(t.Context(), inst.ID, registry.EventFilter{FailuresOnly: []string{"ComputerPolicyFinished"}}); err != nil {
		t.Fatal(err)
	}
	now := env.clock.Now()
	succeeded := bytes.Replace(sample(t, "ComputerPolicyFinished"), []byte(`"successful": false`), []byte(`"successful": true`), 1)
	for i, e := range []struct {
		event string
		body  []byte
		ago   time.Duration
	}{
		{"ComputerAdded", sample(t, "ComputerAdded"), 3 * time.Hour},
		{"ComputerAdded", sample(t, "ComputerAdded"), 50 * time.Minute},
		{"ComputerPolicyFinished", sample(t, "ComputerPolicyFinished"), 40 * time.Minute},
		{"ComputerPolicyFinished", succeeded, 30 * time.Minute},
	} {
		history.kept = append(history.kept, jamf.DeadLetter{
			Received: jamf.Received{InstallationID: inst.ID, Event: e.event, ReceivedAt: now.Add(-e.ago - time.Second), Body: e.body},
			Seq:      uint64(i + 1), At: now.Add(-e.ago),
		})
	}
	b := env.signIn(t, ada)
	_, page := b.get(t, env.srv.URL+"/admin/channels/"+inst.ID)
	if !strings.Contains(page, "for 1 day (HISTORY_MAX_AGE)") || !strings.Contains(page, `<option value="2h0m0s">the last 2 hours</option>`) {
		t.Errorf("channel page lacks the resend form:\n%s", page)
	}

	resp, page := env.act(t, b, inst.ID, "resend", false, url.Values{"window": {"1h0m0s"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resend preview = %d:\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{"Resend 3 events to #jamf?", "ComputerPolicyFinished</td><td data-label=\"Events\">2",
		"Computer Added: MBP-JRIVERA-01", "Hidden by the channel's event filter: 1.", "filtered"} {
		if !strings.Contains(page, want) {
			t.Errorf("resend preview lacks %q:\n%s", want, page)
		}
	}
	if !strings.Contains(page, "policy 87 failed") {
		t.Errorf("resend preview does not list the failed policy's message:\n%s", page)
	}
	if len(history.resent) != 0 {
		t.Fatal("the preview resent events")
	}

	// Time passes before the member confirms: the window stays the one
	// previewed.
	env.clock.Advance(10 * time.Minute)
	resp, page = b.post(t, env.srv.URL+"/admin/channels/"+inst.ID+"/resend", hiddenFields(page))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed resend = %d:\n%s", resp.StatusCode, page)
	}
	if want := [][2]time.Time{{now.Add(-time.Hour), now}}; !cmp.Equal(history.resent, want, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })) {
		t.Errorf("resent windows %v, want %v", history.resent, want)
	}
	_, page = b.get(t, env.srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(page, "Resent 3 events") {
		t.Errorf("channel page after the resend lacks the count:\n%s", page)
	}

	// A forged window is refused, and a window with nothing says so.
	for _, form := range []url.Values{
		{"confirmed": {"yes"}, "since": {"yesterday"}, "until": {stampOf(now)}},
		{"confirmed": {"yes"}, "since": {stampOf(now)}, "until": {stampOf(now.Add(-time.Hour))}},
		{"confirmed": {"yes"}, "since": {stampOf(now.Add(-time.Hour))}, "until": {stampOf(now.Add(time.Hour))}},
		{"window": {"forever"}},
	} {
		if resp, page := env.act(t, b, inst.ID, "resend", false, form); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("resend %v = %d; want 400:\n%s", form, resp.StatusCode, page)
		}
	}
	if _, page := env.act(t, b, inst.ID, "resend", false, url.Values{"window": {"15m0s"}}); !strings.Contains(page, "holds no event delivered") {
		t.Errorf("an empty window's preview does not say so:\n%s", page)
	}
	if len(history.resent) != 1 {
		t.Errorf("%d resends; want only the confirmed one", len(history.resent))
	}
}

func stampOf(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// TestResendWithoutHistory offers no resend when no history is kept.
func TestResendWithoutHistory(t *testing.T) {
	env := newEnv(t)
	inst, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "jamf", UserID: ada.UserID})
	b := env.signIn(t, ada)
	if _, page := b.get(t, env.srv.URL+"/admin/channels/"+inst.ID); !strings.Contains(page, "No delivered events are kept (HISTORY_MAX_AGE=0)") {
		t.Errorf("channel page does not say no history is kept:\n%s", page)
	}
	if resp, _ := env.act(t, b, inst.ID, "resend", false, url.Values{"window": {"1h0m0s"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("resend without a history = %d; want 400", resp.StatusCode)
	}
}

// TestNewFormsRefused holds every form added for the delivery engine to the
// rules of the others: no CSRF token, a read-only member, another
// workspace's channel (404, as for one that does not exist), signed out.
func TestNewFormsRefused(t *testing.T) {
	history := &memHistory{}
	env := newEnv(t, func(o *console.Options) { o.History, o.HistoryMaxAge = history, time.Hour })
	ours, _ := env.install(t, slacktest.Install{TeamID: ada.TeamID, ChannelName: "jamf", UserID: ada.UserID})
	theirs, _ := env.install(t, slacktest.Install{TeamID: eve.TeamID, ChannelName: "theirs", UserID: eve.UserID})
	forms := map[string]url.Values{
		"delivery":     {"pace": {"1/min"}},
		"filter":       {"scope": {"some"}, "event": {"JSSShutdown"}},
		"inbound-auth": {"scheme": {"basic"}, "user": {"jamf"}},
		"resend":       {"window": {"1h0m0s"}},
	}
	adaB, bobB := env.signIn(t, ada), env.signIn(t, bob)
	for action, form := range forms {
		t.Run(action, func(t *testing.T) {
			for _, confirmed := range []bool{false, true} {
				// No CSRF token.
				f := url.Values{"confirmed": {"yes"}}
				for k, v := range form {
					f[k] = v
				}
				if resp, _ := adaB.post(t, env.srv.URL+"/admin/channels/"+ours.ID+"/"+action, f); resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s without a CSRF token = %d; want 403", action, resp.StatusCode)
				}
				// A member who did not install it.
				if resp, _ := env.act(t, bobB, ours.ID, action, confirmed, form); resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s by a read-only member = %d; want 403", action, resp.StatusCode)
				}
				// Another workspace's channel.
				if resp, page := env.act(t, adaB, theirs.ID, action, confirmed, form); resp.StatusCode != http.StatusNotFound || strings.Contains(page, "theirs") {
					t.Errorf("%s on another workspace's channel = %d; want 404 naming nothing", action, resp.StatusCode)
				}
				// Signed out.
				if resp, _ := browser(t).post(t, env.srv.URL+"/admin/channels/"+ours.ID+"/"+action, f); resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s signed out = %d; want 401", action, resp.StatusCode)
				}
			}
		})
	}
	if _, page := bobB.get(t, env.srv.URL+"/admin/channels/"+ours.ID); strings.Contains(page, "/delivery\"") ||
		strings.Contains(page, "/filter\"") || strings.Contains(page, "/inbound-auth\"") || strings.Contains(page, "/resend\"") {
		t.Error("a read-only member is offered the new forms")
	}
	for _, inst := range []registry.Installation{ours, theirs} {
		got, _ := env.store.Get(t.Context(), inst.ID)
		if !got.Delivery.IsZero() || !got.Filter.IsZero() || got.InboundAuth.Enabled() {
			t.Errorf("refused forms changed %s: %+v %+v %+v", got.ChannelName, got.Delivery, got.Filter, got.InboundAuth)
		}
	}
	if len(history.resent) != 0 {
		t.Error("a refused resend resent events")
	}
	if changes, _ := env.store.ListAudit(t.Context(), registry.AuditFilter{}); len(changes) != 0 {
		t.Errorf("refused forms wrote %d audit entries", len(changes))
	}
}
