package app

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCommandArgs(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantRest []string
		wantInit bool
	}{
		{name: "none", args: []string{"list"}, wantRest: []string{"list"}},
		{name: "after the command", args: []string{"add", "--init", "--channel", "x"}, wantRest: []string{"add", "--channel", "x"}, wantInit: true},
		{name: "before the command", args: []string{"-init", "list"}, wantRest: []string{"list"}, wantInit: true},
		{name: "after --", args: []string{"disable", "--", "--init"}, wantRest: []string{"disable", "--", "--init"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, init := CommandArgs(tt.args)
			if diff := cmp.Diff(tt.wantRest, rest); diff != "" || init != tt.wantInit {
				t.Errorf("CommandArgs(%q) = %q, %v; want %q, %v", tt.args, rest, init, tt.wantRest, tt.wantInit)
			}
		})
	}
}

// TestCommandsRefuseANewInstance runs the all-in-one's commands from a
// directory that holds no instance, as `jackalope dlq list` run from the
// wrong directory would: each refuses, says what it looked for, and
// creates nothing.
func TestCommandsRefuseANewInstance(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"DATA_DIR": elsewhere}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "dlq list", args: []string{"dlq", "list"},
			want: []string{"NATS_URL is not set and DATA_DIR (" + elsewhere + ") holds no embedded NATS store", "--init"}},
		{name: "channels list", args: []string{"channels", "list"},
			want: []string{"DATABASE_URL is not set", "NATS_URL is not set", "SECRET_KEY is not set and DATA_DIR (" + elsewhere + ") holds no secret_key"}},
		{name: "channels add", args: []string{"channels", "add", "--webhook-url", "https://hooks.slack.com/services/T/B/x", "--channel", "j"},
			want: []string{"holds no registry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := AllInOne(t.Context(), tt.args, func(k string) string { return env[k] }, &stdout, &stderr)
			if !errors.Is(err, ErrNoInstance) {
				t.Fatalf("AllInOne(%q) = %v; want ErrNoInstance", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q; want nothing (no dead letters from a new store)", &stdout)
			}
		})
	}
	var stdout bytes.Buffer
	if err := AllInOne(t.Context(), []string{"channels", "help"}, func(k string) string { return env[k] }, &stdout, &stdout); err != nil ||
		!strings.Contains(stdout.String(), "usage: channels") {
		t.Errorf("channels help = %v, %q; want the usage without an instance", err, &stdout)
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused commands left %s behind (%v); want nothing created", elsewhere, err)
	}
}

// TestCommandsInit starts a new instance with --init, then acts on it
// without, saying where; a key file of the old minimum length, as an older
// version may have left, is still used, with a warning.
func TestCommandsInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"DATA_DIR": dir}
	run := func(args ...string) (stdout, stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := AllInOne(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut); err != nil {
			t.Fatalf("jackalope %q = %v\nstderr:\n%s", args, err, &errOut)
		}
		return out.String(), errOut.String()
	}
	out, errOut := run("channels", "list", "--init")
	if !strings.Contains(out, "No installations.") {
		t.Errorf("channels list --init printed %q; want No installations.", out)
	}
	wantWhere := "acting on DATA_DIR " + dir + ": registry sqlite " + filepath.Join(dir, "jackalope.db") + ", NATS embedded (store " + filepath.Join(dir, "nats") + ")"
	if !strings.Contains(errOut, wantWhere) {
		t.Errorf("stderr does not say %q:\n%s", wantWhere, errOut)
	}
	if out, errOut := run("dlq", "list"); !strings.Contains(out, "no dead letters") || !strings.Contains(errOut, "acting on DATA_DIR "+dir+": NATS embedded") {
		t.Errorf("dlq list = %q, stderr %q; want no dead letters, acting on the embedded store", out, errOut)
	}

	const oldKey = "0123456789abcdefghij" // 20 characters: accepted before 32 were required
	if err := os.WriteFile(filepath.Join(dir, secretKeyFile), []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut = run("channels", "list")
	if !strings.Contains(out, "No installations.") || !strings.Contains(errOut, "the secret key in DATA_DIR is weak") {
		t.Errorf("channels list with a 20-character key file = %q, stderr %q; want it to work and warn", out, errOut)
	}
	if strings.Contains(errOut, oldKey) {
		t.Errorf("the warning shows the key:\n%s", errOut)
	}
}
