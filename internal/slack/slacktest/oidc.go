package slacktest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
)

// Sign in with Slack, as the fake serves it: the discovery document at
// Issuer()+"/.well-known/openid-configuration", the key set, the authorize
// page (which signs in the member SetMember names, as if they clicked
// Allow) and openid.connect.token, whose id_token is signed with RS256 and
// carries Slack's claims.
const (
	pathDiscovery = "/.well-known/openid-configuration"
	pathKeys      = "/openid/connect/keys"
	pathAuthorize = "/openid/connect/authorize"
	pathToken     = "/api/openid.connect.token"

	// keyID names the key id_tokens are signed with in the key set.
	keyID = "slacktest-oidc-1"
	// idTokenTTL is how long an id_token is valid, as Slack's.
	idTokenTTL = 5 * time.Minute
	// DefaultMemberName is the name of DefaultMember.
	DefaultMemberName = "Slacktest Member"
)

// Member is a Slack user signing in with Slack. Empty fields get the
// defaults: DefaultUserID, DefaultTeamID, DefaultTeamName,
// DefaultMemberName.
type Member struct {
	UserID   string
	TeamID   string
	TeamName string
	Name     string
	Email    string
}

func (m Member) withDefaults() Member {
	if m.UserID == "" {
		m.UserID = DefaultUserID
	}
	if m.TeamID == "" {
		m.TeamID = DefaultTeamID
	}
	if m.TeamName == "" {
		m.TeamName = DefaultTeamName
	}
	if m.Name == "" {
		m.Name = DefaultMemberName
	}
	return m
}

// Forgery makes the fake mint id_tokens a relying party must refuse. Each
// set field replaces what Slack would send; the zero Forgery mints genuine
// tokens.
type Forgery struct {
	Audience string // "aud" other than the client ID
	Issuer   string // "iss" other than Issuer()
	Nonce    string // "nonce" other than the one the authorize request carried
	Expired  bool   // "exp" already past
	WrongKey bool   // signed with a key that is not in the key set
}

// signIn is a code the authorize page issued, until the token endpoint
// exchanges it.
type signIn struct {
	member      Member
	nonce       string
	clientID    string
	redirectURI string
	used        bool
}

// keys are the fake's signing key and a key of nobody's, made once per
// test binary: RSA key generation is slow.
var keys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var out [2]*rsa.PrivateKey
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return out, err
		}
		out[i] = k
	}
	return out, nil
})

// signingKeys returns the key set's key and the stranger's, failing the
// test when they cannot be made.
func (s *Server) signingKeys() (key, stranger *rsa.PrivateKey) {
	k, err := keys()
	if err != nil {
		s.t.Fatalf("slacktest: make RSA keys: %v", err)
	}
	return k[0], k[1]
}

// Issuer returns the fake's OpenID Connect issuer, to use as
// SLACK_OIDC_ISSUER.
func (s *Server) Issuer() string { return s.srv.URL }

// SetMember names who the authorize page signs in from now on
// (DefaultUserID of DefaultTeamID until then).
func (s *Server) SetMember(m Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.member = m.withDefaults()
}

// Forge makes every id_token minted from now on carry f; Forge(Forgery{})
// mints genuine ones again.
func (s *Server) Forge(f Forgery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgery = f
}

// SetDiscoveryDown makes the discovery document answer 503 while down is
// true, as when Slack's sign-in cannot be reached.
func (s *Server) SetDiscoveryDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discoveryDown = down
}

// SignIn plays a browser at Slack's authorize page: m signs in and allows
// the request authorizeURL makes (the URL a relying party redirected to).
// It returns the redirect back, with code and state, and fails the test
// if Slack would refuse the request.
func (s *Server) SignIn(t testing.TB, authorizeURL string, m Member) string {
	t.Helper()
	u, err := url.Parse(authorizeURL)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != s.srv.URL+pathAuthorize {
		t.Fatalf("slacktest: %q is not the fake's authorize page %s", authorizeURL, s.srv.URL+pathAuthorize)
	}
	s.mu.Lock()
	loc, problem := s.authorizeLocked(u.Query(), m.withDefaults())
	s.mu.Unlock()
	if problem != "" {
		t.Fatalf("slacktest: the authorize page refuses %s: %s", authorizeURL, problem)
	}
	return loc
}

// serveDiscovery answers the discovery document, with Slack's endpoints
// on the fake.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.discoveryDown
	s.mu.Unlock()
	if down {
		writeResponse(w, Response{Status: http.StatusServiceUnavailable, Body: "service_unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.srv.URL,
		"authorization_endpoint":                s.srv.URL + pathAuthorize,
		"token_endpoint":                        s.srv.URL + pathToken,
		"userinfo_endpoint":                     s.srv.URL + "/api/openid.connect.userInfo",
		"jwks_uri":                              s.srv.URL + pathKeys,
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"sub", "auth_time", "iss"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
	})
}

// serveKeys answers the key set: the public half of the signing key.
func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request) {
	key, _ := s.signingKeys()
	b64 := base64.RawURLEncoding.EncodeToString
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA",
		"kid": keyID,
		"use": "sig",
		"alg": "RS256",
		"n":   b64(key.N.Bytes()),
		"e":   b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
}

// serveAuthorize is Slack's authorize page with the consent already given
// by the member SetMember names.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	loc, problem := s.authorizeLocked(r.URL.Query(), s.member.withDefaults())
	s.mu.Unlock()
	if problem != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, "Slack cannot sign you in: %s\n", problem)
		return
	}
	http.Redirect(w, r, loc, http.StatusFound)
}

// authorizeLocked checks an authorize request as Slack does, issues a code
// for m and returns where the browser goes next; or, when Slack would show
// its own error page, why. Errors Slack reports to the app (a scope it
// does not know) go back to the redirect URI.
func (s *Server) authorizeLocked(q url.Values, m Member) (location, problem string) {
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("client_id") != s.clientID:
		return "", "invalid_client_id"
	case err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "":
		return "", "bad_redirect_uri"
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	scopes := strings.Fields(strings.ReplaceAll(q.Get("scope"), ",", " "))
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case !slices.Contains(scopes, "openid"):
		back.Set("error", "invalid_scope")
	default:
		code := "slacktest-oidc-" + rand.Text()
		s.signIns[code] = &signIn{member: m, nonce: q.Get("nonce"), clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri")}
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	return redirect.String(), ""
}

// serveToken answers openid.connect.token like Slack: client credentials
// by HTTP Basic authentication or form fields, single-use codes, the
// redirect URI of the authorize request, and an id_token for the member.
// Answers queued with ScriptOAuth and FailOAuth come first.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.serveExchange(w, r, s.tokenLocked)
}

// tokenLocked decides the answer to one token request whose client was
// accepted.
func (s *Server) tokenLocked(r *http.Request) (int, any) {
	fail := oauthFailure
	id, _, ok := r.BasicAuth()
	if !ok {
		id = r.Form.Get("client_id")
	}
	g := s.signIns[r.Form.Get("code")]
	switch {
	case g == nil || g.clientID != id:
		return fail("invalid_code")
	case g.used:
		return fail("code_already_used")
	case g.redirectURI != "" && r.Form.Get("redirect_uri") != g.redirectURI:
		return fail("bad_redirect_uri")
	}
	g.used = true
	access := "xoxp-slacktest-" + rand.Text()
	return http.StatusOK, map[string]any{
		"ok":           true,
		"access_token": access,
		"token_type":   "Bearer",
		"id_token":     s.idTokenLocked(g, access),
	}
}

// idTokenLocked mints the id_token of a sign-in, as Slack's, forged as
// Forge said.
func (s *Server) idTokenLocked(g *signIn, accessToken string) string {
	now := time.Now()
	f := s.forgery
	m := g.member
	claims := map[string]any{
		"iss":                         s.srv.URL,
		"sub":                         m.UserID,
		"aud":                         g.clientID,
		"exp":                         now.Add(idTokenTTL).Unix(),
		"iat":                         now.Unix(),
		"auth_time":                   now.Unix(),
		"nonce":                       g.nonce,
		"at_hash":                     atHash(accessToken),
		"https://slack.com/team_id":   m.TeamID,
		"https://slack.com/user_id":   m.UserID,
		"https://slack.com/team_name": m.TeamName,
		"name":                        m.Name,
		"given_name":                  "",
		"family_name":                 "",
		"locale":                      "en-US",
	}
	if m.Email != "" {
		claims["email"], claims["email_verified"] = m.Email, true
	}
	if f.Audience != "" {
		claims["aud"] = f.Audience
	}
	if f.Issuer != "" {
		claims["iss"] = f.Issuer
	}
	if f.Nonce != "" {
		claims["nonce"] = f.Nonce
	}
	if f.Expired {
		claims["iat"], claims["exp"] = now.Add(-2*idTokenTTL).Unix(), now.Add(-idTokenTTL).Unix()
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		s.t.Errorf("slacktest: encode id_token claims: %v", err)
	}
	key, stranger := s.signingKeys()
	if f.WrongKey {
		key = stranger
	}
	return oidctest.SignIDToken(key, keyID, "RS256", string(raw))
}

// atHash is the at_hash claim of accessToken for RS256: the left half of
// its SHA-256, base64url.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
