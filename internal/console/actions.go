package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

const (
	// maxFormBytes bounds an action's form.
	maxFormBytes = 16 << 10
	// maxReasonLength bounds the reason typed when disabling a channel.
	maxReasonLength = 200
)

// Actions, as they appear in /admin/channels/:id/:action and in the audit
// log.
const (
	actionRotate   = "rotate"
	actionDisable  = "disable"
	actionEnable   = "enable"
	actionJamfURL  = "jamf-url"
	actionTest     = "test"
	actionReplay   = "replay"
	actionDrop     = "drop"
	actionDelivery = "delivery"
	actionFilter   = "filter"
	actionInbound  = "inbound-auth"
	actionResend   = "resend"
)

// actions lists every action.
var actions = []string{actionRotate, actionDisable, actionEnable, actionJamfURL, actionTest, actionReplay, actionDrop,
	actionDelivery, actionFilter, actionInbound, actionResend}

// form is an action's posted form, already checked.
type form struct {
	Reason   string                    // disable
	JamfURL  string                    // jamf-url, as registry.CheckJamfURL returns it
	Seq      uint64                    // replay, drop: one dead letter; 0 with All
	All      bool                      // replay, drop: every dead letter of the channel
	Delivery registry.DeliverySettings // delivery: the channel's own pace and digests
	Filter   registry.EventFilter      // filter
	User     string                    // inbound-auth: the Basic user name; "" with NoAuth or Header
	Header   string                    // inbound-auth: the header name of header auth, canonical
	NoAuth   bool                      // inbound-auth: the token alone again
	Since    time.Time                 // resend: the window of delivery times
	Until    time.Time
}

// confirmPage asks before an action is done; its form repeats the values.
type confirmPage struct {
	frame
	Inst    registry.Installation
	Action  string
	Heading string
	Explain string
	Details []string // what will be set, one line each
	Button  string
	Danger  bool
	Form    form
	Fields  []field // the form's values, repeated
	Count   int     // dead letters affected
}

// credentialsPage shows new inbound credentials, once: a Basic user name
// and password, or a header name and value.
type credentialsPage struct {
	frame
	Inst   registry.Installation
	Kind   string // "Basic" or "Header", as Jamf Pro's Authentication Type names it
	Secret string // what the secret is called: "password", "value"
	Fields []copyField
	Step   string // what to set in Jamf Pro
}

// copyField is a value shown read-only with a Copy button.
type copyField struct{ ID, Label, Value string }

// rotatedPage shows a new Jamf URL, once.
type rotatedPage struct {
	frame
	Inst    registry.Installation
	JamfURL string
}

// testedPage shows Slack's answer to a test message.
type testedPage struct {
	frame
	Inst   registry.Installation
	OK     bool
	Status int
	Body   string
	Class  string
}

// handleAction runs one change on a channel: session, CSRF token, the
// channel (404 when it is not the member's workspace's), the right to
// change it (403), the form, then a confirmation page unless the form
// says it was confirmed, then the change and its audit entry.
func (c *Console) handleAction(ec echo.Context) error {
	s, err := c.requireSession(ec)
	if s == nil {
		return err
	}
	req := ec.Request()
	req.Body = http.MaxBytesReader(ec.Response(), req.Body, maxFormBytes)
	if err := req.ParseForm(); err != nil {
		return c.problem(ec, http.StatusBadRequest, problemPage{Heading: "The form could not be read", Message: "Nothing was changed."})
	}
	if !c.checkCSRF(ec, s) {
		return c.csrfRefused(ec)
	}
	action := ec.Param("action")
	inst, err := c.channel(req.Context(), s, ec.Param("id"))
	if errors.Is(err, registry.ErrNotFound) {
		return c.notFound(ec, s)
	}
	if err != nil {
		return err
	}
	if !slices.Contains(actions, action) {
		return c.notFound(ec, s)
	}
	if !c.canChange(s, inst) {
		c.metrics.changes.WithLabelValues(action, "forbidden").Inc()
		c.logger.Warn("console change refused: not the channel's installer nor an admin", "installation", inst.ID, "user", s.UserID, "action", action)
		by := "the member who installed it"
		if inst.InstallingUser != "" {
			by += " (" + inst.InstallingUser + ")"
		}
		return c.problem(ec, http.StatusForbidden, problemPage{
			frame:   c.frame(s, "Not allowed"),
			Heading: "You cannot change this channel",
			Message: "Only " + by + " or a Jackalope admin (ADMIN_SLACK_USERS) can change " + inst.ChannelName + ". Nothing was changed.",
			Hint:    "You can still see its status, dead letters and changes.",
		})
	}
	f, problem := c.readForm(ec, inst, action)
	if problem != "" {
		return c.showChannel(ec, s, inst, http.StatusBadRequest, "", problem)
	}
	if req.PostForm.Get("confirmed") != "yes" {
		if action == actionResend {
			return c.previewResend(ec, s, inst, f)
		}
		return c.confirm(ec, s, inst, action, f)
	}
	return c.run(ec, s, inst, action, f)
}

// readForm reads and checks the fields action on inst takes; problem says,
// for the member, what is wrong.
func (c *Console) readForm(ec echo.Context, inst registry.Installation, action string) (f form, problem string) {
	pf := ec.Request().PostForm
	switch action {
	case actionDelivery:
		f.Delivery, problem = readDelivery(pf, inst.Delivery)
	case actionFilter:
		f.Filter, problem = readFilter(pf)
	case actionInbound:
		f.User, f.Header, f.NoAuth, problem = readInbound(pf)
	case actionResend:
		return c.readResend(pf)
	case actionDisable:
		f.Reason = strings.Join(strings.Fields(pf.Get("reason")), " ")
		if len(f.Reason) > maxReasonLength {
			return f, fmt.Sprintf("The reason is longer than %d characters.", maxReasonLength)
		}
	case actionJamfURL:
		u, err := registry.CheckJamfURL(pf.Get("jamf_url"))
		if err != nil {
			return f, "Not saved: " + err.Error() + "."
		}
		f.JamfURL = u
	case actionReplay, actionDrop:
		f.All = pf.Get("all") == "yes"
		if !f.All {
			seq, err := strconv.ParseUint(pf.Get("seq"), 10, 64)
			if err != nil || seq == 0 {
				return f, "Pick a dead letter, or all of them."
			}
			f.Seq = seq
		}
	}
	return f, problem
}

// confirm asks the member to confirm action on inst.
func (c *Console) confirm(ec echo.Context, s *session, inst registry.Installation, action string, f form) error {
	p := confirmPage{frame: c.frame(s, "Confirm"), Inst: inst, Action: action, Form: f, Fields: f.hidden(action)}
	name := inst.ChannelName
	switch action {
	case actionDelivery:
		p.Heading = "Save the pace and digests of " + name + "?"
		p.Explain = "Every dispatcher follows the new settings from the channel's next message. Settings left empty take the deployment's defaults."
		v := c.deliveryViewOf(registry.Installation{Delivery: f.Delivery})
		p.Details = []string{
			"Pace: " + cmp.Or(v.Pace, "default ("+v.DefaultPace+")") + ", burst " + cmp.Or(v.Burst, "default ("+v.DefaultBurst+")"),
			"Digests: " + cmp.Or(v.Digests, "default ("+v.DefaultDigests+")") + ", after " + cmp.Or(v.DigestAfter, "default ("+v.DefaultDigestAfter+")"),
		}
		p.Button = "Save"
	case actionFilter:
		p.Heading = "Change which events " + name + " shows?"
		p.Explain = "From the channel's next event, every dispatcher settles the events the filter hides without posting them: they are counted, not kept, and a resend cannot bring them back."
		p.Details = []string{"Shows: " + render.DescribeFilter(f.Filter)}
		p.Button = "Save"
		p.Danger = !f.Filter.IsZero()
	case actionInbound:
		switch {
		case f.NoAuth:
			p.Heading = "Take " + name + "'s webhooks with the token alone?"
			p.Explain = "Jamf Pro no longer needs to send credentials: set Authentication Type to None on the channel's webhooks in Jamf Pro."
			p.Button = "Stop requiring credentials"
		case f.Header != "":
			p.Heading = "Require the header " + f.Header + " for " + name + "?"
			p.Explain = "Jackalope makes a new secret value and shows it once, on the next page. From then on Jamf Pro gets 401, and its events are lost, " +
				"until each of the channel's webhooks in Jamf Pro sends the header with that value."
			p.Details = []string{"Header: " + f.Header}
			p.Button, p.Danger = "Require the header", true
		default:
			p.Heading = "Require HTTP Basic credentials for " + name + "?"
			p.Explain = "Jackalope makes a new password and shows it once, on the next page. From then on Jamf Pro gets 401, and its events are lost, " +
				"until each of the channel's webhooks in Jamf Pro sends the user name and the password."
			p.Details = []string{"User name: " + f.User}
			p.Button, p.Danger = "Require credentials", true
		}
	case actionRotate:
		p.Heading = "Give " + name + " a new Jamf URL?"
		p.Explain = "The current Jamf URL stops working at once: Jamf Pro's webhooks get 404 until you paste the new URL into each of them. " +
			"The new URL is shown once, on the next page."
		p.Button, p.Danger = "Rotate the Jamf URL", true
	case actionDisable:
		p.Heading = "Disable " + name + "?"
		p.Explain = "Nothing more is posted to the channel, and Jamf Pro gets 410 with the reason for every event it sends, until the channel is enabled again."
		p.Button, p.Danger = "Disable", true
	case actionEnable:
		p.Heading = "Enable " + name + "?"
		p.Explain = "Events Jamf Pro sends from now on are posted to the channel again."
		p.Button = "Enable"
	case actionJamfURL:
		p.Heading = "Save the Jamf Pro URL of " + name + "?"
		if f.JamfURL == "" {
			p.Explain = "Notifications will no longer link to Jamf Pro."
		} else {
			p.Explain = "Notification titles will link to the computer, device, policy or group at " + f.JamfURL + "."
		}
		p.Button = "Save"
	case actionTest:
		p.Heading = "Send a test message to " + name + "?"
		p.Explain = "A short message saying it is a test, sent by you, is posted to the channel; Slack's answer is shown."
		p.Button = "Send"
	case actionReplay, actionDrop:
		dead, err := c.dead.ListDead(ec.Request().Context(), inst.ID)
		if err != nil {
			return err
		}
		p.Count = len(dead)
		if !f.All {
			p.Count = 0
			for _, d := range dead {
				if d.Seq == f.Seq {
					p.Count = 1
				}
			}
		}
		if p.Count == 0 {
			return c.showChannel(ec, s, inst, http.StatusOK, "", "That dead letter is gone: it was replayed or dropped already.")
		}
		what := fmt.Sprintf("%d dead letter%s", p.Count, plural(p.Count))
		if action == actionReplay {
			p.Heading = "Replay " + what + " of " + name + "?"
			p.Explain = "They go back to the queue and are posted to the channel like new events. Replay after the channel works again (enable it or install it again first)."
			p.Button = "Replay " + what
		} else {
			p.Heading = "Drop " + what + " of " + name + "?"
			p.Explain = "They are deleted for good and never posted."
			p.Button, p.Danger = "Drop "+what, true
		}
	}
	return c.render(ec, http.StatusOK, pageConfirm, p)
}

// run does a confirmed action and records it.
func (c *Console) run(ec echo.Context, s *session, inst registry.Installation, action string, f form) error {
	rctx := ec.Request().Context()
	done := func(detail, notice string, n int) error {
		c.metrics.changes.WithLabelValues(action, "done").Inc()
		c.record(ec, s, inst, action, detail)
		return ec.Redirect(http.StatusSeeOther, c.link("/admin/channels/"+inst.ID)+"?done="+notice+"&n="+strconv.Itoa(n))
	}
	failed := func(err error) error {
		c.metrics.changes.WithLabelValues(action, "failed").Inc()
		if errors.Is(err, registry.ErrNotFound) {
			return c.notFound(ec, s)
		}
		c.logger.Error("console change failed", "installation", inst.ID, "action", action, "err", err)
		return c.showChannel(ec, s, inst, http.StatusServiceUnavailable, "",
			"That did not work: Jackalope could not save the change. Nothing was changed; try again in a minute.")
	}
	switch action {
	case actionRotate:
		updated, jamfURL, err := c.channels.Rotate(rctx, inst.ID)
		if err != nil {
			return failed(err)
		}
		c.metrics.changes.WithLabelValues(action, "done").Inc()
		c.record(ec, s, updated, action, "New Jamf URL issued; the old one stopped working.")
		return c.render(ec, http.StatusOK, pageRotated, rotatedPage{frame: c.frame(s, "New Jamf URL"), Inst: updated, JamfURL: jamfURL})
	case actionDisable:
		reason := f.Reason
		if reason == "" {
			reason = "disabled in the console by " + cmp.Or(s.Name, s.UserID)
		}
		if _, err := c.channels.Disable(rctx, inst.ID, reason); err != nil {
			return failed(err)
		}
		return done("Disabled: "+reason, "disabled", 0)
	case actionEnable:
		if _, err := c.channels.Enable(rctx, inst.ID); err != nil {
			return failed(err)
		}
		return done("Enabled.", "enabled", 0)
	case actionJamfURL:
		if _, err := c.channels.SetJamfURL(rctx, inst.ID, f.JamfURL); err != nil {
			return failed(err)
		}
		if f.JamfURL == "" {
			return done("Jamf Pro URL cleared.", "jamf-url", 0)
		}
		return done("Jamf Pro URL set to "+f.JamfURL+".", "jamf-url", 0)
	case actionTest:
		return c.sendTest(ec, s, inst)
	case actionReplay, actionDrop:
		return c.settleDead(ec, s, inst, action, f, done, failed)
	case actionDelivery:
		updated, err := c.channels.SetDelivery(rctx, inst.ID, f.Delivery)
		if err != nil {
			return failed(err)
		}
		return done("Pace and digests set: "+describeDelivery(updated.Delivery)+".", "delivery", 0)
	case actionFilter:
		updated, err := c.channels.SetEventFilter(rctx, inst.ID, f.Filter)
		if err != nil {
			return failed(err)
		}
		return done("Event filter set: shows "+render.DescribeFilter(updated.Filter)+".", "filter", 0)
	case actionInbound:
		if f.NoAuth {
			if _, err := c.channels.ClearInboundAuth(rctx, inst.ID); err != nil {
				return failed(err)
			}
			return done("Inbound auth removed: Jamf Pro needs only the token.", "inbound-none", 0)
		}
		updated, page, detail, err := c.setInbound(rctx, inst.ID, f)
		if err != nil {
			return failed(err)
		}
		c.metrics.changes.WithLabelValues(action, "done").Inc()
		c.record(ec, s, updated, action, detail)
		page.frame, page.Inst = c.frame(s, page.Kind+" credentials"), updated
		return c.render(ec, http.StatusOK, pageCredentials, page)
	case actionResend:
		n, err := c.history.ResendHistory(rctx, inst.ID, f.Since, f.Until)
		if err != nil {
			if n > 0 {
				c.record(ec, s, inst, action, fmt.Sprintf("Resent %d event%s, then failed.", n, plural(n)))
			}
			return failed(err)
		}
		return done(fmt.Sprintf("Resent %d event%s delivered from %s to %s.", n, plural(n), seconds(f.Since), seconds(f.Until)), "resent", n)
	}
	return c.notFound(ec, s)
}

// sendTest posts a test message and shows Slack's answer.
func (c *Console) sendTest(ec echo.Context, s *session, inst registry.Installation) error {
	err := c.channels.SendTestMessage(ec.Request().Context(), inst.ID, cmp.Or(s.Name, s.UserID))
	p := testedPage{frame: c.frame(s, "Test message"), Inst: inst, OK: err == nil, Class: slack.Class(err)}
	var se *slack.Error
	switch {
	case err == nil:
		p.Status, p.Body = http.StatusOK, "ok"
	case errors.As(err, &se):
		p.Status, p.Body = se.Status, se.Body
	case errors.Is(err, registry.ErrNotFound):
		return c.notFound(ec, s)
	}
	detail := "Test message: Slack answered " + answer(p.Status, p.Body) + "."
	if err != nil && !errors.As(err, &se) {
		c.logger.Error("console test message failed", "installation", inst.ID, "err", err)
		detail = "Test message: not sent (" + p.Class + ")."
	}
	c.metrics.changes.WithLabelValues(actionTest, "done").Inc()
	c.record(ec, s, inst, actionTest, detail)
	return c.render(ec, http.StatusOK, pageTested, p)
}

// settleDead replays or drops one dead letter or all of a channel's.
func (c *Console) settleDead(ec echo.Context, s *session, inst registry.Installation, action string, f form,
	done func(detail, notice string, n int) error, failed func(error) error) error {
	rctx := ec.Request().Context()
	var (
		n   int
		err error
		one jamf.DeadLetter
	)
	if !f.All {
		if dead, lerr := c.dead.ListDead(rctx, inst.ID); lerr == nil {
			for _, d := range dead {
				if d.Seq == f.Seq {
					one = d
				}
			}
		}
	}
	switch {
	case action == actionReplay && f.All:
		n, err = c.dead.ReplayDead(rctx, inst.ID, false)
	case action == actionReplay:
		n, err = c.dead.ReplayDeadLetter(rctx, inst.ID, f.Seq)
	case f.All:
		n, err = c.dead.DropDead(rctx, inst.ID, false)
	default:
		n, err = c.dead.DropDeadLetter(rctx, inst.ID, f.Seq)
	}
	verb := map[string]string{actionReplay: "Replayed", actionDrop: "Dropped"}[action]
	if err != nil {
		if n > 0 {
			c.record(ec, s, inst, action, fmt.Sprintf("%s %d dead letter%s, then failed.", verb, n, plural(n)))
		}
		return failed(err)
	}
	detail := fmt.Sprintf("%s %d dead letter%s.", verb, n, plural(n))
	if !f.All {
		detail = fmt.Sprintf("%s %d dead letter%s: #%d %s (%s).", verb, n, plural(n), f.Seq, cmp.Or(one.Event, "event"), cmp.Or(one.Reason, "no reason"))
	}
	return done(detail, strings.ToLower(verb), n)
}

// record writes a change to the audit log. A failure is logged and does
// not undo the change, which is done by then.
func (c *Console) record(ec echo.Context, s *session, inst registry.Installation, action, detail string) {
	_, err := c.audit.AddAudit(ec.Request().Context(), registry.AuditEntry{
		TeamID:         s.TeamID,
		InstallationID: inst.ID,
		ChannelName:    inst.ChannelName,
		UserID:         s.UserID,
		UserName:       s.Name,
		Action:         action,
		Detail:         detail,
		Address:        address(ec.Request()),
	})
	if err != nil {
		c.logger.Error("console change not written to the audit log", "installation", inst.ID, "user", s.UserID, "action", action, "err", err)
	}
}

// address says where a request came from: the peer, and what a proxy in
// front says the client was (X-Forwarded-For, which the client can forge,
// so both are kept).
func address(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if xff := strings.TrimSpace(r.Header.Get("X-Forwarded-For")); xff != "" {
		return xff + " via " + host
	}
	return host
}

// notice turns the done= code of a redirect after a change into the
// sentence shown on the channel page; an unknown code shows nothing.
func notice(code string, n int) string {
	switch code {
	case "disabled":
		return "Disabled. Nothing is posted to the channel, and Jamf Pro gets 410 for its events."
	case "enabled":
		return "Enabled. Events are posted to the channel again."
	case "jamf-url":
		return "Saved the Jamf Pro URL."
	case "replayed":
		return fmt.Sprintf("Replayed %d dead letter%s: they are on their way to the channel.", n, plural(n))
	case "delivery":
		return "Saved the pace and digests: every dispatcher follows them from the channel's next message."
	case "filter":
		return "Saved the event filter: events it hides are no longer posted."
	case "inbound-none":
		return "Jamf Pro needs only the token again: set Authentication Type to None on the channel's webhooks."
	case "resent":
		return fmt.Sprintf("Resent %d event%s: they are on their way to the channel.", n, plural(n))
	case "dropped":
		return fmt.Sprintf("Dropped %d dead letter%s.", n, plural(n))
	}
	return ""
}

// answer shows Slack's answer as "404 channel_not_found", or "no answer".
func answer(status int, body string) string {
	switch {
	case status == 0:
		return "nothing (it could not be reached)"
	case body == "":
		return strconv.Itoa(status)
	}
	return strconv.Itoa(status) + " " + body
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// setInbound makes new credentials that Jamf Pro must send to installation
// id — a Basic password for f.User, or a value for the header f.Header —
// stores them, and returns the page that shows them once (without its
// frame and installation) and the audit log's detail, which holds no
// secret.
func (c *Console) setInbound(ctx context.Context, id string, f form) (registry.Installation, credentialsPage, string, error) {
	secret := newPassword()
	if f.Header != "" {
		updated, err := c.channels.SetHeaderAuth(ctx, id, f.Header, secret)
		// Header names are tokens and the value is base32: nothing to
		// escape, but json.Marshal says so rather than assumes it.
		headerJSON, _ := json.Marshal(map[string]string{f.Header: secret})
		return updated, credentialsPage{
			Kind: "Header", Secret: "value",
			Fields: []copyField{
				{"header-name", "Header name", f.Header},
				{"header-value", "Value", secret},
				{"header-json", "Header Authentication, as Jamf Pro takes it", string(headerJSON)},
			},
			Step: "paste the Header Authentication line above into it",
		}, "Jamf Pro must send the header " + f.Header + "; a new value was made and shown once.", err
	}
	updated, err := c.channels.SetBasicAuth(ctx, id, f.User, secret)
	return updated, credentialsPage{
		Kind: "Basic", Secret: "password",
		Fields: []copyField{{"basic-user", "User name", f.User}, {"basic-password", "Password", secret}},
		Step:   "with the user name and password above",
	}, "Jamf Pro must send HTTP Basic credentials (user " + f.User + "); a new password was made and shown once.", err
}
