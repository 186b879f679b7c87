package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/jackalope-app/jackalope/internal/secret"
	"github.com/jackalope-app/jackalope/internal/slack"
)

const (
	// sessionCookie carries the signed session of a signed-in member.
	sessionCookie = "jackalope_console"
	// loginCookie carries the sign-in's state and nonce from /admin/login
	// to /admin/callback.
	loginCookie = "jackalope_console_login"
	// sessionTTL is how long a sign-in lasts. The session is a signed
	// cookie the server keeps no copy of, so signing out forgets it in this
	// browser only; the expiry bounds a copied cookie.
	sessionTTL = 8 * time.Hour
	// loginTTL is how long Slack's consent screen may take.
	loginTTL = 10 * time.Minute
	// discoveryRetry is the least time between two discovery attempts
	// after one failed, so a Slack outage is not hammered by every click.
	discoveryRetry = 5 * time.Second
	// callbackTimeout bounds the code exchange and the key fetch.
	callbackTimeout = 30 * time.Second

	// Purposes of the tokens the console signs (see secret.SignToken).
	purposeSession = "console session"
	purposeLogin   = "console login"
	purposeCSRF    = "console csrf"
)

// session is a signed-in member, as the session cookie carries it.
type session struct {
	ID       string    `json:"sid"` // random, binds CSRF tokens to this sign-in
	UserID   string    `json:"uid"`
	TeamID   string    `json:"tid"`
	Name     string    `json:"name"`
	TeamName string    `json:"team"`
	Expires  time.Time `json:"-"`
}

// login is the sign-in in progress, as the login cookie carries it.
type login struct {
	State string `json:"state"`
	Nonce string `json:"nonce"`
}

// slackClaims are the id_token claims the console reads.
type slackClaims struct {
	UserID   string `json:"https://slack.com/user_id"`
	TeamID   string `json:"https://slack.com/team_id"`
	TeamName string `json:"https://slack.com/team_name"`
	Name     string `json:"name"`
}

// provider discovers Slack's OpenID Connect endpoints on first use, not at
// start-up, so a Slack outage never stops the service from starting; a
// failed discovery is tried again on a later sign-in.
type provider struct {
	issuer string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	p       *oidc.Provider
	lastTry time.Time
	lastErr error
}

func newProvider(issuer string, client *http.Client, now func() time.Time) *provider {
	return &provider{issuer: issuer, client: client, now: now}
}

// get returns the discovered provider, discovering it now if needed.
func (p *provider) get(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		return p.p, nil
	}
	if p.lastErr != nil && p.now().Sub(p.lastTry) < discoveryRetry {
		return nil, p.lastErr
	}
	p.lastTry = p.now()
	// The provider keeps the client (and so its timeout) for the key set.
	found, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.issuer)
	if err != nil {
		p.lastErr = fmt.Errorf("discover %s/.well-known/openid-configuration: %w", p.issuer, err)
		return nil, p.lastErr
	}
	p.p, p.lastErr = found, nil
	return found, nil
}

// oauthConfig is the OAuth 2 side of Sign in with Slack on provider p.
func (c *Console) oauthConfig(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.oidc.ClientID,
		ClientSecret: c.oidc.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  c.baseURL + "/admin/callback",
		Scopes:       []string{oidc.ScopeOpenID, "profile"},
	}
}

// handleLogin sends the browser to Slack's authorize page with a fresh
// state and nonce, both bound to a signed cookie.
func (c *Console) handleLogin(ec echo.Context) error {
	if missing := c.oidc.missing(); len(missing) > 0 {
		return c.problem(ec, http.StatusServiceUnavailable, problemPage{
			Heading: "Sign in with Slack is not set up",
			Message: "This server has no Slack app to sign in with.",
			Hint: "An administrator must set " + joinAnd(missing) + " (the same Slack app as Add to Slack) " +
				"and add " + c.baseURL + "/admin/callback to the app's Redirect URLs.",
		})
	}
	p, err := c.provider.get(ec.Request().Context())
	if err != nil {
		return c.slackUnreachable(ec, err)
	}
	l := login{State: rand.Text(), Nonce: rand.Text()}
	payload, _ := json.Marshal(l) // two strings always encode
	expires := c.now().Add(loginTTL)
	ec.SetCookie(c.cookie(loginCookie, "/admin/callback", c.keys.SignToken(purposeLogin, payload, expires), expires))
	ec.Response().Header().Set("Cache-Control", "no-store")
	return ec.Redirect(http.StatusFound, c.oauthConfig(p).AuthCodeURL(l.State, oidc.Nonce(l.Nonce)))
}

// slackUnreachable answers a sign-in that cannot reach Slack's OpenID
// Connect discovery.
func (c *Console) slackUnreachable(ec echo.Context, err error) error {
	c.metrics.signIns.WithLabelValues(outcomeSlackUnavailable).Inc()
	c.logger.Warn("sign in with slack: discovery failed", "err", err)
	return c.problem(ec, http.StatusServiceUnavailable, problemPage{
		Heading: "Slack cannot be reached",
		Message: "Jackalope could not reach Slack's sign-in (" + c.provider.issuer + "), so nobody can sign in right now.",
		Hint:    "Wait a minute and try again. If it keeps failing, an administrator should check SLACK_OIDC_ISSUER and this server's access to Slack.",
		Retry:   true,
	})
}

// handleCallback finishes a sign-in: the state against the login cookie,
// the code exchanged at openid.connect.token, the id_token verified by
// go-oidc (signature, issuer, audience, expiry) and its nonce against the
// cookie's. Only then is the session cookie set.
func (c *Console) handleCallback(ec echo.Context) error {
	req := ec.Request()
	var raw string
	if ck, err := req.Cookie(loginCookie); err == nil {
		raw = ck.Value
	}
	ec.SetCookie(c.cookie(loginCookie, "/admin/callback", "", time.Time{}))
	refuse := func(outcome, why string, status int, page problemPage) error {
		c.metrics.signIns.WithLabelValues(outcome).Inc()
		c.logger.Warn("sign in refused", "outcome", outcome, "reason", why)
		if page.Hint == "" {
			page.Hint = "Nobody was signed in. Start again from the sign-in page, in the same browser."
		}
		page.SignIn = true
		return c.problem(ec, status, page)
	}

	var l login
	payload, err := c.keys.OpenToken(purposeLogin, raw, c.now())
	if err == nil {
		err = json.Unmarshal(payload, &l)
	}
	q := req.URL.Query()
	if err != nil || l.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.State)) != 1 {
		why := "state missing, forged or expired"
		if errors.Is(err, secret.ErrTokenExpired) {
			why = "sign-in started more than 10 minutes ago"
		}
		return refuse(outcomeBadState, why, http.StatusBadRequest, problemPage{
			Heading: "This sign-in link cannot be used",
			Message: "The sign-in did not come back with the state this browser was given: it expired, " +
				"was started in another browser, or the browser did not send its cookie back.",
		})
	}
	if e := q.Get("error"); e != "" {
		return refuse(outcomeDenied, "slack answered "+slack.ErrorCode(e), http.StatusOK, problemPage{
			Heading: "Sign-in cancelled",
			Message: "Slack did not sign you in (" + slack.ErrorCode(e) + ").",
			Hint:    "To use the console, sign in again and choose Allow on Slack's page.",
		})
	}

	p, err := c.provider.get(req.Context())
	if err != nil {
		return c.slackUnreachable(ec, err)
	}
	cctx, cancel := context.WithTimeout(oidc.ClientContext(req.Context(), c.oidc.HTTPClient), callbackTimeout)
	defer cancel()
	tok, err := c.oauthConfig(p).Exchange(cctx, q.Get("code"))
	if err != nil {
		if unavailable(err) {
			return refuse(outcomeSlackUnavailable, "token exchange: "+err.Error(), http.StatusBadGateway, problemPage{
				Heading: "Slack cannot be reached",
				Message: "Slack did not finish the sign-in.",
				Hint:    "Wait a minute and sign in again.",
			})
		}
		return refuse(outcomeRefused, "token exchange: "+err.Error(), http.StatusBadRequest, problemPage{
			Heading: "Slack did not accept the sign-in",
			Message: "Slack refused to finish the sign-in, for example because the link was used twice.",
		})
	}
	rawID, _ := tok.Extra("id_token").(string)
	verifier := p.Verifier(&oidc.Config{ClientID: c.oidc.ClientID, Now: c.now})
	idt, err := verifier.Verify(cctx, rawID)
	if err == nil && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		err = errors.New("id_token nonce does not match the sign-in's")
	}
	var claims slackClaims
	if err == nil {
		err = idt.Claims(&claims)
	}
	if err == nil && (claims.TeamID == "" || claims.UserID == "" || claims.UserID != idt.Subject) {
		err = errors.New("id_token lacks Slack's team or user, or names another user than its subject")
	}
	if err != nil {
		return refuse(outcomeBadToken, "id_token: "+err.Error(), http.StatusBadRequest, problemPage{
			Heading: "The sign-in could not be verified",
			Message: "Slack's answer did not prove who you are, so nobody was signed in.",
			Hint: "Start again from the sign-in page. If it keeps failing, an administrator should check " +
				"SLACK_OIDC_ISSUER, SLACK_CLIENT_ID and the server's clock.",
		})
	}

	s := session{ID: rand.Text(), UserID: claims.UserID, TeamID: claims.TeamID, Name: claims.Name, TeamName: claims.TeamName}
	expires := c.now().Add(sessionTTL)
	payload, _ = json.Marshal(s) // strings always encode
	ec.SetCookie(c.cookie(sessionCookie, "/admin", c.keys.SignToken(purposeSession, payload, expires), expires))
	c.metrics.signIns.WithLabelValues(outcomeSignedIn).Inc()
	c.logger.Info("signed in to the console", "user", s.UserID, "team_id", s.TeamID)
	return ec.Redirect(http.StatusSeeOther, c.link("/admin"))
}

// handleLogout forgets the session in this browser. A member whose
// session is still valid must send the form's CSRF token, so that another
// site cannot sign them out.
func (c *Console) handleLogout(ec echo.Context) error {
	if s := c.session(ec); s != nil && !c.checkCSRF(ec, s) {
		return c.csrfRefused(ec)
	}
	ec.SetCookie(c.cookie(sessionCookie, "/admin", "", time.Time{}))
	return c.render(ec, http.StatusOK, pageSignedOut, frame{Title: "Signed out"})
}

// session returns the member the request's session cookie names, or nil
// when it has none, a forged one or an expired one.
func (c *Console) session(ec echo.Context) *session {
	ck, err := ec.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	payload, err := c.keys.OpenToken(purposeSession, ck.Value, c.now())
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(payload, &s) != nil || s.ID == "" || s.UserID == "" || s.TeamID == "" {
		return nil
	}
	return &s
}

// csrfToken is the token every form of s's pages carries: signed for this
// sign-in only, valid as long as it.
func (c *Console) csrfToken(s *session) string {
	return c.keys.SignToken(purposeCSRF, []byte(s.ID), c.now().Add(sessionTTL))
}

// checkCSRF reports whether the posted form carries a CSRF token of s.
func (c *Console) checkCSRF(ec echo.Context, s *session) bool {
	got, err := c.keys.OpenToken(purposeCSRF, ec.FormValue("csrf"), c.now())
	return err == nil && subtle.ConstantTimeCompare(got, []byte(s.ID)) == 1
}

// csrfRefused answers a form without a valid CSRF token.
func (c *Console) csrfRefused(ec echo.Context) error {
	c.logger.Warn("console form refused: CSRF token missing or invalid")
	return c.problem(ec, http.StatusForbidden, problemPage{
		Heading: "This form cannot be used",
		Message: "The form did not carry this sign-in's security token: it was sent from another page or an older sign-in.",
		Hint:    "Nothing was changed. Open the console again and use its buttons.",
	})
}

// cookie returns a console cookie at path (under the base path) that
// lasts until expires; an empty value deletes it.
func (c *Console) cookie(name, path, value string, expires time.Time) *http.Cookie {
	ck := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     c.link(path),
		Expires:  expires,
		MaxAge:   int(expires.Sub(c.now()) / time.Second),
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if value == "" {
		ck.Expires = time.Unix(0, 0)
		ck.MaxAge = -1
	}
	return ck
}

// unavailable reports whether a failed code exchange means Slack could
// not be reached or failed on its side (a transport error, a timeout, a
// 5xx), rather than refused the code.
func unavailable(err error) bool {
	var (
		re *oauth2.RetrieveError
		ue *url.Error
	)
	if errors.As(err, &re) {
		return re.Response != nil && re.Response.StatusCode >= 500
	}
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}
