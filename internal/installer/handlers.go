package installer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
)

const (
	// DefaultCallbackTimeout bounds the work after Slack's redirect:
	// exchange, store, publish and welcome. It runs detached from the
	// request, since a code is single use: once it is sent to Slack, the
	// install is finished even if the browser goes away. It is shorter than
	// the HTTP server's write timeout (30 s), and the callback also pushes
	// its own write deadline past it, so the page that shows the Jamf URL
	// is written however slow Slack is.
	DefaultCallbackTimeout = 20 * time.Second
	// pageWriteMargin is the time left after the callback's work to render
	// and write its page.
	pageWriteMargin = 5 * time.Second
	// maxCodeLength bounds the code passed on to Slack; real ones are
	// far shorter.
	maxCodeLength = 1024
	// maxFormBytes bounds the Jamf Pro URL form's body.
	maxFormBytes = 16 << 10
	// formTokenTTL is how long the Jamf Pro URL form of a result page works.
	formTokenTTL = time.Hour
	// formTokenPurpose is the purpose the Jamf Pro URL form's token is
	// signed for (see secret.Keys.SignToken).
	formTokenPurpose = "jamf url form"
	// defaultAuthorizeURL is Slack's authorize page.
	defaultAuthorizeURL = "https://slack.com/oauth/v2/authorize"
)

// adminCodes are OAuth errors that come from this server's or the Slack
// app's configuration, not from the person installing: they answer 500.
var adminCodes = map[string]bool{
	"bad_client_secret":                true,
	"invalid_client_id":                true,
	"bad_redirect_uri":                 true,
	"oauth_authorization_url_mismatch": true,
	"invalid_grant_type":               true,
}

// Register adds the installer's routes to e: GET / (the "Add to Slack"
// page), GET /install (start and callback of the OAuth flow), POST
// /installations/:id/jamf-url (the result page's Jamf Pro URL form) and the
// pages' assets under /assets/.
func (in *Installer) Register(e *echo.Echo) {
	e.GET("/", in.handleIndex)
	e.GET("/install", in.handleInstall)
	e.POST("/installations/:id/jamf-url", in.handleJamfURL)
	e.StaticFS("/assets", assets())
}

func (in *Installer) handleIndex(c echo.Context) error {
	return in.render(c, http.StatusOK, pageIndex, in.indexPage())
}

func (in *Installer) indexPage() indexPage {
	missing := in.oauth.Missing()
	return indexPage{
		Title:       "Add to Slack",
		Configured:  in.configured(),
		Missing:     missing,
		RedirectURI: in.redirectURI(),
	}
}

// notConfigured answers a request to /install while the OAuth app is not
// set up with the start page, which says what to set.
func (in *Installer) notConfigured(c echo.Context) error {
	return in.render(c, http.StatusServiceUnavailable, pageIndex, in.indexPage())
}

// handleInstall starts the flow, or handles Slack's redirect back.
func (in *Installer) handleInstall(c echo.Context) error {
	q := c.QueryParams()
	switch {
	case q.Has("error"):
		return in.handleDenied(c)
	case q.Has("code") || q.Has("state"):
		return in.handleCallback(c)
	}
	return in.startInstall(c)
}

// startInstall binds a new state to a cookie and sends the browser to
// Slack's consent screen.
func (in *Installer) startInstall(c echo.Context) error {
	if !in.configured() {
		return in.notConfigured(c)
	}
	authorize := in.oauth.AuthorizeURL
	if authorize == "" {
		authorize = defaultAuthorizeURL
	}
	u, err := url.Parse(authorize)
	if err != nil {
		return fmt.Errorf("slack authorize url: %w", err)
	}
	state, cookie, expires := in.states.issue()
	q := u.Query()
	q.Set("client_id", in.oauth.ClientID)
	q.Set("scope", strings.Join(in.oauth.Scopes, ","))
	q.Set("redirect_uri", in.redirectURI())
	q.Set("state", state)
	u.RawQuery = q.Encode()
	c.SetCookie(in.stateCookie(cookie, expires))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, u.String())
}

// stateCookie returns the cookie carrying value until expires; an empty
// value deletes it.
func (in *Installer) stateCookie(value string, expires time.Time) *http.Cookie {
	ck := &http.Cookie{
		Name:     stateCookie,
		Value:    value,
		Path:     in.basePath + "/install",
		Expires:  expires,
		MaxAge:   int(StateTTL / time.Second),
		HttpOnly: true,
		Secure:   strings.HasPrefix(in.baseURL, "https://"),
		SameSite: http.SameSiteLaxMode,
	}
	if value == "" {
		ck.Expires = time.Unix(0, 0)
		ck.MaxAge = -1
	}
	return ck
}

// checkState checks the callback's state against its signed cookie, and
// clears the cookie whatever the outcome. The state is used up only once
// the install succeeds (states.claim).
func (in *Installer) checkState(c echo.Context) error {
	var cookie string
	if ck, err := c.Cookie(stateCookie); err == nil {
		cookie = ck.Value
	}
	c.SetCookie(in.stateCookie("", time.Time{}))
	return in.states.check(c.QueryParam("state"), cookie)
}

// handleDenied answers Slack's redirect after the admin cancelled (or
// Slack refused before any code was issued). It changes nothing, so the
// state is not required, and its cookie is cleared.
func (in *Installer) handleDenied(c echo.Context) error {
	_ = in.checkState(c)
	code := slack.ErrorCode(c.QueryParam("error"))
	if code == "access_denied" {
		in.metrics.installs.WithLabelValues(outcomeCancelled).Inc()
		in.logger.Info("install cancelled in Slack")
		return in.problem(c, http.StatusOK, problemPage{
			Heading:   "Installation cancelled",
			Message:   "The installation was cancelled in Slack, so nothing was installed and nothing was posted.",
			Hint:      "To install Jackalope, start again and choose Allow on Slack's page.",
			Cancelled: true,
		})
	}
	return in.oauthFailed(c, &slack.OAuthError{Code: code})
}

// handleCallback finishes an install: state, code exchange, store,
// publish, welcome message, result page. The state is used up only after
// Slack accepted the code, so callbacks with made-up codes use up nothing.
func (in *Installer) handleCallback(c echo.Context) error {
	if err := in.checkState(c); err != nil {
		in.metrics.installs.WithLabelValues(outcomeBadState).Inc()
		in.logger.Warn("install callback refused", "reason", err)
		return in.problem(c, http.StatusBadRequest, stateProblem(err))
	}
	if !in.configured() {
		return in.notConfigured(c)
	}
	code := c.QueryParam("code")
	if code == "" || len(code) > maxCodeLength {
		return in.oauthFailed(c, &slack.OAuthError{Code: "invalid_code"})
	}

	in.extendWriteDeadline(c)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), in.callbackTimeout)
	defer cancel()
	res, err := in.slack.Exchange(ctx, code, in.redirectURI())
	if err != nil {
		return in.exchangeFailed(c, err)
	}
	if err := in.states.claim(ctx, c.QueryParam("state")); err != nil {
		if errors.Is(err, errStateReplayed) || errors.Is(err, errStateBusy) {
			in.metrics.installs.WithLabelValues(outcomeBadState).Inc()
			in.logger.Warn("install callback refused", "reason", err)
			return in.problem(c, http.StatusBadRequest, stateProblem(err))
		}
		return in.notSaved(c, res, err)
	}
	done, err := in.save(ctx, registry.Installation{
		TeamID:           res.TeamID,
		TeamName:         res.TeamName,
		ChannelID:        res.ChannelID,
		ChannelName:      res.ChannelName,
		ConfigurationURL: res.ConfigurationURL,
		InstallingUser:   res.AuthedUserID,
	}, res.WebhookURL)
	if err != nil {
		return in.notSaved(c, res, err)
	}

	outcome := outcomeInstalled
	if !done.created {
		outcome = outcomeReinstalled
	}
	in.metrics.installs.WithLabelValues(outcome).Inc()
	in.logger.Info("installed", "installation", done.inst.ID, "team_id", res.TeamID, "channel_id", res.ChannelID,
		"channel", res.ChannelName, "user", res.AuthedUserID, "outcome", outcome)

	jamfURL := in.jamfURL(done.token)
	page := resultPage{
		Title:       "Installed",
		JamfURL:     jamfURL,
		ChannelName: done.inst.ChannelName,
		Reinstalled: !done.created,
		jamfURLForm: jamfURLForm{ID: done.inst.ID, FormToken: in.formToken(done.inst.ID), JamfProURL: done.inst.JamfURL},
	}
	if err := in.slack.Post(ctx, res.WebhookURL, render.Welcome(jamfURL)); err != nil {
		in.metrics.welcomeFailures.Inc()
		in.logger.Warn("welcome message not posted", "installation", done.inst.ID, "class", slack.Class(err), "err", err)
		page.WelcomeProblem = welcomeProblem(err)
	}
	return in.render(c, http.StatusOK, pageResult, page)
}

// extendWriteDeadline lets the callback's answer be written up to
// pageWriteMargin after its work's timeout, whatever the server's write
// timeout: the result page is the one place that shows the Jamf URL.
func (in *Installer) extendWriteDeadline(c echo.Context) {
	rc := http.NewResponseController(c.Response().Writer)
	if err := rc.SetWriteDeadline(time.Now().Add(in.callbackTimeout + pageWriteMargin)); err != nil {
		// A writer without deadlines (a test recorder) has none to miss.
		in.logger.Debug("callback write deadline not extended", "err", err)
	}
}

// notSaved answers an install Slack approved that could not be stored.
func (in *Installer) notSaved(c echo.Context, res slack.OAuthResult, err error) error {
	in.metrics.installs.WithLabelValues(outcomeFailed).Inc()
	in.logger.Error("install not saved", "team_id", res.TeamID, "channel_id", res.ChannelID, "err", err)
	return in.problem(c, http.StatusServiceUnavailable, problemPage{
		Heading: "Installation not finished",
		Message: "Slack approved the installation, but Jackalope could not save or activate it.",
		Hint: "Wait a minute and start again: installing into the same channel again is safe and keeps its Jamf URL. " +
			"If it keeps failing, an administrator should check the Jackalope logs.",
	})
}

// exchangeFailed answers a failed code exchange.
func (in *Installer) exchangeFailed(c echo.Context, err error) error {
	var oerr *slack.OAuthError
	if errors.As(err, &oerr) {
		return in.oauthFailed(c, oerr)
	}
	if errors.Is(err, slack.ErrWebhookRefused) {
		in.metrics.installs.WithLabelValues(outcomeWebhookRefused).Inc()
		in.logger.Error("slack granted an incoming webhook outside SLACK_WEBHOOK_HOSTS; nothing installed", "err", err)
		return in.problem(c, http.StatusBadGateway, problemPage{
			Heading: "Jackalope may not post to this webhook",
			Message: "Slack approved the installation, but gave an incoming webhook on a host this Jackalope does not post to, so nothing was installed.",
			Hint:    "An administrator must check SLACK_WEBHOOK_HOSTS (and SLACK_API_URL), then start again.",
		})
	}
	in.metrics.installs.WithLabelValues(outcomeSlackUnavailable).Inc()
	if errors.Is(err, slack.ErrNoWebhook) {
		in.logger.Error("slack granted no incoming webhook; the app must request the incoming-webhook scope")
		return in.problem(c, http.StatusBadGateway, problemPage{
			Heading: "Slack granted no incoming webhook",
			Message: "Slack approved the installation but gave Jackalope no incoming webhook to post with, so nothing was installed.",
			Hint: "An administrator must add the incoming-webhook scope to the Slack app " +
				"(and to SLACK_SHAREABLE_URL, if it is set), then start again.",
		})
	}
	in.logger.Warn("slack oauth exchange failed", "err", err)
	return in.problem(c, http.StatusBadGateway, problemPage{
		Heading: "Slack could not be reached",
		Message: "Jackalope could not finish the installation with Slack, so nothing was installed.",
		Hint:    "Wait a minute and start again with the Add to Slack button.",
	})
}

// oauthFailed answers Slack refusing the install with what went wrong and
// what to do. Only the code is logged.
func (in *Installer) oauthFailed(c echo.Context, oerr *slack.OAuthError) error {
	code := slack.ErrorCode(oerr.Code)
	in.metrics.oauthErrors.WithLabelValues(codeLabel(code)).Inc()
	status, outcome := http.StatusBadRequest, outcomeOAuthError
	switch {
	case errors.Is(oerr, slack.ErrUnavailable):
		status, outcome = http.StatusBadGateway, outcomeSlackUnavailable
	case adminCodes[code]:
		status = http.StatusInternalServerError
	}
	in.metrics.installs.WithLabelValues(outcome).Inc()
	in.logger.Warn("slack refused the install", "code", code)
	return in.problem(c, status, problemPage{
		Heading: "Slack did not accept the installation",
		Message: "Nothing was installed.",
		Hint:    (&slack.OAuthError{Code: code}).Hint(),
		Code:    code,
	})
}

// stateProblem explains a refused state.
func stateProblem(err error) problemPage {
	p := problemPage{Heading: "This install link cannot be used"}
	switch {
	case errors.Is(err, errStateMissing):
		p.Message = "The request did not carry the install's state, or your browser did not send back its cookie " +
			"(cookies blocked, or the install was started in another browser)."
	case errors.Is(err, errStateExpired):
		p.Message = "The install was started more than 10 minutes ago."
	case errors.Is(err, errStateReplayed):
		p.Message = "This install link was already used, maybe because the page was reloaded."
	case errors.Is(err, errStateBusy):
		p.Message = "Too many installs are in progress right now."
	default:
		p.Message = "The install's state does not match the one this browser was given."
	}
	p.Hint = "Nothing was installed. Start again with the Add to Slack button, in the same browser."
	return p
}

// welcomeProblem says in a sentence why Slack did not take the welcome.
func welcomeProblem(err error) string {
	switch slack.Class(err) {
	case slack.ClassChannelGone:
		return "Slack says the channel cannot receive messages (the webhook was removed or the channel archived)."
	case slack.ClassBadMessage:
		return "Slack refused the message."
	case slack.ClassRateLimited:
		return "Slack asked Jackalope to slow down."
	}
	return "Slack could not be reached."
}

// handleJamfURL sets an installation's Jamf Pro base URL from the result
// page's form. The form carries a signed, expiring token for that
// installation, so nobody else can change it.
func (in *Installer) handleJamfURL(c echo.Context) error {
	id := c.Param("id")
	req := c.Request()
	req.Body = http.MaxBytesReader(c.Response(), req.Body, maxFormBytes)
	if err := req.ParseForm(); err != nil {
		return in.problem(c, http.StatusBadRequest, problemPage{
			Heading: "Jamf Pro URL not saved",
			Message: "The form could not be read.",
		})
	}
	token := req.PostForm.Get("token")
	if !in.checkFormToken(id, token) {
		return in.problem(c, http.StatusForbidden, problemPage{
			Heading: "Jamf Pro URL not saved",
			Message: "This form has expired or does not belong to this installation.",
			Hint: "An administrator can set the address with: channels set-jamf-url " + id + " URL. " +
				"Installing into the same channel again also shows a fresh form.",
		})
	}
	form := jamfURLForm{ID: id, FormToken: token, JamfProURL: req.PostForm.Get("jamf_url")}
	jamfPro, err := registry.CheckJamfURL(form.JamfProURL)
	if err != nil {
		return in.render(c, http.StatusBadRequest, pageJamfURL, jamfURLPage{
			Title: "Jamf Pro URL not saved", Problem: err.Error(), jamfURLForm: form,
		})
	}
	inst, err := in.SetJamfURL(req.Context(), id, jamfPro)
	if errors.Is(err, registry.ErrNotFound) {
		return in.problem(c, http.StatusNotFound, problemPage{
			Heading: "Jamf Pro URL not saved",
			Message: "This installation no longer exists.",
		})
	}
	if err != nil {
		return err
	}
	in.logger.Info("jamf pro url set", "installation", inst.ID)
	form.JamfProURL = inst.JamfURL
	return in.render(c, http.StatusOK, pageJamfURL, jamfURLPage{Title: "Jamf Pro URL saved", Saved: true, jamfURLForm: form})
}

// formToken returns the token of id's Jamf Pro URL form: the installation
// ID signed for formTokenPurpose until formTokenTTL from now.
func (in *Installer) formToken(id string) string {
	return in.keys.SignToken(formTokenPurpose, []byte(id), in.now().Add(formTokenTTL))
}

// checkFormToken reports whether token is an unexpired form token of id.
func (in *Installer) checkFormToken(id, token string) bool {
	signed, err := in.keys.OpenToken(formTokenPurpose, token, in.now())
	return err == nil && id != "" && subtle.ConstantTimeCompare(signed, []byte(id)) == 1
}
