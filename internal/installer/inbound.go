package installer

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/secret"
)

const (
	setUsage = "channels set ID [--basic-auth USER:PASSWORD | --header-auth 'NAME: VALUE' ... | --no-inbound-auth]\n" +
		"                  [--pace N/s|N/min|default] [--burst N|default] [--digest on|off|default] [--digest-after 5s|default]\n" +
		"                  [--events all|TYPE,...] [--failures-only none|all|TYPE,...]"
	// maxAuthHeaders bounds the headers of header authentication.
	maxAuthHeaders = 8
)

// setFlags are the flags of `channels set`: one setting per flag (or
// group of flags), and only the flags given change anything. A new
// setting adds its flags in parseSet and its change in cmdSet.
type setFlags struct {
	basicAuth  string
	headerAuth headerFlags
	noInbound  bool
	// values holds the value of each string flag by name: the delivery
	// settings and the event filter, read by the parsers the console
	// shares.
	values map[string]string
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
	f.values = map[string]string{}
	for name, usage := range map[string]string{
		registry.SettingPace:        "the channel's pace: N/s, N/min, N/h, or default",
		registry.SettingBurst:       "messages the channel may get at once after a quiet spell, or default",
		registry.SettingDigests:     "digests when the channel falls behind: on, off or default",
		registry.SettingDigestAfter: "how far behind before digests start, such as 5s, or default",
		flagEvents:                  "the event types the channel shows, comma-separated, or all",
		flagFailuresOnly:            "the types of which the channel shows only failures, comma-separated, all or none",
	} {
		fs.Func(name, usage, func(v string) error {
			f.values[name] = v
			return nil
		})
	}
	pos, err := parse(fs, args, 1)
	if err != nil {
		return "", f, err
	}
	f.given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	if len(f.given) == 0 {
		return "", f, &UsageError{Msg: "nothing to set: give --basic-auth, --header-auth, --no-inbound-auth, --pace, --burst, --digest, --digest-after, --events or --failures-only"}
	}
	return pos[0], f, nil
}

// changesDelivery reports whether a delivery setting flag was given.
func (f setFlags) changesDelivery() bool {
	for _, name := range registry.DeliverySettingNames {
		if f.given[name] {
			return true
		}
	}
	return false
}

// changesFilter reports whether an event filter flag was given.
func (f setFlags) changesFilter() bool { return f.given[flagEvents] || f.given[flagFailuresOnly] }

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
		user, password, ok := strings.Cut(f.basicAuth, ":")
		if !ok || user == "" || password == "" {
			return nil, false, &UsageError{Msg: "--basic-auth must be USER:PASSWORD, both non-empty"}
		}
		cred, err := basicCredential(user, password)
		if err != nil {
			return nil, false, &UsageError{Msg: "--basic-auth: " + err.Error()}
		}
		return cred, true, nil
	}
	cred, err = headerCredential(f.headerAuth)
	return cred, true, err
}

// basicCredential checks HTTP Basic credentials (registry.
// CheckBasicCredential): the command line's and the console's.
func basicCredential(user, password string) (*inboundCredential, error) {
	if err := registry.CheckBasicCredential(user, password); err != nil {
		return nil, err
	}
	return &inboundCredential{
		auth:       registry.InboundAuth{Scheme: registry.AuthBasic},
		credential: registry.BasicCredential(user, password),
	}, nil
}

// headerCredential checks each "Name: value" (registry.CanonicalAuthHeader
// for the name), canonicalises and sorts the names.
func headerCredential(list []string) (*inboundCredential, error) {
	if len(list) > maxAuthHeaders {
		return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: at most %d headers", maxAuthHeaders)}
	}
	values := map[string]string{}
	for _, h := range list {
		rawName, value, ok := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		if !ok || strings.TrimSpace(rawName) == "" || value == "" {
			return nil, &UsageError{Msg: "--header-auth must be 'NAME: VALUE', both non-empty"}
		}
		name, err := registry.CanonicalAuthHeader(rawName)
		switch {
		case err != nil:
			return nil, &UsageError{Msg: "--header-auth: " + err.Error()}
		case len(value) > registry.MaxCredentialLength:
			return nil, &UsageError{Msg: fmt.Sprintf("--header-auth: the value of %s is longer than %d characters", name, registry.MaxCredentialLength)}
		case !registry.Printable(value):
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

// SetBasicAuth makes Jamf Pro's webhooks of an installation send HTTP
// Basic credentials besides the token: the console's way to what
// `channels set --basic-auth` does. A bad user name or password is an error
// that does not repeat them.
func (in *Installer) SetBasicAuth(ctx context.Context, id, user, password string) (registry.Installation, error) {
	cred, err := basicCredential(user, password)
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	return in.setInboundAuth(ctx, id, cred)
}

// SetHeaderAuth makes Jamf Pro's webhooks of an installation send the
// header name with value besides the token: the console's way to what
// `channels set --header-auth 'NAME: VALUE'` does for one header.
func (in *Installer) SetHeaderAuth(ctx context.Context, id, name, value string) (registry.Installation, error) {
	cred, err := headerCredential([]string{name + ": " + value})
	if err != nil {
		return registry.Installation{}, fmt.Errorf("set inbound auth: %w", err)
	}
	return in.setInboundAuth(ctx, id, cred)
}

// ClearInboundAuth makes an installation take Jamf Pro's webhooks with the
// token alone again, as `channels set --no-inbound-auth` does.
func (in *Installer) ClearInboundAuth(ctx context.Context, id string) (registry.Installation, error) {
	return in.setInboundAuth(ctx, id, nil)
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
	if f.changesDelivery() || f.changesFilter() {
		cur, err := in.Installation(ctx, id)
		if err != nil {
			return notFound(id, err)
		}
		// Both are read before either is stored, so that a mistake in one
		// changes nothing.
		d, delivery, err := f.delivery(cur.Delivery)
		if err != nil {
			return err
		}
		filter, filtered, err := f.filter(cur.Filter)
		if err != nil {
			return err
		}
		if delivery {
			inst, err := in.SetDelivery(ctx, cur.ID, d)
			if err != nil {
				return notFound(id, err)
			}
			if _, err := fmt.Fprintf(stdout, "%s (installation %s): pace %s, digests %s; every dispatcher follows it at once.\n",
				cell(inst.ChannelName), inst.ID, inst.Delivery.DescribePace(), inst.Delivery.DescribeDigests()); err != nil {
				return err
			}
		}
		if filtered {
			inst, err := in.SetEventFilter(ctx, cur.ID, filter)
			if err != nil {
				return notFound(id, err)
			}
			if _, err := fmt.Fprintf(stdout, "%s (installation %s) shows %s; the dispatchers settle the other events without posting them.\n",
				cell(inst.ChannelName), inst.ID, render.DescribeFilter(inst.Filter)); err != nil {
				return err
			}
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
