package installer

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"strings"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

const (
	setUsage = "channels set ID [--basic-auth USER:PASSWORD | --header-auth 'NAME: VALUE' ... | --no-inbound-auth]\n" +
		"                  [--pace N/s|N/min|default] [--burst N] [--digest on|off|default] [--digest-after 5s|default]"
	// maxCredentialLength bounds each user name, password, header name and
	// header value an admin gives.
	maxCredentialLength = 1024
	// maxAuthHeaders bounds the headers of header authentication.
	maxAuthHeaders = 8
)

// reservedHeaders are headers Jamf Pro or the HTTP transport set
// themselves, so they cannot carry a secret of the admin's.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Type": true, "Content-Length": true, "Transfer-Encoding": true,
	"Connection": true, "Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
}

// setFlags are the flags of `channels set`: one setting per flag (or
// group of flags), and only the flags given change anything. A new
// setting adds its flags in parseSet and its change in cmdSet.
type setFlags struct {
	basicAuth   string
	headerAuth  headerFlags
	noInbound   bool
	pace        string
	burst       int
	digest      string
	digestAfter string
	// given holds the names of the flags on the command line.
	given map[string]bool
}

// headerFlags collects each --header-auth.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }

func (h *headerFlags) Set(v string) error {
	*h = append(*h, v)
	return nil
}

// parseSet parses `channels set`'s arguments: the installation ID and the
// flags. At least one flag must be given.
func parseSet(args []string) (string, setFlags, error) {
	var f setFlags
	fs := flag.NewFlagSet("set", flag.ContinueOnError)
	fs.StringVar(&f.basicAuth, "basic-auth", "", "USER:PASSWORD Jamf Pro must send with HTTP Basic authentication")
	fs.Var(&f.headerAuth, "header-auth", "'NAME: VALUE' of a header Jamf Pro must send; repeat for more headers")
	fs.BoolVar(&f.noInbound, "no-inbound-auth", false, "require no credentials besides the token in the Jamf URL")
	fs.StringVar(&f.pace, "pace", "", "the channel's pace: N/s, N/min, N/h, or default")
	fs.IntVar(&f.burst, "burst", 0, "messages the channel may get at once after a quiet spell (0: default)")
	fs.StringVar(&f.digest, "digest", "", "digests when the channel falls behind: on, off or default")
	fs.StringVar(&f.digestAfter, "digest-after", "", "how far behind before digests start, such as 5s, or default")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return "", f, err
	}
	f.given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	if len(f.given) == 0 {
		return "", f, &UsageError{Msg: "nothing to set: give --basic-auth, --header-auth, --no-inbound-auth, --pace, --burst, --digest or --digest-after"}
	}
	return pos[0], f, nil
}

// changesDelivery reports whether a delivery setting flag was given.
func (f setFlags) changesDelivery() bool {
	for _, name := range deliveryFlags {
		if f.given[name] {
			return true
		}
	}
	return false
}

// inboundCredential is inbound auth as an admin gave it: the setting
// without its hash, and the canonical credentials to hash and seal.
type inboundCredential struct {
	auth       registry.InboundAuth
	credential string
}

// inbound returns the inbound auth the flags ask for: nil with change true
// to clear it, and change false when no inbound auth flag was given. Bad
// values are a *UsageError that never repeats them.
func (f setFlags) inbound() (cred *inboundCredential, change bool, err error) {
	n := 0
	for _, name := range []string{"basic-auth", "header-auth", "no-inbound-auth"} {
		if f.given[name] {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, false, nil
	case n > 1:
		return nil, false, &UsageError{Msg: "give only one of --basic-auth, --header-auth and --no-inbound-auth"}
	case f.noInbound:
		return nil, true, nil
	case f.given["basic-auth"]:
		cred, err := basicCredential(f.basicAuth)
		return cred, true, err
	}
	cred, err = headerCredential(f.headerAuth)
	return cred, true, err
}

// basicCredential checks "user:password".
func basicCredential(v string) (*inboundCredential, error) {
	user, password, ok := strings.Cut(v, ":")
	switch {
	case !ok || user == "" || password == "":
		return nil, &UsageError{Msg: "--basic-auth must be USER:PASSWORD, both non-empty"}
	case len(user) > maxCredentialLength || len(password) > maxCredentialLength:
		return nil, &UsageError{Msg: fmt.Sprintf("--basic-auth: user name and password must be at most %d characters each", maxCredentialLength)}
	case !printable(user) || !printable(password):
		return nil, &UsageError{Msg: "--basic-auth: user name and password must be printable text"}
	}
	return &inboundCredential{
		auth:       registry.InboundAuth{Scheme: registry.AuthBasic},
		credential: registry.BasicCredential(user, password),
	}, nil
}

// headerCredential checks each "Name: value", canonicalises and sorts the
// names.
func headerCredential(list []string) (*inboundCredential, error) {
	if len(list) > maxAuthHeaders {
		return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: at most %d headers", maxAuthHeaders)}
	}
	values := map[string]string{}
	for _, h := range list {
		name, value, ok := strings.Cut(h, ":")
		name, value = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(value)
		switch {
		case !ok || name == "" || value == "":
			return nil, &UsageError{Msg: "--header-auth must be 'NAME: VALUE', both non-empty"}
		case !headerName(name):
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: %q is not a header name", name)}
		case reservedHeaders[name]:
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: %s is set by Jamf Pro or HTTP itself; choose another header, such as X-Jamf-Secret", name)}
		case len(name) > maxCredentialLength || len(value) > maxCredentialLength:
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: names and values must be at most %d characters", maxCredentialLength)}
		case !printable(value):
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: the value of %s must be printable text", name)}
		}
		if _, dup := values[name]; dup {
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: %s given twice", name)}
		}
		values[name] = value
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	vals := make([]string, len(names))
	for i, name := range names {
		vals[i] = values[name]
	}
	return &inboundCredential{
		auth:       registry.InboundAuth{Scheme: registry.AuthHeader, Headers: strings.Join(names, ",")},
		credential: registry.HeaderCredential(names, vals),
	}, nil
}

// headerName reports whether s is an HTTP header name (an RFC 9110 token).
func headerName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return s != ""
}

// printable reports whether s has no control characters, so it fits in a
// header and on one line.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// setInboundAuth stores what Jamf Pro must send with an installation's
// webhooks (hashed, and sealed for a later key rotation), or clears it when
// cred is nil, then publishes the read model, which carries only the hash.
func (in *Installer) setInboundAuth(ctx context.Context, id string, cred *inboundCredential) (registry.Installation, error) {
	key, ok := registry.CanonicalID(id)
	if !ok {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", registry.ErrNotFound)
	}
	var (
		auth   registry.InboundAuth
		sealed string
	)
	if cred != nil {
		auth = cred.auth
		auth.Hash = in.keys.HashInboundAuth(cred.credential)
		sealed = in.keys.Seal(secret.InboundAuth, key, cred.credential)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, err := in.store.SetInboundAuth(ctx, key, auth, sealed)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	if err := in.publish(ctx, inst); err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	in.logger.Info("inbound auth set", "installation", inst.ID, "scheme", inst.InboundAuth.Scheme, "headers", inst.InboundAuth.Headers)
	return inst, nil
}

// describeInboundAuth says what Jamf Pro must send, without any secret.
func describeInboundAuth(a registry.InboundAuth) string {
	switch a.Scheme {
	case registry.AuthBasic:
		return "basic"
	case registry.AuthHeader:
		return "header " + a.Headers
	}
	return ""
}

func (in *Installer) cmdSet(ctx context.Context, args []string, stdout io.Writer) error {
	id, f, err := parseSet(args)
	if err != nil {
		return err
	}
	cred, change, err := f.inbound()
	if err != nil {
		return err
	}
	if f.changesDelivery() {
		cur, err := in.Installation(ctx, id)
		if err != nil {
			return notFound(id, err)
		}
		d, _, err := f.delivery(cur.Delivery)
		if err != nil {
			return err
		}
		inst, err := in.SetDelivery(ctx, cur.ID, d)
		if err != nil {
			return notFound(id, err)
		}
		if _, err := fmt.Fprintf(stdout, "%s (installation %s): pace %s, digests %s; every dispatcher follows it at once.\n",
			cell(inst.ChannelName), inst.ID, describePace(inst.Delivery), describeDigests(inst.Delivery)); err != nil {
			return err
		}
	}
	if !change {
		return nil
	}
	inst, err := in.setInboundAuth(ctx, id, cred)
	if err != nil {
		return notFound(id, err)
	}
	what := cell(inst.ChannelName) + " (installation " + inst.ID + ")"
	switch inst.InboundAuth.Scheme {
	case registry.AuthBasic:
		_, err = fmt.Fprintf(stdout, "Webhooks of %s now need HTTP Basic credentials besides the token.\n"+
			"In Jamf Pro, edit each webhook of this Jamf URL: Authentication Type: Basic Authentication,\n"+
			"with the user name and password you just gave. Until then Jamf Pro gets 401.\n", what)
	case registry.AuthHeader:
		_, err = fmt.Fprintf(stdout, "Webhooks of %s now need the header(s) %s besides the token.\n"+
			"In Jamf Pro, edit each webhook of this Jamf URL: Authentication Type: Header Authentication,\n"+
			"with %s. Until then Jamf Pro gets 401.\n", what, inst.InboundAuth.Headers, headerTemplate(inst.InboundAuth.Headers))
	default:
		_, err = fmt.Fprintf(stdout, "Webhooks of %s need only the token in the Jamf URL again.\n"+
			"In Jamf Pro, set Authentication Type: None on its webhooks.\n", what)
	}
	return err
}

// headerTemplate shows the JSON Jamf Pro's Header Authentication takes for
// names, with a placeholder for each secret value.
func headerTemplate(names string) string {
	var parts []string
	for _, name := range strings.Split(names, ",") {
		parts = append(parts, fmt.Sprintf("%q: \"<value you gave>\"", name))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
