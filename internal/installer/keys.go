package installer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// ErrWrongKey is returned when SECRET_KEY (with SECRET_KEY_PREVIOUS) opens
// none of the installations the registry holds: it is not the key they
// were sealed with, and anything made with it would not work.
var ErrWrongKey = errors.New("SECRET_KEY opens none of the stored installations: " +
	"it is not the key they were sealed with (use the installer's SECRET_KEY; during a rotation " +
	"set the old one as SECRET_KEY_PREVIOUS)")

// rekeyAttempts bounds how often Reseal reads an installation again that
// another process changed while it was being sealed again.
const rekeyAttempts = 3

// keyUse says what reading an installation's keyed values took.
type keyUse struct {
	stale    bool // something is legacy or under SECRET_KEY_PREVIOUS
	previous bool // SECRET_KEY_PREVIOUS was needed
}

// rekey returns inst's keyed values as SECRET_KEY makes them now: secrets
// sealed before seals were bound, or under SECRET_KEY_PREVIOUS, sealed
// again; token and inbound credentials hashed again; the channel key of a
// channel added by hand made again. It fails with secret.ErrOpen when a
// value does not open under either key (or was sealed for another
// installation). The error names the value, never its content.
func (in *Installer) rekey(inst registry.Installation) (registry.Keyed, keyUse, error) {
	next := inst.Keyed()
	var use keyUse
	note := func(how secret.Opened) {
		use.stale = use.stale || how.Stale()
		use.previous = use.previous || how == secret.Previous
	}

	webhook, how, err := in.keys.Open(secret.WebhookURL, inst.ID, inst.WebhookURLSealed)
	if err != nil {
		return registry.Keyed{}, use, fmt.Errorf("webhook url: %w", err)
	}
	note(how)
	if how.Stale() {
		next.WebhookURLSealed = in.keys.Seal(secret.WebhookURL, inst.ID, webhook)
	}

	token, how, err := in.keys.Open(secret.JamfToken, inst.ID, inst.TokenSealed)
	if err != nil {
		return registry.Keyed{}, use, fmt.Errorf("jamf token: %w", err)
	}
	note(how)
	if how.Stale() {
		next.TokenSealed = in.keys.Seal(secret.JamfToken, inst.ID, token)
	}
	next.TokenHash = in.keys.HashToken(token)
	if next.TokenHash != inst.TokenHash {
		use.stale = true
		if prev := in.keys.Previous(); prev != nil && prev.HashToken(token) == inst.TokenHash {
			use.previous = true
		}
	}

	if strings.HasPrefix(inst.ChannelID, manualChannelPrefix) {
		cur := manualChannelID(in.keys, webhook)
		if prev := in.keys.Previous(); inst.ChannelID != cur && prev != nil && inst.ChannelID == manualChannelID(prev, webhook) {
			next.ChannelID = cur
			use.stale, use.previous = true, true
		}
	}

	if inst.InboundAuthSealed != "" {
		cred, how, err := in.keys.Open(secret.InboundAuth, inst.ID, inst.InboundAuthSealed)
		if err != nil {
			return registry.Keyed{}, use, fmt.Errorf("inbound credentials: %w", err)
		}
		note(how)
		if how.Stale() {
			next.InboundAuthSealed = in.keys.Seal(secret.InboundAuth, inst.ID, cred)
		}
		next.InboundAuthHash = in.keys.HashInboundAuth(cred)
		if next.InboundAuthHash != inst.InboundAuth.Hash {
			use.stale = true
			if prev := in.keys.Previous(); prev != nil && prev.HashInboundAuth(cred) == inst.InboundAuth.Hash {
				use.previous = true
			}
		}
	}
	return next, use, nil
}

// refresh seals inst's stale secrets again and returns the installation as
// stored. A write that reaches it has succeeded already, so a value that
// does not open, or a failed rekey, is logged and inst returned as it is.
// It must be called with mu held.
func (in *Installer) refresh(ctx context.Context, inst registry.Installation) registry.Installation {
	next, use, err := in.rekey(inst)
	if err != nil {
		in.logger.Warn("installation holds a value SECRET_KEY and SECRET_KEY_PREVIOUS cannot open; left as it is",
			"installation", inst.ID, "err", err)
		return inst
	}
	if !use.stale {
		return inst
	}
	stored, err := in.store.Rekey(ctx, inst.ID, inst.Keyed(), next)
	if err != nil {
		in.logger.Warn("installation not sealed again under SECRET_KEY", "installation", inst.ID, "err", err)
		return inst
	}
	in.logger.Info("installation sealed again under SECRET_KEY", "installation", inst.ID)
	return stored
}

// KeyStatus says what the registry's installations need to be read.
type KeyStatus struct {
	Installations int
	// Current is how many are sealed and hashed under SECRET_KEY alone,
	// with bound seals.
	Current int
	// Stale is how many open but should be sealed again; NeedPrevious is
	// how many of those need SECRET_KEY_PREVIOUS.
	Stale        int
	NeedPrevious int
	// Unreadable is how many hold a value that neither key opens.
	Unreadable int
}

// CheckKeys reads every installation with SECRET_KEY and
// SECRET_KEY_PREVIOUS and reports what they need. It fails with
// ErrWrongKey when there are installations and none opens.
func (in *Installer) CheckKeys(ctx context.Context) (KeyStatus, error) {
	all, err := in.store.List(ctx)
	if err != nil {
		return KeyStatus{}, fmt.Errorf("check keys: %w", err)
	}
	st := KeyStatus{Installations: len(all)}
	for _, inst := range all {
		_, use, err := in.rekey(inst)
		switch {
		case err != nil:
			st.Unreadable++
			in.logger.Warn("installation holds a value SECRET_KEY and SECRET_KEY_PREVIOUS cannot open",
				"installation", inst.ID, "err", err)
		case use.stale:
			st.Stale++
			if use.previous {
				st.NeedPrevious++
			}
		default:
			st.Current++
		}
	}
	if st.Installations > 0 && st.Unreadable == st.Installations {
		return st, ErrWrongKey
	}
	return st, nil
}

// PublishKeys checks the registry against the keys (CheckKeys) and, when
// they open it, publishes their fingerprints to the keyring: SECRET_KEY's,
// and SECRET_KEY_PREVIOUS's while an installation still needs it. Every
// service compares its own keys with these. The installer and the
// all-in-one call it at start, and Reseal after sealing everything again.
func (in *Installer) PublishKeys(ctx context.Context) (KeyStatus, error) {
	st, err := in.CheckKeys(ctx)
	if err != nil {
		return st, err
	}
	if in.keyring == nil {
		return st, nil
	}
	previous := ""
	if p := in.keys.Previous(); p != nil && st.NeedPrevious > 0 {
		previous = p.Fingerprint()
	}
	if err := in.keyring.PublishKeys(ctx, in.keys.Fingerprint(), previous); err != nil {
		return st, fmt.Errorf("publish key fingerprints: %w", err)
	}
	in.logger.Info("key fingerprints published", "fingerprint", in.keys.Fingerprint(), "previous_fingerprint", previous,
		"installations", st.Installations, "stale", st.Stale, "need_previous", st.NeedPrevious, "unreadable", st.Unreadable)
	return st, nil
}

// ResealReport counts what Reseal did.
type ResealReport struct {
	Installations int
	// Resealed were sealed and hashed again under SECRET_KEY; Current
	// needed nothing.
	Resealed int
	Current  int
	// Failed hold a value neither key opens, or could not be written;
	// their errors are returned.
	Failed int
	Keys   KeyStatus // after resealing, as published
}

// Reseal seals every installation's webhook URL, token and inbound
// credentials again under SECRET_KEY, hashes tokens and credentials again
// and publishes the result to KV, then publishes the key fingerprints. It
// is idempotent: a second run finds everything current. Once it reports no
// failure, SECRET_KEY_PREVIOUS can be removed.
func (in *Installer) Reseal(ctx context.Context) (ResealReport, error) {
	if _, err := in.CheckKeys(ctx); err != nil {
		return ResealReport{}, fmt.Errorf("reseal: %w", err)
	}
	in.mu.Lock()
	all, err := in.store.List(ctx)
	if err != nil {
		in.mu.Unlock()
		return ResealReport{}, fmt.Errorf("reseal: %w", err)
	}
	rep := ResealReport{Installations: len(all)}
	var errs []error
	for _, inst := range all {
		resealed, err := in.resealOne(ctx, inst)
		switch {
		case err != nil:
			rep.Failed++
			errs = append(errs, fmt.Errorf("installation %s: %w", inst.ID, err))
		case resealed:
			rep.Resealed++
		default:
			rep.Current++
		}
	}
	in.mu.Unlock()
	in.logger.Info("installations sealed again", "installations", rep.Installations, "resealed", rep.Resealed,
		"current", rep.Current, "failed", rep.Failed)
	st, err := in.PublishKeys(ctx)
	rep.Keys = st
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("reseal: %w", errors.Join(errs...))
	}
	return rep, nil
}

// resealOne seals inst again if it is stale and publishes it, reading it
// again when another process changed it meanwhile. It reports whether
// anything changed. It must be called with mu held.
func (in *Installer) resealOne(ctx context.Context, inst registry.Installation) (bool, error) {
	for attempt := 1; ; attempt++ {
		next, use, err := in.rekey(inst)
		if err != nil {
			return false, err
		}
		if !use.stale {
			// Published anyway, so that KV holds what SQL holds.
			return false, in.kv.PutInstallation(ctx, inst.Entry())
		}
		stored, err := in.store.Rekey(ctx, inst.ID, inst.Keyed(), next)
		if errors.Is(err, registry.ErrChanged) && attempt < rekeyAttempts {
			if inst, err = in.store.Get(ctx, inst.ID); err != nil {
				return false, err
			}
			continue
		}
		if errors.Is(err, registry.ErrNotFound) {
			return false, nil // removed meanwhile: nothing left to seal
		}
		if err != nil {
			return false, err
		}
		if err := in.kv.PutInstallation(ctx, stored.Entry()); err != nil {
			return false, fmt.Errorf("publish installation %s: %w", stored.ID, err)
		}
		return true, nil
	}
}

// KeysUsage describes the `keys` commands.
const KeysUsage = `usage: keys <command>

Commands:
  reseal
        seal every installation's webhook URL, Jamf token and inbound
        credentials again under SECRET_KEY, hash tokens again, and publish
        the key fingerprints. Run it with SECRET_KEY (the new key) and,
        during a rotation, SECRET_KEY_PREVIOUS (the old one); once it reports
        no failure, SECRET_KEY_PREVIOUS can be removed. Running it again
        changes nothing.
`

var keysGroup = commandGroup{"keys", KeysUsage, map[string]channelCommand{
	"reseal": {"keys reseal", (*Installer).cmdReseal},
}}

// RunKeysCommand runs one `keys` command; args are what follows "keys".
// Command-line mistakes are *UsageError; "help" prints KeysUsage.
func (in *Installer) RunKeysCommand(ctx context.Context, args []string, stdout io.Writer) error {
	return in.runCommand(ctx, keysGroup, args, stdout)
}

// KeysHelp answers, before anything is opened, the `keys` command lines
// that need no registry, as ChannelsHelp does for `channels`.
func KeysHelp(args []string, stdout io.Writer) (done bool, err error) {
	return keysGroup.help(args, stdout)
}

func (in *Installer) cmdReseal(ctx context.Context, args []string, stdout io.Writer) error {
	if _, err := parse(flag.NewFlagSet("reseal", flag.ContinueOnError), args, 0); err != nil {
		return err
	}
	rep, err := in.Reseal(ctx)
	if rep.Installations > 0 || err == nil {
		if _, werr := fmt.Fprintf(stdout, "Sealed again under SECRET_KEY: %d of %d installations (%d already were, %d failed).\n",
			rep.Resealed, rep.Installations, rep.Current, rep.Failed); werr != nil {
			return werr
		}
	}
	if err != nil {
		_, _ = fmt.Fprintln(stdout, "Keep SECRET_KEY_PREVIOUS until every installation is sealed again: fix or remove the ones that failed, then run keys reseal again.")
		return err
	}
	next := "Nothing needs SECRET_KEY_PREVIOUS any more: remove it from every service."
	if in.keys.Previous() == nil {
		next = "Everything is sealed under SECRET_KEY."
	}
	_, err = fmt.Fprintln(stdout, next)
	return err
}
