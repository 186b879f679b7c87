package bus

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/jamf"
)

// TestSecondProcessSharesEmbeddedServer checks that a second Connect on a
// data directory whose embedded server is running (a `channels` command
// beside a running all-in-one) uses that server instead of failing on the
// locked store, and that the URL file goes away with the server.
func TestSecondProcessSharesEmbeddedServer(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	first, err := Connect(ctx, Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatalf("first Connect: %v", err)
	}
	if err := first.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	urlFile := filepath.Join(dir, "nats", urlFileName)
	if _, err := os.Stat(urlFile); err != nil {
		t.Fatalf("embedded server wrote no URL file: %v", err)
	}

	second, err := Connect(ctx, Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	if second.srv != nil {
		t.Fatal("second Connect started its own server; want the running one shared")
	}
	r := jamf.Received{InstallationID: "0b0c2a5e-8c5e-4f43-9a49-3f0f3c6f0b11", Event: "ComputerAdded",
		ReceivedAt: time.Now(), Body: []byte(`{"webhook":{"webhookEvent":"ComputerAdded"},"event":{}}`)}
	if err := second.Publish(ctx, r); err != nil {
		t.Fatalf("publish through the shared server: %v", err)
	}
	second.Close()
	if _, err := os.Stat(urlFile); err != nil {
		t.Errorf("closing the sharing client removed the URL file: %v", err)
	}
	first.Close()
	if _, err := os.Stat(urlFile); !os.IsNotExist(err) {
		t.Errorf("URL file left after the server stopped: %v", err)
	}

	// A stale file (server gone without cleanup) must not stop a start,
	// nor may a file whose port now belongs to another embedded server.
	other, err := Connect(ctx, Config{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := os.WriteFile(urlFile, []byte(other.srv.ClientURL()+" NOTTHEID\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := Connect(ctx, Config{DataDir: dir}, nil)
	if err != nil {
		t.Fatalf("Connect with a stale URL file: %v", err)
	}
	defer third.Close()
	if third.srv == nil {
		t.Error("Connect with a stale URL file did not start its own server")
	}
	info, err := third.js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatalf("restarted server lost the stream: %v", err)
	}
	if got := info.CachedInfo().State.Msgs; got != 1 {
		t.Errorf("stream holds %d messages after restart; want the 1 published", got)
	}
}
