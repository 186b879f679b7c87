package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
)

// memDLQ is an in-memory dead-letter stream.
type memDLQ struct {
	dead      []jamf.DeadLetter
	replayErr error
	calls     []string
}

func (m *memDLQ) ListDead(_ context.Context, id string) ([]jamf.DeadLetter, error) {
	var out []jamf.DeadLetter
	for _, d := range m.dead {
		if id == "" || d.InstallationID == id {
			out = append(out, d)
		}
	}
	return out, nil
}

func (m *memDLQ) ReplayDead(_ context.Context, id string, all bool) (int, error) {
	m.calls = append(m.calls, "replay "+id+" "+map[bool]string{true: "all", false: "one"}[all])
	if m.replayErr != nil {
		return 1, m.replayErr
	}
	n, _ := m.ListDead(context.Background(), id)
	return len(n), nil
}

func (m *memDLQ) DropDead(_ context.Context, id string, all bool) (int, error) {
	m.calls = append(m.calls, "drop "+id+" "+map[bool]string{true: "all", false: "one"}[all])
	n, _ := m.ListDead(context.Background(), id)
	return len(n), nil
}

func (m *memDLQ) ReplayDeadLetter(_ context.Context, id string, seq uint64) (int, error) {
	return m.settleOne("replay", id, seq), nil
}

func (m *memDLQ) DropDeadLetter(_ context.Context, id string, seq uint64) (int, error) {
	return m.settleOne("drop", id, seq), nil
}

func (m *memDLQ) settleOne(op, id string, seq uint64) int {
	m.calls = append(m.calls, fmt.Sprintf("%s %s seq %d", op, id, seq))
	for _, d := range m.dead {
		if d.InstallationID == id && d.Seq == seq {
			return 1
		}
	}
	return 0
}

func TestRunDLQCommand(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	letters := []jamf.DeadLetter{
		{Received: jamf.Received{InstallationID: "inst-a", Event: "ComputerAdded", ReceivedAt: at.Add(-time.Hour)},
			Reason: "attempts_spent", Attempts: 10, LastStatus: 502, LastBody: "<html>\n<body>Bad   Gateway</body>\n</html>", At: at, Seq: 7},
		{Received: jamf.Received{InstallationID: "inst-b", Event: "JSSShutdown", ReceivedAt: at.Add(-time.Minute)},
			Reason: "channel_dead", Attempts: 1, LastStatus: 404, LastBody: "no_service", At: at, Seq: 9},
		{Received: jamf.Received{InstallationID: "inst-b", Event: "JSSStartup", ReceivedAt: at},
			Reason: "channel_dead", Attempts: 1, At: at, Seq: 12},
	}
	tests := []struct {
		name      string
		args      []string
		replayErr error
		want      string
		calls     []string
		wantErr   string
	}{
		{
			name: "list all",
			args: []string{"list"},
			want: `SEQ  INSTALLATION  EVENT          REASON          ATTEMPTS  RECEIVED              PARKED                LAST ANSWER
7    inst-a        ComputerAdded  attempts_spent  10        2026-03-01T11:30:00Z  2026-03-01T12:30:00Z  502 <html> <body>Bad Gateway</body> </html>
9    inst-b        JSSShutdown    channel_dead    1         2026-03-01T12:29:00Z  2026-03-01T12:30:00Z  404 no_service
12   inst-b        JSSStartup     channel_dead    1         2026-03-01T12:30:00Z  2026-03-01T12:30:00Z  -
3 dead letters: channel_dead 2, attempts_spent 1; events: ComputerAdded 1, JSSShutdown 1, JSSStartup 1 (all installations)
`,
		},
		{
			name: "list one installation with none",
			args: []string{"list", "--installation", "inst-c"},
			want: "no dead letters (installation inst-c)\n",
		},
		{
			name:  "replay one installation",
			args:  []string{"replay", "--installation", "inst-b"},
			want:  "found 2 dead letters: channel_dead 2; events: JSSShutdown 1, JSSStartup 1 (installation inst-b)\nreplayed 2 dead letters (installation inst-b)\n",
			calls: []string{"replay inst-b one"},
		},
		{
			name:  "replay one dead letter",
			args:  []string{"replay", "--installation", "inst-b", "--seq", "12"},
			want:  "found 1 dead letter: channel_dead 1; events: JSSStartup 1 (installation inst-b)\nreplayed 1 dead letter (installation inst-b)\n",
			calls: []string{"replay inst-b seq 12"},
		},
		{
			name:  "drop a dead letter that is gone",
			args:  []string{"drop", "--installation", "inst-a", "--seq", "9"},
			want:  "dropped 0 dead letters (installation inst-a)\n",
			calls: []string{"drop inst-a seq 9"},
		},
		{
			name:    "seq without an installation",
			args:    []string{"replay", "--all", "--seq", "9"},
			wantErr: "--seq needs --installation",
		},
		{
			name:  "drop all",
			args:  []string{"drop", "-all"},
			want:  "found 3 dead letters: channel_dead 2, attempts_spent 1; events: ComputerAdded 1, JSSShutdown 1, JSSStartup 1 (all installations)\ndropped 3 dead letters (all installations)\n",
			calls: []string{"drop  all"},
		},
		{
			name:      "replay that fails halfway says how far it got",
			args:      []string{"replay", "--all"},
			replayErr: errors.New("nats: timeout"),
			want:      "found 3 dead letters: channel_dead 2, attempts_spent 1; events: ComputerAdded 1, JSSShutdown 1, JSSStartup 1 (all installations)\n",
			calls:     []string{"replay  all"},
			wantErr:   "replay dead letters: nats: timeout (1 done before the failure)",
		},
		{
			name:    "unknown flag",
			args:    []string{"list", "--all"},
			wantErr: "dlq list: flag provided but not defined: -all",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dlq := &memDLQ{dead: letters, replayErr: tt.replayErr}
			var out bytes.Buffer
			err := dispatch.RunDLQCommand(t.Context(), tt.args, dlq, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.calls, dlq.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}
