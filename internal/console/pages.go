package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// web holds the console's templates and its stylesheet. The pages also
// load the installer's /assets/style.css, so that they look like the "Add
// to Slack" page; console.css adds tables, badges and forms.
//
//go:embed web/templates/*.html web/assets/*
var web embed.FS

// contentSecurityPolicy allows the server's own assets and nothing else:
// no inline script or style, no frames, forms only to this server.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Page names; each is web/templates/<name>.html inside layout.html.
const (
	pageChannels    = "channels"
	pageChannel     = "channel"
	pageConfirm     = "confirm"
	pageRotated     = "rotated"
	pageTested      = "tested"
	pageChanges     = "changes"
	pageProblem     = "problem"
	pageSignedOut   = "signedout"
	pageResend      = "resend"
	pageCredentials = "credentials"
)

// pages holds one parsed template set per page.
type pages struct {
	sets map[string]*template.Template
}

// parsePages parses the pages for a server whose base URL has the path
// basePath; the template function path prefixes links with it.
func parsePages(basePath string) (*pages, error) {
	p := &pages{sets: make(map[string]*template.Template)}
	funcs := template.FuncMap{
		"path": func(s string) string { return basePath + s },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"sub": func(a, b int) int { return a - b },
	}
	for _, name := range []string{pageChannels, pageChannel, pageConfirm, pageRotated, pageTested, pageChanges, pageProblem, pageSignedOut, pageResend, pageCredentials} {
		t, err := template.New(name).Funcs(funcs).ParseFS(web, "web/templates/layout.html", "web/templates/partials.html", "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// assets returns the console's embedded assets, served under /admin/assets/.
func assets() fs.FS {
	sub, err := fs.Sub(web, "web/assets")
	if err != nil {
		panic("console: embedded assets missing: " + err.Error()) // the embed pattern guarantees the directory
	}
	return sub
}

// frame is what the layout needs on every page: the title and, when a
// member is signed in, who and the CSRF token of the sign-out form.
type frame struct {
	Title  string
	Member *session
	CSRF   string
	Now    time.Time
}

// problemPage says what went wrong and what to do.
type problemPage struct {
	frame
	Heading string
	Message string
	Hint    string
	Retry   bool // offer to try signing in again now
	SignIn  bool // offer to sign in
}

// render writes page name with data and status. The page is rendered
// before anything is written, so a template error is a clean 500. Pages
// are never cached: they show a workspace's channels, and one shows a
// Jamf URL.
func (c *Console) render(ec echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := c.pages.sets[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render page %s: %w", name, err)
	}
	h := ec.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	return ec.HTMLBlob(status, buf.Bytes())
}

// problem renders the problem page with status, with the member's frame
// when there is one.
func (c *Console) problem(ec echo.Context, status int, p problemPage) error {
	if p.Title == "" {
		p.Title = p.Heading
	}
	if p.Member == nil {
		if s := c.session(ec); s != nil {
			p.frame = c.frame(s, p.Title)
		}
	}
	return c.render(ec, status, pageProblem, p)
}

// frame returns the layout's data for s's page titled title.
func (c *Console) frame(s *session, title string) frame {
	return frame{Title: title, Member: s, CSRF: c.csrfToken(s), Now: c.now()}
}

// notFound answers a channel that does not exist or is another
// workspace's: the same 404 either way, so IDs do not leak.
func (c *Console) notFound(ec echo.Context, s *session) error {
	return c.problem(ec, http.StatusNotFound, problemPage{
		frame:   c.frame(s, "Channel not found"),
		Heading: "Channel not found",
		Message: "No channel of your workspace has this address. It may have been removed.",
		Hint:    "Go back to the channels of your workspace.",
	})
}

// joinAnd joins names as "A", "A and B", "A, B and C".
func joinAnd(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
