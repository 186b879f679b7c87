package app

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/logtest"
	"github.com/jackalope-app/jackalope/internal/secret"
)

// published is a keyring a test sets.
type published struct {
	mu  sync.Mutex
	f   bus.Fingerprints
	ok  bool
	err error
}

func (p *published) KeyFingerprints(context.Context) (bus.Fingerprints, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.f, p.ok, p.err
}

func (p *published) set(f bus.Fingerprints, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.f, p.ok, p.err = f, ok, err
}

func mustKeys(t *testing.T, key, previous string) *secret.Keys {
	t.Helper()
	k, err := secret.NewWithPrevious(key, previous)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyAgreement pins when a service is ready with respect to the keys
// the installer publishes: it must hold the key the installer seals with,
// and the previous key while the installer says something still needs it.
func TestKeyAgreement(t *testing.T) {
	const (
		keyA = "key agreement test key AAAAAAAA"
		keyB = "key agreement test key BBBBBBBB"
	)
	a, b := mustKeys(t, keyA, ""), mustKeys(t, keyB, "")
	tests := []struct {
		name      string
		keys      *secret.Keys
		published *bus.Fingerprints
		want      string // in the problem; "" means agreed
	}{
		{name: "nothing published", keys: a},
		{name: "same key", keys: a, published: &bus.Fingerprints{Current: a.Fingerprint()}},
		{name: "another key", keys: a, published: &bus.Fingerprints{Current: b.Fingerprint()}, want: "SECRET_KEY does not match"},
		{name: "updated before the installer", keys: mustKeys(t, keyB, keyA), published: &bus.Fingerprints{Current: a.Fingerprint()}},
		{name: "rotating with the installer", keys: mustKeys(t, keyB, keyA), published: &bus.Fingerprints{Current: b.Fingerprint(), Previous: a.Fingerprint()}},
		{name: "left on the old key", keys: a, published: &bus.Fingerprints{Current: b.Fingerprint(), Previous: a.Fingerprint()}, want: "SECRET_KEY does not match"},
		{name: "previous key dropped before reseal", keys: b, published: &bus.Fingerprints{Current: b.Fingerprint(), Previous: a.Fingerprint()}, want: "set SECRET_KEY_PREVIOUS to the old key"},
		{name: "previous key kept after reseal", keys: mustKeys(t, keyB, keyA), published: &bus.Fingerprints{Current: b.Fingerprint()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &published{}
			if tt.published != nil {
				src.set(*tt.published, true, nil)
			}
			logs := &logtest.Buffer{}
			ka := NewKeyAgreement(src, tt.keys, slog.New(slog.NewTextHandler(logs, nil)))
			if got := ka.Problem(); got == "" {
				t.Error("agreed before the first check; want not ready until the fingerprints are read")
			}
			ka.Check(t.Context())
			got := ka.Problem()
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("Problem() = %q; want %q", got, tt.want)
			}
			if cond := ka.Condition(); cond.OK() != (tt.want == "") {
				t.Errorf("Condition().OK() = %v", cond.OK())
			}
			if tt.want != "" && !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("no ERROR logged:\n%s", logs)
			}
			for _, key := range []string{keyA, keyB} {
				if strings.Contains(logs.String()+got, key) {
					t.Error("a key shows in the logs or the reason")
				}
			}
		})
	}
}

// TestKeyAgreementFollowsChanges pins that a failed read keeps the last
// answer and that Wait returns once the keys agree.
func TestKeyAgreementFollowsChanges(t *testing.T) {
	a := mustKeys(t, "key agreement test key AAAAAAAA", "")
	b := mustKeys(t, "key agreement test key BBBBBBBB", "")
	src := &published{}
	src.set(bus.Fingerprints{Current: b.Fingerprint()}, true, nil)
	ka := NewKeyAgreement(src, a, slog.New(slog.DiscardHandler))
	ka.Check(t.Context())
	if ka.Problem() == "" {
		t.Fatal("agreed with another key")
	}
	src.set(bus.Fingerprints{}, false, errors.New("nats: timeout"))
	ka.Check(t.Context())
	if ka.Problem() == "" {
		t.Fatal("a failed read made the keys agree")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ka.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait while the keys disagree = %v; want the context's end", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- ka.Wait(t.Context()) }()
	src.set(bus.Fingerprints{Current: a.Fingerprint()}, true, nil)
	ka.Check(t.Context())
	if err := <-waited; err != nil {
		t.Errorf("Wait after the keys agreed = %v", err)
	}
}
