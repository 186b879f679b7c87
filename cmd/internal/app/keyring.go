package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/installer"
	"github.com/jackalope-app/jackalope/internal/retry"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// keyCheckInterval is how often a service reads the published key
// fingerprints again.
const keyCheckInterval = 5 * time.Second

// Fingerprints reads the key fingerprints the installer published;
// *bus.Conn satisfies it.
type Fingerprints interface {
	KeyFingerprints(ctx context.Context) (bus.Fingerprints, bool, error)
}

// KeyAgreement compares this process's keys with the fingerprints the
// installer publishes (bucket "keyring"): a process that lacks the key the
// installer seals with, or the previous key it still needs, cannot open
// webhook URLs or find tokens, so it is not ready and says why, instead of
// dead-lettering every event or answering 404 to every Jamf URL.
type KeyAgreement struct {
	src    Fingerprints
	keys   *secret.Keys
	logger *slog.Logger

	mu      sync.Mutex
	checked bool
	problem string        // why the keys disagree; empty when they agree
	changed chan struct{} // closed when checked or problem changes
}

// NewKeyAgreement returns a KeyAgreement of keys against what src holds.
// Call Check (or Run) before asking it anything.
func NewKeyAgreement(src Fingerprints, keys *secret.Keys, logger *slog.Logger) *KeyAgreement {
	return &KeyAgreement{src: src, keys: keys, logger: logger, changed: make(chan struct{})}
}

// Check reads the published fingerprints once and compares them with this
// process's keys, logging an ERROR when they start to disagree. A failed
// read keeps the last answer.
func (k *KeyAgreement) Check(ctx context.Context) {
	pub, ok, err := k.src.KeyFingerprints(ctx)
	if err != nil {
		k.logger.Debug("key fingerprints not read", "err", err)
		return
	}
	problem := ""
	if ok {
		problem = k.disagreement(pub)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.checked && problem == k.problem {
		return
	}
	switch {
	case problem != "":
		k.logger.Error("this process's keys do not match the installer's: not ready", "reason", problem,
			"fingerprint", k.keys.Fingerprint(), "published_fingerprint", pub.Current, "published_previous_fingerprint", pub.Previous)
	case !ok:
		k.logger.Info("no key fingerprint published yet: SECRET_KEY cannot be checked against the installer's until it starts")
	case k.checked:
		k.logger.Info("this process's keys match the installer's again", "fingerprint", k.keys.Fingerprint())
	}
	k.checked, k.problem = true, problem
	close(k.changed)
	k.changed = make(chan struct{})
}

// disagreement says why keys cannot read what pub says is stored, or ""
// when they can.
func (k *KeyAgreement) disagreement(pub bus.Fingerprints) string {
	var held string
	if p := k.keys.Previous(); p != nil {
		held = fmt.Sprintf("this process holds %s and, as SECRET_KEY_PREVIOUS, %s", k.keys.Fingerprint(), p.Fingerprint())
	} else {
		held = "this process holds " + k.keys.Fingerprint() + " and no SECRET_KEY_PREVIOUS"
	}
	switch {
	case !k.keys.Holds(pub.Current):
		return fmt.Sprintf("SECRET_KEY does not match the installer's key (installer fingerprint %s; %s): "+
			"set SECRET_KEY to the installer's key, or during a rotation SECRET_KEY to the new key and SECRET_KEY_PREVIOUS to the old one",
			pub.Current, held)
	case pub.Previous != "" && !k.keys.Holds(pub.Previous):
		return fmt.Sprintf("the installer still has values sealed under its SECRET_KEY_PREVIOUS (fingerprint %s; %s): "+
			"set SECRET_KEY_PREVIOUS to the old key until keys reseal has run", pub.Previous, held)
	}
	return ""
}

// Run checks every keyCheckInterval until ctx ends.
func (k *KeyAgreement) Run(ctx context.Context) {
	for retry.Sleep(ctx, keyCheckInterval) {
		k.Check(ctx)
	}
}

// Problem says why the keys disagree, or "" when they agree (or nothing
// was published to compare with).
func (k *KeyAgreement) Problem() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.checked {
		return "the key fingerprints were not read yet"
	}
	return k.problem
}

// Condition is the readiness condition of key agreement.
func (k *KeyAgreement) Condition() Condition {
	return Condition{OK: func() bool { return k.Problem() == "" }, Reason: k.Problem}
}

// Wait returns once the keys agree, or with ctx's error when ctx ends
// first. A dispatcher waits before it consumes, so that it never parks
// events it could not open.
func (k *KeyAgreement) Wait(ctx context.Context) error {
	for {
		k.mu.Lock()
		ok, changed := k.checked && k.problem == "", k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// WatchKeys checks the keys against the published fingerprints now and
// then in the background until ctx ends; the caller must wait on done.
func WatchKeys(ctx context.Context, conn Fingerprints, keys *secret.Keys, logger *slog.Logger) (ka *KeyAgreement, done <-chan struct{}) {
	ka = NewKeyAgreement(conn, keys, logger)
	ka.Check(ctx)
	d := make(chan struct{})
	go func() {
		defer close(d)
		ka.Run(ctx)
	}()
	return ka, d
}

// PublishKeys checks the registry against the keys and publishes their
// fingerprints, what the installer and the all-in-one do at start. A key
// that opens none of the stored installations stops the start, naming
// SECRET_KEY.
func PublishKeys(ctx context.Context, inst *installer.Installer, logger *slog.Logger) error {
	st, err := inst.PublishKeys(ctx)
	if errors.Is(err, installer.ErrWrongKey) {
		return fmt.Errorf("SECRET_KEY: %w", err)
	}
	if err != nil {
		return err
	}
	if st.Unreadable > 0 {
		logger.Error("some installations hold values neither SECRET_KEY nor SECRET_KEY_PREVIOUS opens; their events cannot be delivered",
			"installations", st.Installations, "unreadable", st.Unreadable)
	}
	if st.Stale > 0 {
		logger.Info("some installations are sealed under SECRET_KEY_PREVIOUS or an older format; run keys reseal",
			"stale", st.Stale, "need_previous", st.NeedPrevious)
	}
	return nil
}

// CheckCommandKeys refuses to run a command that writes the registry with
// keys that do not match it: a channel added with another key would show
// active and answer 404 forever.
func CheckCommandKeys(ctx context.Context, inst *installer.Installer, src Fingerprints, keys *secret.Keys) error {
	if _, err := inst.CheckKeys(ctx); err != nil {
		if errors.Is(err, installer.ErrWrongKey) {
			return fmt.Errorf("SECRET_KEY: %w", err)
		}
		return err
	}
	pub, ok, err := src.KeyFingerprints(ctx)
	if err != nil {
		return fmt.Errorf("check SECRET_KEY against the installer's: %w", err)
	}
	if !ok {
		return nil
	}
	ka := NewKeyAgreement(src, keys, slog.New(slog.DiscardHandler))
	if problem := ka.disagreement(pub); problem != "" {
		return errors.New(problem)
	}
	return nil
}
