package console

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
)

const (
	// maxDeadShown bounds the dead letters a channel page lists; the rest
	// are counted, and replay all and drop all still take them all.
	maxDeadShown = 100
	// auditShown is how many changes a channel page shows.
	auditShown = 20
)

// channelRow is one channel on the channels page.
type channelRow struct {
	Inst      registry.Installation
	Dead      int
	Delivery  *DeliveryState // nil without the delivery engine's view
	CanChange bool
	Attention bool
	attention int // higher first
}

// Attention levels of a channel, worst first: it takes nothing (disabled,
// or Slack called it gone), its posts fail, dead letters wait for someone,
// Slack paused it (it resumes by itself), it is behind and gets digests.
const (
	attentionNone = iota
	attentionDigest
	attentionPaused
	attentionDeadLetters
	attentionFailing
	attentionStopped
)

// attentionOf ranks how much a channel needs someone at now.
func attentionOf(inst registry.Installation, dead int, d *DeliveryState, now time.Time) int {
	switch {
	case inst.Status != registry.StatusActive || d != nil && d.Shared.Dead != nil:
		return attentionStopped
	case d != nil && d.Shared.Failing():
		return attentionFailing
	case dead > 0:
		return attentionDeadLetters
	case d != nil && d.Paused(now):
		return attentionPaused
	case d != nil && d.Digest():
		return attentionDigest
	}
	return attentionNone
}

// channelsPage lists the channels of the member's workspace.
type channelsPage struct {
	frame
	Rows    []channelRow
	Admin   bool
	Problem string // a part of the page that could not be read
}

// channelPage is one channel with its actions.
type channelPage struct {
	frame
	Inst       registry.Installation
	CanChange  bool
	Admin      bool
	Dead       []deadRow
	DeadTotal  int
	DeadHidden int
	Delivery   *DeliveryState
	Settings   deliveryView
	Filter     filterView
	Inbound    string // what Jamf Pro must send, never a secret
	BasicUser  string // the user name the Basic auth form suggests
	AuthHeader string // the header name the header auth form suggests
	History    historyView
	Changes    []registry.AuditEntry
	Notice     string
	Problem    string
}

// deadRow is one dead letter with the message it would have been.
type deadRow struct {
	jamf.DeadLetter
	Preview *preview
}

// changesPage is the workspace's audit log.
type changesPage struct {
	frame
	Changes []registry.AuditEntry
}

// requireSession returns the signed-in member, or answers the request:
// a page view goes to the sign-in, anything else is refused.
func (c *Console) requireSession(ec echo.Context) (*session, error) {
	if s := c.session(ec); s != nil {
		return s, nil
	}
	if ec.Request().Method == http.MethodGet {
		return nil, ec.Redirect(http.StatusFound, c.link("/admin/login"))
	}
	return nil, c.problem(ec, http.StatusUnauthorized, problemPage{
		Heading: "You are signed out",
		Message: "Your sign-in expired or was never made, so nothing was changed.",
		Hint:    "Sign in again, then repeat what you were doing.",
		SignIn:  true,
	})
}

// visible reports whether s may see inst: it belongs to s's workspace, or
// it was added by hand (no workspace) and s is an admin.
func (c *Console) visible(s *session, inst registry.Installation) bool {
	if inst.TeamID == "" {
		return c.admins[s.UserID]
	}
	return inst.TeamID == s.TeamID
}

// canChange reports whether s may change inst (which s can see): s
// installed it, or s is an admin.
func (c *Console) canChange(s *session, inst registry.Installation) bool {
	return c.admins[s.UserID] || inst.InstallingUser != "" && inst.InstallingUser == s.UserID
}

// channel returns the installation id names if s may see it; an unknown
// or invisible one is registry.ErrNotFound.
func (c *Console) channel(ctx context.Context, s *session, id string) (registry.Installation, error) {
	inst, err := c.channels.Installation(ctx, id)
	if err != nil {
		return registry.Installation{}, err
	}
	if !c.visible(s, inst) {
		return registry.Installation{}, registry.ErrNotFound
	}
	return inst, nil
}

// deliveryTimeout bounds the delivery engine's view of a page's channels:
// a slow NATS hides the panels rather than holding the page.
const deliveryTimeout = 5 * time.Second

// deliveryStates asks Delivery about ids, when it is set; a failure hides
// the panels and is logged.
func (c *Console) deliveryStates(ctx context.Context, ids []string) map[string]DeliveryState {
	if c.delivery == nil || len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	states, err := c.delivery.DeliveryStates(ctx, ids)
	if err != nil {
		c.logger.Warn("console: delivery state unavailable", "err", err)
		return nil
	}
	return states
}

// handleChannels shows the channels of the member's workspace, those that
// need attention first.
func (c *Console) handleChannels(ec echo.Context) error {
	s, err := c.requireSession(ec)
	if s == nil {
		return err
	}
	rctx := ec.Request().Context()
	all, err := c.channels.Installations(rctx)
	if err != nil {
		return err
	}
	page := channelsPage{frame: c.frame(s, "Channels"), Admin: c.admins[s.UserID]}
	counts, err := c.dead.DeadCounts(rctx)
	if err != nil {
		c.logger.Warn("console: dead letters cannot be counted", "err", err)
		page.Problem = "Dead letters cannot be counted right now."
	}
	var ids []string
	for _, inst := range all {
		if c.visible(s, inst) {
			page.Rows = append(page.Rows, channelRow{Inst: inst, Dead: counts[inst.ID], CanChange: c.canChange(s, inst)})
			ids = append(ids, inst.ID)
		}
	}
	states := c.deliveryStates(rctx, ids)
	now := c.now()
	for i := range page.Rows {
		r := &page.Rows[i]
		if d, ok := states[r.Inst.ID]; ok {
			r.Delivery = &d
		}
		r.attention = attentionOf(r.Inst, r.Dead, r.Delivery, now)
		r.Attention = r.attention > attentionNone
	}
	waiting := func(r channelRow) int {
		if r.Delivery == nil {
			return 0
		}
		return r.Delivery.Waiting
	}
	slices.SortStableFunc(page.Rows, func(a, b channelRow) int {
		return cmp.Or(
			cmp.Compare(b.attention, a.attention),
			cmp.Compare(b.Dead, a.Dead),
			cmp.Compare(waiting(b), waiting(a)),
			cmp.Compare(strings.ToLower(a.Inst.ChannelName), strings.ToLower(b.Inst.ChannelName)),
			cmp.Compare(a.Inst.ID, b.Inst.ID))
	})
	return c.render(ec, http.StatusOK, pageChannels, page)
}

// handleChannel shows one channel, its dead letters, its recent changes
// and, for who may change it, its actions.
func (c *Console) handleChannel(ec echo.Context) error {
	s, err := c.requireSession(ec)
	if s == nil {
		return err
	}
	inst, err := c.channel(ec.Request().Context(), s, ec.Param("id"))
	if errors.Is(err, registry.ErrNotFound) {
		return c.notFound(ec, s)
	}
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(ec.QueryParam("n"))
	return c.showChannel(ec, s, inst, http.StatusOK, notice(ec.QueryParam("done"), n), "")
}

// showChannel renders inst's page with a notice or a problem on top.
func (c *Console) showChannel(ec echo.Context, s *session, inst registry.Installation, status int, note, problem string) error {
	rctx := ec.Request().Context()
	page := channelPage{
		frame:     c.frame(s, inst.ChannelName),
		Inst:      inst,
		CanChange: c.canChange(s, inst),
		Admin:     c.admins[s.UserID],
		Notice:    note,
		Problem:   problem,
	}
	if page.Title == "" {
		page.Title = "Channel"
	}
	dead, err := c.dead.ListDead(rctx, inst.ID)
	if err != nil {
		c.logger.Warn("console: dead letters cannot be listed", "installation", inst.ID, "err", err)
		page.Problem = strings.TrimSpace(page.Problem + " Dead letters cannot be read right now.")
	}
	page.DeadTotal = len(dead)
	if len(dead) > maxDeadShown {
		page.DeadHidden = len(dead) - maxDeadShown
		dead = dead[:maxDeadShown]
	}
	for _, d := range dead {
		page.Dead = append(page.Dead, deadRow{DeadLetter: d, Preview: c.previewEvent(d.Body, inst.JamfURL)})
	}
	if d, ok := c.deliveryStates(rctx, []string{inst.ID})[inst.ID]; ok {
		page.Delivery = &d
	}
	page.Settings = c.deliveryViewOf(inst)
	page.Filter = filterViewOf(inst.Filter)
	page.Inbound = describeInbound(inst.InboundAuth)
	page.BasicUser, page.AuthHeader = defaultBasicUser, defaultAuthHeader
	if inst.InboundAuth.Scheme == registry.AuthHeader && !strings.Contains(inst.InboundAuth.Headers, ",") {
		page.AuthHeader = inst.InboundAuth.Headers
	}
	page.History = c.historyViewOf()
	page.Changes, err = c.audit.ListAudit(rctx, registry.AuditFilter{TeamID: s.TeamID, InstallationID: inst.ID, Limit: auditShown})
	if err != nil {
		c.logger.Warn("console: audit log cannot be read", "installation", inst.ID, "err", err)
	}
	return c.render(ec, status, pageChannel, page)
}

// handleChanges shows the workspace's audit log.
func (c *Console) handleChanges(ec echo.Context) error {
	s, err := c.requireSession(ec)
	if s == nil {
		return err
	}
	changes, err := c.audit.ListAudit(ec.Request().Context(), registry.AuditFilter{TeamID: s.TeamID, Limit: registry.MaxAuditLimit})
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, pageChanges, changesPage{frame: c.frame(s, "Changes"), Changes: changes})
}
