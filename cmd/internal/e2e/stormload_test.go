package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/slack"
)

// stormLoadVar switches on TestStormLoad, a load run rather than a test:
// it reports figures and asserts only that nothing is lost.
const stormLoadVar = "JACKALOPE_LOAD_STORM"

// TestStormLoad is issue 11's load run: 10,000 check-ins in 10 s into one
// channel that Slack paces at 1/s (burst 3), and ten quiet channels that
// each get an event every 2 s meanwhile (one every 200 ms among them, each
// channel well under its pace), through a split fleet of two dispatchers.
// It reports the storm channel's messages and 429s, how long until every
// event is counted in Slack, ingest's latency during the storm and the
// quiet channels' delivery latency. `make storm` runs it without
// the race detector; figures are in docs/benchmarks.md.
func TestStormLoad(t *testing.T) {
	if os.Getenv(stormLoadVar) == "" {
		t.Skipf("a load run of a few minutes; set %s=1 (or run make storm) to run it", stormLoadVar)
	}
	const (
		events   = 10000
		over     = 10 * time.Second
		senders  = 32
		quietGap = 200 * time.Millisecond
		quietN   = 10
	)
	f := startFleet(t, 2, nil)
	storm := f.fake.NewWebhook("#storm")
	f.fake.SetRateLimit(storm, 1, 3)
	stormURL, stormID := f.addChannel(t, storm, "#storm")
	type channel struct{ webhook, jamfURL, id string }
	quiet := make([]channel, quietN)
	for i := range quiet {
		c := &quiet[i]
		c.webhook = f.fake.NewWebhook(fmt.Sprintf("#quiet-%d", i))
		c.jamfURL, c.id = f.addChannel(t, c.webhook, fmt.Sprintf("#quiet-%d", i))
	}
	// Every channel is known to ingest before the clock starts.
	postEvent(t, stormURL, "application/json", checkInBody(t, "warmup-000"))
	waitEvents(t, f.fake, storm, 1, deliveryTimeout)
	for i, c := range quiet {
		name := fmt.Sprintf("warmup-%03d", i+1)
		postEvent(t, c.jamfURL, "application/json", eventBody(t, name))
		waitDelivered(t, f.fake, c.webhook, []string{name}, deliveryTimeout)
	}
	baseStorm := len(f.fake.Requests(storm))

	bodies := make([][]byte, events)
	for i := range bodies {
		bodies[i] = checkInBody(t, fmt.Sprintf("storm%05d-%03d", i/1000, i%1000))
	}

	// The storm: senders take bodies as a ticker releases them, 1,000/s.
	work := make(chan []byte, events)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		refused   int
	)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for body := range work {
				took, status := timedPost(t, stormURL, body)
				mu.Lock()
				latencies = append(latencies, took)
				if status != http.StatusNoContent {
					refused++
				}
				mu.Unlock()
			}
		})
	}
	// The quiet channels: one event every quietGap among them, round-robin,
	// while the storm lasts.
	quietPosted := map[string]time.Time{}
	quietIDs := make([][]string, quietN)
	stop := make(chan struct{})
	var quietDone sync.WaitGroup
	quietDone.Go(func() {
		tick := time.NewTicker(quietGap)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c := i % quietN
			name := fmt.Sprintf("quiet%d-%03d", c, i/quietN)
			mu.Lock()
			quietPosted[name] = time.Now()
			quietIDs[c] = append(quietIDs[c], name)
			mu.Unlock()
			postEvent(t, quiet[c].jamfURL, "application/json", eventBody(t, name))
		}
	})

	const step = 10 * time.Millisecond
	perStep := int(int64(events) * int64(step) / int64(over))
	tick := time.NewTicker(step)
	start := time.Now()
	for i := 0; i < events; i += perStep {
		for _, b := range bodies[i:min(i+perStep, events)] {
			work <- b
		}
		<-tick.C
	}
	tick.Stop()
	close(work)
	wg.Wait()
	end := time.Now()
	close(stop)
	quietDone.Wait()
	if refused > 0 {
		t.Fatalf("ingest refused %d of the storm's %d events", refused, events)
	}

	counted := waitEvents(t, f.fake, storm, events+1, 10*time.Minute)
	var quietLat []time.Duration
	for i, c := range quiet {
		waitDelivered(t, f.fake, c.webhook, quietIDs[i], deliveryTimeout)
		for _, r := range f.fake.Requests(c.webhook) {
			if r.Status != http.StatusOK {
				continue
			}
			for _, name := range idsPattern.FindAllString(string(r.Body), -1) {
				if at, ok := quietPosted[name]; ok {
					quietLat = append(quietLat, r.Time.Sub(at))
				}
			}
		}
	}
	stormReqs := f.fake.Requests(storm)[baseStorm:]
	posts, tooMany := 0, 0
	for _, r := range stormReqs {
		switch r.Status {
		case http.StatusOK:
			posts++
		case http.StatusTooManyRequests:
			tooMany++
		}
	}
	largest := 0
	for _, m := range f.fake.Messages(storm) {
		largest = max(largest, eventsIn([]slack.Message{m}))
	}
	t.Logf("storm: %d check-ins sent in %v by %d senders", events, end.Sub(start).Round(time.Millisecond), senders)
	t.Logf("storm channel: %d messages (largest digest %d events), %d answers 429; every event counted %v after the storm ended",
		posts, largest, tooMany, counted.Sub(end).Round(time.Millisecond))
	t.Logf("ingest during the storm: p50 %v, p99 %v, max %v",
		percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 100))
	t.Logf("%d quiet channels: %d events, delivery p50 %v, p99 %v, max %v",
		quietN, len(quietLat), percentile(quietLat, 50), percentile(quietLat, 99), percentile(quietLat, 100))
	f.checkNoDeadLetters(t, stormID)
	for _, c := range quiet {
		f.checkNoDeadLetters(t, c.id)
	}
}

// timedPost posts body once and returns how long ingest took to answer
// and its status.
func timedPost(t *testing.T, jamfURL string, body []byte) (time.Duration, int) {
	start := time.Now()
	resp, err := client.Post(jamfURL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Errorf("POST %s: %v", jamfURL, err)
		return time.Since(start), 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode
}

// percentile is the p-th percentile of ds (nearest rank), rounded for a
// report.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(0, (len(s)*p+99)/100-1)
	return s[i].Round(100 * time.Microsecond)
}
