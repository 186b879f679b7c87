package e2e

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserEnv, when "required", makes a missing or broken browser fail the
// real-browser tests instead of skipping them; .ci/run sets it.
const browserEnv = "JACKALOPE_TEST_BROWSER"

// screenshots is where the console tests save a screenshot of each page
// (go test ./cmd/internal/e2e -run TestConsoleInBrowser -screenshots ../../../docs).
var screenshots = flag.String("screenshots", "", "directory to save the console's screenshots in, e.g. ../../../docs")

// browserStepTimeout bounds each step a test asks of the browser.
const browserStepTimeout = 30 * time.Second

// newBrowser starts a headless Chromium (Debian's chromium, found on PATH)
// for the test and returns its context, which lives until the test ends.
// Without Chromium the test is skipped with a message naming what is
// missing, unless JACKALOPE_TEST_BROWSER=required.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(browserEnv) == "required" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (set "+browserEnv+"=required to make this a failure)", args...)
	}
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		unavailable("real-browser test needs Chromium: no chromium, chromium-browser or google-chrome on PATH (Debian: apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root, in a container
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first call starts the browser, which lives as long as the
	// context of that call: it must have no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		unavailable("real-browser test: %s does not start: %v", path, err)
	}
	return ctx
}

// run runs browser actions with a timeout, failing the test on an error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	value(t, ctx, what, chromedp.Steps(actions...))
}

// value runs a browser action that returns a value, with a timeout, failing
// the test on an error.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(step, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// pageText returns the visible text of the page.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return value(t, ctx, "read the page", chromedp.Text(chromedp.CSS("body")))
}

// wantText fails the test unless the page's text has every one of want.
func wantText(t *testing.T, ctx context.Context, what string, want ...string) string {
	t.Helper()
	text := pageText(t, ctx)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Fatalf("%s: the page lacks %q; it reads:\n%s", what, w, text)
		}
	}
	return text
}

// screenshot saves the page as name.png in the -screenshots directory,
// when one is given.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join(*screenshots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("saved %s", path)
}
