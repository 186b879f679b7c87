package installer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackalope-app/jackalope/internal/httpserver"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

// TestStateFloodDoesNotLockOutInstalls pins finding 7: pairs of GET
// /install and a callback with that state and a made-up or empty code use
// no state up, so however many come, a real install still works, whether
// used states are kept in the KV bucket or in the process's bounded memory.
func TestStateFloodDoesNotLockOutInstalls(t *testing.T) {
	tests := []struct {
		name   string
		memory bool
	}{
		{name: "kv bucket"},
		{name: "process memory", memory: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, func(o *Options) {
				if tt.memory {
					o.UsedStates = nil
				}
			})
			const room = 5
			if tt.memory {
				// The memory is small, so that the flood would fill it
				// many times over if it took any room.
				env.in.states.used = newMemStates(env.clock.Now, room)
			}
			for i := range 4 * room {
				state, ck := env.begin(t)
				code := ""
				if i%2 == 1 {
					code = fmt.Sprintf("made-up-%d", i) // Slack answers invalid_code
				}
				resp, page := env.callback(t, url.Values{"code": {code}, "state": {state}}, ck)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "invalid_code") {
					t.Fatalf("flood callback %d = %d; want 400 invalid_code:\n%s", i, resp.StatusCode, page)
				}
			}
			env.slack.AddCode("real", slacktest.Install{ChannelName: "jamf"})
			status, page, jamfURL := env.install(t, "real")
			if status != http.StatusOK || jamfURL == "" {
				t.Fatalf("install after the flood = %d; want 200 with the Jamf URL:\n%s", status, page)
			}
		})
	}
}

// TestStateSingleUse pins that a state is used up by the install it
// finished, and by nothing less: a code Slack refuses leaves the state
// usable, while a second install with a used state is refused in this
// installer and in another replica sharing the KV bucket.
func TestStateSingleUse(t *testing.T) {
	env := newEnv(t)
	replica := env.replica(t)

	state, ck := env.begin(t)
	resp, page := env.callback(t, url.Values{"code": {"refused"}, "state": {state}}, ck)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "invalid_code") {
		t.Fatalf("callback with a refused code = %d; want 400 invalid_code:\n%s", resp.StatusCode, page)
	}
	env.slack.AddCode("first", slacktest.Install{ChannelName: "first"})
	resp, page = env.callback(t, url.Values{"code": {"first"}, "state": {state}}, ck)
	if resp.StatusCode != http.StatusOK || env.jamfURLIn(page) == "" {
		t.Fatalf("install with the state a refused code left = %d; want 200:\n%s", resp.StatusCode, page)
	}

	replays := []struct {
		name string
		base string
	}{
		{"same installer", env.srv.URL},
		{"another replica", replica.URL},
	}
	for i, r := range replays {
		t.Run(r.name, func(t *testing.T) {
			code := fmt.Sprintf("replay-%d", i)
			hook := env.slack.AddCode(code, slacktest.Install{ChannelName: code})
			resp, page := get(t, browser(t, false), r.base+"/install?"+url.Values{"code": {code}, "state": {state}}.Encode(), ck)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already used") {
				t.Fatalf("replayed state = %d; want 400 already used:\n%s", resp.StatusCode, page)
			}
			if n := env.count(t); n != 1 {
				t.Errorf("store holds %d installations; want only the first install", n)
			}
			if n := env.slack.Count(hook); n != 0 {
				t.Errorf("%d messages posted to the replay's channel; want none", n)
			}
		})
	}
}

// replica serves a second installer on env's store, KV bucket and fake
// Slack, with the same key and public URL, as a second pod behind the same
// load balancer.
func (e *testEnv) replica(t *testing.T) *httptest.Server {
	t.Helper()
	in, err := New(Options{
		Store:      e.store,
		KV:         e.kv,
		Slack:      slack.New(e.slack.Config()),
		Keys:       e.keys,
		BaseURL:    e.srv.URL,
		OAuth:      e.in.oauth,
		Registerer: prometheus.NewRegistry(),
		Now:        e.clock.Now,
		UsedStates: e.kv,
	})
	if err != nil {
		t.Fatal(err)
	}
	echo := httpserver.New(httpserver.Options{})
	in.Register(echo)
	srv := httptest.NewServer(echo)
	t.Cleanup(srv.Close)
	return srv
}

// TestSlowExchangeKeepsResultPage pins finding 8: when Slack takes longer
// than the server's write timeout, the callback still writes the result
// page with the Jamf URL, because it pushes its own write deadline past its
// work's timeout. The timeouts are scaled down: a 300 ms write timeout and
// Slack answering each request after a second.
func TestSlowExchangeKeepsResultPage(t *testing.T) {
	env := newEnvWithServer(t, func(s *http.Server) { s.WriteTimeout = 300 * time.Millisecond },
		func(o *Options) { o.CallbackTimeout = 10 * time.Second })
	hook := env.slack.AddCode("slow", slacktest.Install{ChannelName: "jamf"})
	env.slack.SetLatency(time.Second)

	state, ck := env.begin(t)
	resp, page := env.callback(t, url.Values{"code": {"slow"}, "state": {state}}, ck)
	if resp.StatusCode != http.StatusOK || env.jamfURLIn(page) == "" {
		t.Fatalf("slow callback = %d; want 200 with the Jamf URL:\n%s", resp.StatusCode, page)
	}
	if n := env.slack.Count(hook); n != 1 {
		t.Errorf("welcome messages = %d; want 1", n)
	}
}

// TestCallbackTimeoutFitsWriteTimeout pins that, with the defaults, the
// callback's work and its page fit in the HTTP server's write timeout even
// without the deadline it pushes.
func TestCallbackTimeoutFitsWriteTimeout(t *testing.T) {
	if DefaultCallbackTimeout+pageWriteMargin > httpserver.WriteTimeout {
		t.Errorf("DefaultCallbackTimeout %v + pageWriteMargin %v > httpserver.WriteTimeout %v",
			DefaultCallbackTimeout, pageWriteMargin, httpserver.WriteTimeout)
	}
}
