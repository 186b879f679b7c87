package installer

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// TestChannelsSetInboundAuth sets, changes and clears an installation's
// inbound auth: SQL keeps a keyed hash and the sealed credentials, the read
// model only the hash, list shows the scheme, and no secret is ever printed
// or logged.
func TestChannelsSetInboundAuth(t *testing.T) {
	env := newEnv(t)
	out := env.mustRun(t, "add", "--webhook-url", hookA, "--channel", "jamf")
	id := regexp.MustCompile(uuidRE).FindString(out)
	secrets := []string{"s3cret-pass", "header-s3cret", "other-s3cret"}

	steps := []struct {
		name       string
		args       []string
		want       registry.InboundAuth
		credential string
		list       string
		printed    []string
	}{
		{
			name: "basic", args: []string{"set", id, "--basic-auth", "jamf:s3cret-pass"},
			want:       registry.InboundAuth{Scheme: registry.AuthBasic},
			credential: registry.BasicCredential("jamf", "s3cret-pass"),
			list:       "basic",
			printed:    []string{"HTTP Basic", "Authentication Type: Basic Authentication"},
		},
		{
			name: "headers", args: []string{"set", "--header-auth", "x-other: other-s3cret", id, "--header-auth", "X-Jamf-Secret:header-s3cret"},
			want:       registry.InboundAuth{Scheme: registry.AuthHeader, Headers: "X-Jamf-Secret,X-Other"},
			credential: registry.HeaderCredential([]string{"X-Jamf-Secret", "X-Other"}, []string{"header-s3cret", "other-s3cret"}),
			list:       "header X-Jamf-Secret,X-Other",
			printed:    []string{"Header Authentication", `{"X-Jamf-Secret": "<value you gave>", "X-Other": "<value you gave>"}`},
		},
		{
			name: "cleared", args: []string{"set", id, "--no-inbound-auth"},
			list:    "-",
			printed: []string{"only the token", "Authentication Type: None"},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out := env.mustRun(t, st.args...)
			for _, p := range st.printed {
				if !strings.Contains(out, p) {
					t.Errorf("set printed:\n%s\nwant it to mention %q", out, p)
				}
			}
			inst, err := env.store.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			got := inst.InboundAuth
			got.Hash = ""
			if diff := cmp.Diff(st.want, got); diff != "" {
				t.Errorf("stored inbound auth (-want +got):\n%s", diff)
			}
			if st.credential != "" {
				if inst.InboundAuth.Hash != env.keys.HashInboundAuth(st.credential) {
					t.Error("stored hash is not the keyed hash of the credentials")
				}
				if cred, _, err := env.keys.Open(secret.InboundAuth, id, inst.InboundAuthSealed); err != nil || cred != st.credential {
					t.Errorf("sealed credentials open to %v; want the credentials", err)
				}
			} else if inst.InboundAuth.Hash != "" || inst.InboundAuthSealed != "" {
				t.Errorf("cleared inbound auth left %+v, %q", inst.InboundAuth, inst.InboundAuthSealed)
			}
			env.checkKVMatchesSQL(t)
			list := env.mustRun(t, "list")
			want := regexp.MustCompile(`\s` + regexp.QuoteMeta(st.list) + `\s+default\s+default\s+all$`)
			if row := strings.Split(strings.TrimSpace(list), "\n")[1]; !want.MatchString(row) {
				t.Errorf("list row %q; want its AUTH to be %q", row, st.list)
			}
			for _, s := range append(secrets, inst.InboundAuth.Hash, inst.InboundAuthSealed) {
				if s != "" && (strings.Contains(out, s) || strings.Contains(list, s)) {
					t.Errorf("output shows the secret %q:\n%s\n%s", s, out, list)
				}
			}
		})
	}
	env.checkNoSecrets(t, secrets...)
}

// TestChannelsSetRefuses pins the command-line mistakes of channels set:
// each is a usage error that never repeats a secret.
func TestChannelsSetRefuses(t *testing.T) {
	env := newEnv(t)
	out := env.mustRun(t, "add", "--webhook-url", hookA, "--channel", "jamf")
	id := regexp.MustCompile(uuidRE).FindString(out)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to set", []string{"set", id}, "nothing to set"},
		{"no id", []string{"set", "--no-inbound-auth"}, "argument(s) missing"},
		{"two schemes", []string{"set", id, "--basic-auth", "u:pw-s3cret", "--no-inbound-auth"}, "only one of"},
		{"basic without password", []string{"set", id, "--basic-auth", "pw-s3cret"}, "USER:PASSWORD"},
		{"basic with empty user", []string{"set", id, "--basic-auth", ":pw-s3cret"}, "USER:PASSWORD"},
		{"header without value", []string{"set", id, "--header-auth", "X-Secret:"}, "NAME: VALUE"},
		{"header with a bad name", []string{"set", id, "--header-auth", "X Secret: pw-s3cret"}, "not a header name"},
		{"reserved header", []string{"set", id, "--header-auth", "content-type: pw-s3cret"}, "Content-Type is set by Jamf Pro"},
		{"header twice", []string{"set", id, "--header-auth", "X-A: pw-s3cret", "--header-auth", "x-a: b"}, "X-A given twice"},
		{"control character", []string{"set", id, "--header-auth", "X-A: pw-s3cret\r\nX-B: c"}, "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.run(t, tt.args...)
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("channels %v = %v; want a usage error saying %q", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "pw-s3cret") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
	if _, err := env.run(t, "set", "00000000-0000-4000-8000-000000000000", "--no-inbound-auth"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("set of an unknown installation = %v; want registry.ErrNotFound", err)
	}
	if inst, _ := env.store.Get(t.Context(), id); inst.InboundAuth.Enabled() {
		t.Errorf("a refused set changed the installation: %+v", inst.InboundAuth)
	}
}
