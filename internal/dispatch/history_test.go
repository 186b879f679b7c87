package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
)

// memHistory is an in-memory History.
type memHistory struct {
	kept         []jamf.DeadLetter
	since, until time.Time
	resent       int
}

func (m *memHistory) History(_ context.Context, id string, since, until time.Time) ([]jamf.DeadLetter, error) {
	m.since, m.until = since, until
	var out []jamf.DeadLetter
	for _, d := range m.kept {
		if d.InstallationID == id && !d.At.Before(since) && !d.At.After(until) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memHistory) ResendHistory(ctx context.Context, id string, since, until time.Time) (int, error) {
	h, _ := m.History(ctx, id, since, until)
	m.resent += len(h)
	return len(h), nil
}

func TestHistoryCommand(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	kept := func() *memHistory {
		entry := func(event string, ago time.Duration) jamf.DeadLetter {
			return jamf.DeadLetter{Received: jamf.Received{InstallationID: "inst", Event: event}, At: now.Add(-ago)}
		}
		return &memHistory{kept: []jamf.DeadLetter{
			entry("ComputerAdded", 3*time.Hour), entry("ComputerAdded", time.Hour), entry("ComputerCheckIn", 30*time.Minute),
			// Delivered after the command started: neither listed nor sent.
			entry("ComputerCheckIn", -time.Second),
		}}
	}
	tests := []struct {
		name   string
		args   []string
		want   []string
		resent int
		err    error
	}{
		{"dry run says what it would send", []string{"resend", "--installation", "inst", "--since", "2h"},
			[]string{"would resend 2 events delivered to installation inst since 2026-11-30T10:00:00Z", "ComputerAdded 1, ComputerCheckIn 1", "--yes"}, 0, nil},
		{"yes sends", []string{"resend", "--installation", "inst", "--since", "2h", "--yes"},
			[]string{"resent 2 events"}, 2, nil},
		{"nothing in the window", []string{"resend", "--installation", "inst", "--since", "10m"},
			[]string{"no events delivered to installation inst"}, 0, nil},
		{"help", []string{"help"}, []string{"history resend --installation ID --since DURATION"}, 0, nil},
		{"no installation", []string{"resend", "--since", "2h"}, nil, 0, dispatch.ErrUsage},
		{"no since", []string{"resend", "--installation", "inst"}, nil, 0, dispatch.ErrUsage},
		{"bad since", []string{"resend", "--installation", "inst", "--since", "yesterday"}, nil, 0, dispatch.ErrUsage},
		{"unknown command", []string{"replay"}, nil, 0, dispatch.ErrUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := kept()
			var out bytes.Buffer
			c, err := dispatch.ParseHistoryCommand(tt.args)
			if err == nil {
				err = c.Run(t.Context(), h, now, &out)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
			if h.resent != tt.resent {
				t.Errorf("resent %d, want %d", h.resent, tt.resent)
			}
		})
	}
}
