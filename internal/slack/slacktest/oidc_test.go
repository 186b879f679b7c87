package slacktest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// relyingParty signs in through the fake with go-oidc and x/oauth2, as the
// console does.
type relyingParty struct {
	fake     *slacktest.Server
	provider *oidc.Provider
	config   oauth2.Config
}

const testRedirect = "https://jackalope.test/admin/callback"

func newRelyingParty(t *testing.T, fake *slacktest.Server) *relyingParty {
	t.Helper()
	provider, err := oidc.NewProvider(t.Context(), fake.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &relyingParty{fake: fake, provider: provider, config: oauth2.Config{
		ClientID:     slacktest.ClientID,
		ClientSecret: slacktest.ClientSecret,
		Endpoint:     provider.Endpoint(),
		RedirectURL:  testRedirect,
		Scopes:       []string{oidc.ScopeOpenID, "profile"},
	}}
}

// signIn runs the flow for m and returns the verified token, or the first
// error of the exchange or the verification.
func (rp *relyingParty) signIn(t *testing.T, m slacktest.Member, nonce string) (*oidc.IDToken, error) {
	t.Helper()
	back := rp.fake.SignIn(t, rp.config.AuthCodeURL("state-1", oidc.Nonce(nonce)), m)
	u, err := url.Parse(back)
	if err != nil || !strings.HasPrefix(back, testRedirect+"?") || u.Query().Get("state") != "state-1" {
		t.Fatalf("SignIn redirects to %q; want %s with the state", back, testRedirect)
	}
	tok, err := rp.config.Exchange(t.Context(), u.Query().Get("code"))
	if err != nil {
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	return rp.provider.Verifier(&oidc.Config{ClientID: slacktest.ClientID}).Verify(t.Context(), raw)
}

func TestSignInWithSlack(t *testing.T) {
	fake := slacktest.New(t)
	rp := newRelyingParty(t, fake)
	idt, err := rp.signIn(t, slacktest.Member{UserID: "U0ADA", TeamID: "T0ACME", TeamName: "Acme", Name: "Ada"}, "nonce-1")
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	var claims struct {
		TeamID   string `json:"https://slack.com/team_id"`
		UserID   string `json:"https://slack.com/user_id"`
		TeamName string `json:"https://slack.com/team_name"`
		Name     string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "U0ADA" || idt.Nonce != "nonce-1" || claims.TeamID != "T0ACME" || claims.UserID != "U0ADA" ||
		claims.TeamName != "Acme" || claims.Name != "Ada" || idt.Issuer != fake.Issuer() {
		t.Errorf("id_token = %+v with claims %+v; want Ada of Acme, nonce-1, issued by %s", idt, claims, fake.Issuer())
	}
}

func TestForgedIDTokens(t *testing.T) {
	tests := []struct {
		name    string
		forgery slacktest.Forgery
		nonce   string // the nonce the token carries must differ from "sent" to be refused
		want    string // in the verification error; "" when only the nonce differs
	}{
		{"genuine", slacktest.Forgery{}, "sent", ""},
		{"wrong audience", slacktest.Forgery{Audience: "someone-else"}, "sent", "expected audience"},
		{"wrong issuer", slacktest.Forgery{Issuer: "https://evil.example"}, "sent", "different provider"},
		{"expired", slacktest.Forgery{Expired: true}, "sent", "expired"},
		{"wrong key", slacktest.Forgery{WrongKey: true}, "sent", "signature"},
		{"wrong nonce", slacktest.Forgery{Nonce: "other"}, "other", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := slacktest.New(t)
			fake.Forge(tt.forgery)
			idt, err := newRelyingParty(t, fake).signIn(t, slacktest.Member{}, "sent")
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("verify = %v; want an error with %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify = %v; want the token to pass go-oidc's checks", err)
			}
			if idt.Nonce != tt.nonce {
				t.Errorf("nonce = %q; want %q", idt.Nonce, tt.nonce)
			}
		})
	}
}

func TestSignInCodes(t *testing.T) {
	fake := slacktest.New(t)
	rp := newRelyingParty(t, fake)
	back := fake.SignIn(t, rp.config.AuthCodeURL("s", oidc.Nonce("n")), slacktest.Member{})
	code := mustQuery(t, back).Get("code")
	if _, err := rp.config.Exchange(t.Context(), code); err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	if _, err := rp.config.Exchange(t.Context(), code); err == nil {
		t.Error("second exchange of one code succeeded; want it refused")
	}
	other := rp.config
	other.RedirectURL = "https://elsewhere.test/cb"
	back = fake.SignIn(t, rp.config.AuthCodeURL("s", oidc.Nonce("n")), slacktest.Member{})
	if _, err := other.Exchange(t.Context(), mustQuery(t, back).Get("code")); err == nil {
		t.Error("exchange with another redirect URI succeeded; want bad_redirect_uri")
	}
	fake.ScriptOAuth(slacktest.ServerError())
	back = fake.SignIn(t, rp.config.AuthCodeURL("s", oidc.Nonce("n")), slacktest.Member{})
	var re *oauth2.RetrieveError
	if _, err := rp.config.Exchange(t.Context(), mustQuery(t, back).Get("code")); !errors.As(err, &re) || re.Response.StatusCode != http.StatusInternalServerError {
		t.Errorf("scripted exchange = %v; want a 500", err)
	}
}

// TestAuthorizePage follows the authorize page as a browser does: it
// signs in the member SetMember names, or refuses.
func TestAuthorizePage(t *testing.T) {
	fake := slacktest.New(t)
	fake.SetMember(slacktest.Member{UserID: "U0BOB", TeamID: "T0BOB"})
	rp := newRelyingParty(t, fake)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := get(rp.config.AuthCodeURL("st", oidc.Nonce("n")))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, testRedirect+"?") || mustQuery(t, loc).Get("code") == "" {
		t.Fatalf("authorize = %d to %q; want 302 to the redirect URI with a code", resp.StatusCode, loc)
	}
	tok, err := rp.config.Exchange(context.WithoutCancel(t.Context()), mustQuery(t, loc).Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: slacktest.ClientID}).Verify(t.Context(), tok.Extra("id_token").(string))
	if err != nil || idt.Subject != "U0BOB" {
		t.Errorf("verify = %v, %v; want U0BOB signed in", idt, err)
	}

	bad := rp.config
	bad.ClientID = "unknown"
	if resp := get(bad.AuthCodeURL("st")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("authorize with an unknown client = %d; want 400", resp.StatusCode)
	}
	noOpenID := rp.config
	noOpenID.Scopes = []string{"profile"}
	loc = get(noOpenID.AuthCodeURL("st")).Header.Get("Location")
	if q := mustQuery(t, loc); q.Get("error") != "invalid_scope" || q.Get("state") != "st" || q.Has("code") {
		t.Errorf("authorize without openid redirects to %q; want error=invalid_scope with the state", loc)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
