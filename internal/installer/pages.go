package installer

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// web holds the page templates and their assets (style sheet, copy script,
// icon). Nothing is loaded from elsewhere: the pages work offline.
//
//go:embed web/templates/*.html web/assets/*
var web embed.FS

// contentSecurityPolicy allows the embedded assets and nothing else.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Page names; each is web/templates/<name>.html inside layout.html.
const (
	pageIndex   = "index"
	pageResult  = "result"
	pageProblem = "problem"
	pageJamfURL = "jamfurl"
)

// pages holds one parsed template set per page.
type pages struct {
	sets map[string]*template.Template
}

// parsePages parses the pages for a server whose base URL has the path
// basePath ("" at the root): the template function path prefixes every
// link with it, so the pages also work behind a proxy that serves
// Jackalope under a sub-path.
func parsePages(basePath string) (*pages, error) {
	p := &pages{sets: make(map[string]*template.Template)}
	funcs := template.FuncMap{"path": func(s string) string { return basePath + s }}
	for _, name := range []string{pageIndex, pageResult, pageProblem, pageJamfURL} {
		t, err := template.New(name).Funcs(funcs).ParseFS(web, "web/templates/layout.html", "web/templates/form.html", "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// assets returns the embedded assets, served under /assets/.
func assets() fs.FS {
	sub, err := fs.Sub(web, "web/assets")
	if err != nil {
		panic("installer: embedded assets missing: " + err.Error()) // the embed pattern guarantees the directory
	}
	return sub
}

// indexPage is the "Add to Slack" page.
type indexPage struct {
	Title       string
	Configured  bool
	Missing     []string
	RedirectURI string
}

// jamfURLForm is the form that sets an installation's Jamf Pro URL.
type jamfURLForm struct {
	ID         string
	FormToken  string
	JamfProURL string
}

// resultPage is shown after an install.
type resultPage struct {
	Title          string
	JamfURL        string
	ChannelName    string
	Reinstalled    bool
	WelcomeProblem string
	jamfURLForm
}

// jamfURLPage answers the Jamf Pro URL form.
type jamfURLPage struct {
	Title   string
	Saved   bool
	Problem string
	jamfURLForm
}

// problemPage says what went wrong and what to do.
type problemPage struct {
	Title     string
	Heading   string
	Message   string
	Hint      string
	Code      string
	Cancelled bool
}

// render writes page name with data and status. The page is rendered
// before anything is written, so a template error is a clean 500. Pages
// are never cached: the result page holds a secret.
func (in *Installer) render(c echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := in.pages.sets[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render page %s: %w", name, err)
	}
	securityHeaders(c.Response().Header())
	return c.HTMLBlob(status, buf.Bytes())
}

// securityHeaders keeps pages out of caches, frames and referrers.
func securityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
}

// problem renders the problem page with status.
func (in *Installer) problem(c echo.Context, status int, p problemPage) error {
	if p.Title == "" {
		p.Title = p.Heading
	}
	return in.render(c, status, pageProblem, p)
}
