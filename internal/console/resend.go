package console

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
)

const (
	// resendListed bounds the events a resend preview lists; the rest are
	// counted.
	resendListed = 50
	// maxResendWindow bounds a window typed by hand.
	maxResendWindow = 31 * 24 * time.Hour
)

// resendWindows are the windows the resend form offers, up to the
// history's age.
var resendWindows = []time.Duration{15 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// historyView is the resend form.
type historyView struct {
	On      bool // the history is kept
	MaxAge  string
	Windows []windowChoice
}

// windowChoice is one window the form offers.
type windowChoice struct {
	Value, Label string
}

// historyViewOf fills the resend form.
func (c *Console) historyViewOf() historyView {
	v := historyView{On: c.history != nil && c.maxAge > 0, MaxAge: humanDuration(c.maxAge)}
	for _, w := range resendWindows {
		if w <= c.maxAge {
			v.Windows = append(v.Windows, windowChoice{Value: w.String(), Label: "the last " + humanDuration(w)})
		}
	}
	if len(v.Windows) == 0 && v.On {
		v.Windows = []windowChoice{{Value: c.maxAge.String(), Label: "the last " + humanDuration(c.maxAge)}}
	}
	return v
}

// resendPage previews a resend: what the window holds, before the member
// confirms.
type resendPage struct {
	frame
	Inst     registry.Installation
	Since    time.Time
	Until    time.Time
	Total    int
	Kinds    []kindCount
	Listed   []resendEvent
	Hidden   int // events the channel's filter hides: resent, not posted
	Fields   []field
	Disabled bool
}

// kindCount is how many events of one type a window holds.
type kindCount struct {
	Event string
	Count int
}

// resendEvent is one event a preview lists.
type resendEvent struct {
	Event     string
	Summary   string
	Received  time.Time
	Delivered time.Time
	Hidden    bool
}

// readResend reads the resend form: a window back from now for a preview,
// or, confirmed, the exact window the preview showed.
func (c *Console) readResend(pf url.Values) (f form, problem string) {
	if c.history == nil || c.maxAge <= 0 {
		return f, "No delivered events are kept (HISTORY_MAX_AGE=0), so none can be resent."
	}
	if pf.Get("confirmed") == "yes" {
		since, err1 := time.Parse(time.RFC3339Nano, pf.Get("since"))
		until, err2 := time.Parse(time.RFC3339Nano, pf.Get("until"))
		if err1 != nil || err2 != nil || !since.Before(until) || until.Sub(since) > maxResendWindow || until.After(c.now().Add(time.Minute)) {
			return f, "That window cannot be resent; preview it again."
		}
		f.Since, f.Until = since, until
		return f, ""
	}
	w, err := time.ParseDuration(pf.Get("window"))
	if err != nil || w <= 0 || w > maxResendWindow {
		return f, "Pick how far back to resend."
	}
	f.Until = c.now()
	f.Since = f.Until.Add(-w)
	return f, ""
}

// previewResend shows what resending f's window would send.
func (c *Console) previewResend(ec echo.Context, s *session, inst registry.Installation, f form) error {
	p := resendPage{frame: c.frame(s, "Resend"), Inst: inst, Since: f.Since, Until: f.Until, Fields: f.hidden(actionResend),
		Disabled: inst.Status != registry.StatusActive}
	kinds := map[string]int{}
	err := c.history.EachHistory(ec.Request().Context(), inst.ID, f.Since, f.Until, func(d jamf.DeadLetter) error {
		p.Total++
		kinds[d.Event]++
		hidden := false
		if !inst.Filter.IsZero() {
			env, err := jamf.Parse(d.Body)
			hidden = err == nil && !render.Shows(inst.Filter, env)
		}
		if hidden {
			p.Hidden++
		}
		if len(p.Listed) < resendListed {
			p.Listed = append(p.Listed, resendEvent{Event: d.Event, Summary: oneLine(d.Body, d.Event), Received: d.ReceivedAt, Delivered: d.At, Hidden: hidden})
		}
		return nil
	})
	if err != nil {
		c.logger.Warn("console: history cannot be read", "installation", inst.ID, "err", err)
		return c.showChannel(ec, s, inst, http.StatusServiceUnavailable, "", "The history of delivered events cannot be read right now; try again in a minute.")
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		p.Kinds = append(p.Kinds, kindCount{Event: k, Count: kinds[k]})
	}
	slices.SortStableFunc(p.Kinds, func(a, b kindCount) int { return cmp.Compare(b.Count, a.Count) })
	return c.render(ec, http.StatusOK, pageResend, p)
}

// seconds writes a time as the audit log shows a resend's window.
func seconds(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// stamp writes a time as a resend form carries it.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// humanDuration writes d as the forms show it: "15 minutes", "2 hours",
// "7 days".
func humanDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d <= 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.Round(time.Second).String()
}
