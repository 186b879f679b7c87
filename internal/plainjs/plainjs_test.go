package plainjs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/plainjs"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// connect provisions the plain pipeline on a fresh JetStream server.
func connect(t *testing.T) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	nc, err := nats.Connect(bustest.Server(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := plainjs.Provision(t.Context(), js, false)
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

func stored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), plainjs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func post(h http.Handler, body string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/jamf/t", strings.NewReader(body)))
	return rec.Code
}

// TestHandler checks the plain publishing handler: 204 once the stream stored the
// body, a repeated body stored once (the dedup window, as ingest has it),
// a new Provision starting from an empty stream unless it keeps the
// backlog, and 503 for a publish
// that fails.
func TestHandler(t *testing.T) {
	js, _ := connect(t)
	h := plainjs.Handler(js)
	for _, body := range []string{`{"n":1}`, `{"n":2}`, `{"n":1}`} {
		if code := post(h, body); code != http.StatusNoContent {
			t.Fatalf("post %s answered %d, want 204", body, code)
		}
	}
	if n := stored(t, js); n != 2 {
		t.Errorf("stream holds %d messages after three posts of two bodies, want 2", n)
	}
	if _, err := plainjs.Provision(t.Context(), js, true); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, js); n != 2 {
		t.Errorf("stream holds %d messages after a Provision that keeps them, want 2", n)
	}
	if _, err := plainjs.Provision(t.Context(), js, false); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, js); n != 0 {
		t.Errorf("stream holds %d messages after a new Provision, want 0", n)
	}
	if err := js.DeleteStream(t.Context(), plainjs.Stream); err != nil {
		t.Fatal(err)
	}
	if code := post(h, `{"n":3}`); code != http.StatusServiceUnavailable {
		t.Errorf("post without the stream answered %d, want 503", code)
	}
}

const computerAdded = `{"webhook": {"id": 1, "name": "w", "webhookEvent": "ComputerAdded", "eventTimestamp": 1732870801234},
 "event": {"udid": "U-1", "deviceName": "MBP-1", "serialNumber": "C02X", "jssID": 1}}`

// TestDeliver checks the plain delivery loop: a Jamf event is rendered, posted
// and acked (it leaves the interest stream); a body that is not one is
// reported and terminated; a post that fails is reported and acked.
func TestDeliver(t *testing.T) {
	js, cons := connect(t)
	fake := slacktest.New(t)
	hook := fake.NewWebhook("plain")
	client := slack.New(fake.Config())
	var mu sync.Mutex
	var failures []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, err)
	}
	postTo := func(ctx context.Context, subject string, m slack.Message) error {
		if subject != plainjs.Subject {
			t.Errorf("subject %q, want %q", subject, plainjs.Subject)
		}
		return client.Post(ctx, hook, m)
	}
	stop, err := plainjs.Deliver(cons, 4, render.Options{}, postTo, fail)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := plainjs.Handler(js)
	if code := post(h, computerAdded); code != http.StatusNoContent {
		t.Fatalf("post answered %d, want 204", code)
	}
	msgs := fake.WaitFor(t, hook, 1, 30*time.Second)
	if b, _ := json.Marshal(msgs[0]); !strings.Contains(string(b), "MBP-1") {
		t.Errorf("posted message %s does not name the computer", b)
	}
	fake.Script(hook, slacktest.ServerError())
	for _, body := range []string{`{"not": "jamf"}`, strings.Replace(computerAdded, "U-1", "U-2", 1)} {
		if code := post(h, body); code != http.StatusNoContent {
			t.Fatalf("post answered %d, want 204", code)
		}
	}
	testwait.Until(t, 30*time.Second, func() error {
		mu.Lock()
		n := len(failures)
		mu.Unlock()
		if n < 2 {
			return errors.New("fewer than two failures reported")
		}
		if st := stored(t, js); st != 0 {
			return errors.New("the stream still holds events")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(failures) != 2 {
		t.Errorf("failures %v, want one parse and one post", failures)
	}
}

// TestGroupHandler checks the group commit: every request answered 204
// finds its body, whole, in one of the stream's messages, and a publish
// that fails answers 503.
func TestGroupHandler(t *testing.T) {
	js, _ := connect(t)
	h := plainjs.GroupHandler(t.Context(), js, 2)
	const n = 50
	want := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		want[i] = fmt.Sprintf(`{"n":%d}`, i)
		wg.Go(func() {
			if code := post(h, want[i]); code != http.StatusNoContent {
				t.Errorf("post %s answered %d, want 204", want[i], code)
			}
		})
	}
	wg.Wait()
	s, err := js.Stream(t.Context(), plainjs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		bodies, err := plainjs.SplitGroup(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		for _, b := range bodies {
			got = append(got, string(b))
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("bodies stored (-want +got):\n%s", diff)
	}
	if err := js.DeleteStream(t.Context(), plainjs.Stream); err != nil {
		t.Fatal(err)
	}
	if code := post(h, `{"n":"late"}`); code != http.StatusServiceUnavailable {
		t.Errorf("post without the stream answered %d, want 503", code)
	}
}

func TestSplitGroup(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    []string
		wantErr bool
	}{
		{name: "empty", data: nil, want: nil},
		{name: "two", data: []byte("\x02ab\x03cde"), want: []string{"ab", "cde"}},
		{name: "an empty body", data: []byte("\x00\x01x"), want: []string{"", "x"}},
		{name: "length past the end", data: []byte("\x05ab"), wantErr: true},
		{name: "broken length", data: []byte{0x80}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bodies, err := plainjs.SplitGroup(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SplitGroup = %v, want an error: %v", err, tt.wantErr)
			}
			var got []string
			for _, b := range bodies {
				got = append(got, string(b))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("bodies (-want +got):\n%s", diff)
			}
		})
	}
}
