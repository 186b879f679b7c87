// Package internal_test keeps DESIGN.md's layout rule: leaves import nothing
// internal; adapters import only leaves; use cases import leaves, render and
// slack's types, and never NATS, a database driver or each other; only cmd/
// wires use cases and adapters together.
package internal_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/jackalope-app/jackalope/"

var (
	leaves   = []string{"internal/jamf", "internal/retry", "internal/registry", "internal/secret", "internal/redact", "migrations"}
	adapters = []string{"internal/config", "internal/slack", "internal/bus", "internal/postgres", "internal/sqlite", "internal/httpserver"}
	useCases = []string{"internal/ingest", "internal/dispatch", "internal/installer", "internal/console"}
	// forbidden for use cases, even through another package.
	infrastructure = []string{"github.com/nats-io/", "github.com/jackc/pgx", "modernc.org/sqlite", "github.com/pressly/goose"}
)

type pkg struct {
	ImportPath string
	Deps       []string
}

func rel(path string) string { return strings.TrimPrefix(path, module) }

// in reports whether p is one of roots or a package below one, but not a
// test helper below it (slacktest, bustest…), which may use its parent.
func in(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

func isTestHelper(p string) bool {
	last := p[strings.LastIndex(p, "/")+1:]
	return strings.HasSuffix(last, "test")
}

func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "github.com/jackalope-app/jackalope/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		name := rel(p.ImportPath)
		if isTestHelper(name) {
			continue
		}
		var internalDeps []string
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module) {
				internalDeps = append(internalDeps, rel(d))
			}
		}
		switch {
		case in(name, leaves):
			checked++
			for _, d := range internalDeps {
				if !strings.HasPrefix(d, name+"/") {
					t.Errorf("leaf %s imports %s; leaves import nothing internal", name, d)
				}
			}
		case in(name, adapters):
			checked++
			for _, d := range internalDeps {
				if !in(d, leaves) && !strings.HasPrefix(name, d+"/") && !strings.HasPrefix(d, name+"/") {
					t.Errorf("adapter %s imports %s; adapters import only leaves", name, d)
				}
			}
		case in(name, useCases):
			checked++
			for _, d := range internalDeps {
				if !in(d, leaves) && !in(d, []string{"internal/render", "internal/slack"}) && !strings.HasPrefix(d, name+"/") {
					t.Errorf("use case %s imports %s; use cases import leaves, render and slack's types only", name, d)
				}
			}
			for _, d := range p.Deps {
				for _, f := range infrastructure {
					if strings.HasPrefix(d, f) {
						t.Errorf("use case %s depends on %s; declare an interface and let cmd/ wire it", name, d)
					}
				}
			}
		case name == "internal/render":
			checked++
			for _, d := range internalDeps {
				if !in(d, leaves) && d != "internal/slack" {
					t.Errorf("render depends on %s; it turns jamf events into slack messages and needs leaves and slack only", d)
				}
			}
		}
		if !strings.HasPrefix(name, "cmd/") {
			for _, d := range internalDeps {
				if in(d, useCases) && !strings.HasPrefix(d, name) {
					t.Errorf("%s imports use case %s; only cmd/ wires use cases", name, d)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked; the module path or the layout changed")
	}
}
