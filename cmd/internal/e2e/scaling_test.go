package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/bus"
)

const (
	// envMeasure switches the capacity run on (make cluster-bench): it is
	// a measurement, minutes long, not a check.
	envMeasure = "JACKALOPE_MEASURE_CLUSTER"
	// envMeasureWorkers measures one DISPATCH_WORKERS setting instead of
	// scaleWorkers.
	envMeasureWorkers = "JACKALOPE_MEASURE_WORKERS"
	// scaleEvents are preloaded before each round, over scaleChannels
	// channels, while no dispatcher runs.
	scaleEvents   = 20_000
	scaleChannels = 1_000
	// scaleLatency is how long the fake Slack takes to answer each post.
	scaleLatency = 50 * time.Millisecond
	// scaleRounds is how many times each dispatcher count is measured.
	scaleRounds = 3
	// scalePosters are the posts under way at once while preloading.
	scalePosters = 32
	// drainTimeout bounds one round's drain.
	drainTimeout = 10 * time.Minute
	// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's
	// CPU times.
	clockTicks = 100
)

// scaleCounts are the dispatcher process counts measured, and
// scaleWorkers the DISPATCH_WORKERS of each: deploy/kubernetes's 16, where
// each dispatcher is bound by its posts under way (16 per 50 ms), and the
// default 256, where the machine's cores bind first.
var (
	scaleCounts  = []int{1, 2, 4}
	scaleWorkers = []int{16, 256}
)

// TestDispatcherScaling measures the deployment of TestCluster for
// docs/capacity.md: each round preloads 20,000 events over 1,000 channels
// through both ingest replicas with no dispatcher running, then starts 1, 2
// or 4 dispatcher processes (DISPATCH_WORKERS 16, then 256) against a
// Slack that answers in 50 ms and
// times the drain (between 10% and 90% of the events delivered, so that
// start-up does not count). It reads the CPU time (/proc) ingest, the
// dispatchers and the three NATS nodes spent per event. The figures are
// logged, never asserted (the machine is shared and noisy); what it checks
// is that every accepted event was delivered in every round.
func TestDispatcherScaling(t *testing.T) {
	if os.Getenv(envMeasure) == "" {
		t.Skipf("set %s=1 (make cluster-bench) to measure the drain rate with 1, 2 and 4 dispatchers on the 3-node cluster", envMeasure)
	}
	if raceEnabled {
		t.Skip("a measurement: run it without -race (make cluster-bench)")
	}
	d := startClusterDeployment(t, 0, scaleChannels, map[string]string{
		// Each event in a post of its own: the dispatcher's work per event,
		// not the digests' saving, is measured.
		"CHANNEL_PACE": "100/s", "CHANNEL_BURST": "100", "DIGESTS": "off",
		// The default: a dispatcher renews the events it holds every third
		// of it, which the cluster test's short ACK_WAIT would make cost
		// more than the deliveries while thousands wait for a worker.
		"ACK_WAIT": "30s",
	})
	d.fake.SetLatency(scaleLatency)
	// The warm-up events addChannels posted go first.
	d.drain(t, 1, 0)
	var ingestRate, ingestCPU, natsLoadCPU []float64
	workerCounts := scaleWorkers
	if only := os.Getenv(envMeasureWorkers); only != "" {
		n, err := strconv.Atoi(only)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of workers", envMeasureWorkers, only)
		}
		workerCounts = []int{n}
	}
	for _, workers := range workerCounts {
		d.workers = workers
		type figures struct{ rate, dispatchCPU, natsDrainCPU float64 }
		results := map[int][]figures{}
		for round := range scaleRounds {
			for _, n := range scaleCounts {
				natsBefore := d.natsCPU(t)
				ingestBefore := d.ingestCPU(t)
				began := time.Now()
				d.preload(t, fmt.Sprintf("w%dr%dn%d", workers, round, n))
				loadSecs := time.Since(began).Seconds()
				ingestSecs := d.ingestCPU(t) - ingestBefore
				natsLoadSecs := d.natsCPU(t) - natsBefore
				if len(ingestRate) == 0 {
					d.logStoredSize(t)
				}
				ingestRate = append(ingestRate, scaleEvents/loadSecs)
				ingestCPU = append(ingestCPU, scaleEvents/ingestSecs)
				natsLoadCPU = append(natsLoadCPU, natsLoadSecs/scaleEvents*1e6)

				natsBefore = d.natsCPU(t)
				rate, dispatchSecs := d.drain(t, n, scaleEvents)
				natsDrainSecs := d.natsCPU(t) - natsBefore
				f := figures{rate: rate, dispatchCPU: scaleEvents / dispatchSecs, natsDrainCPU: natsDrainSecs / scaleEvents * 1e6}
				results[n] = append(results[n], f)
				t.Logf("DISPATCH_WORKERS=%d, round %d, %d dispatcher(s): preload %.0f events/s (ingest %.0f events per CPU-second, NATS %.0f µs CPU per event); "+
					"drain %.0f events/s (dispatchers %.0f events per CPU-second, NATS %.0f µs CPU per event); load average %s",
					workers, round+1, n, scaleEvents/loadSecs, scaleEvents/ingestSecs, natsLoadSecs/scaleEvents*1e6,
					f.rate, f.dispatchCPU, f.natsDrainCPU, loadAverage())
			}
		}
		for _, n := range scaleCounts {
			var rate, cpu, nats []float64
			for _, f := range results[n] {
				rate, cpu, nats = append(rate, f.rate), append(cpu, f.dispatchCPU), append(nats, f.natsDrainCPU)
			}
			t.Logf("DISPATCH_WORKERS=%d, %d dispatcher(s): drain %s events/s; %s events per dispatcher CPU-second; NATS %s µs CPU per event delivered",
				workers, n, spread(rate), spread(cpu), spread(nats))
		}
	}
	t.Logf("ingest (2 replicas, %d posts at once): %s events/s; %s events per ingest CPU-second; NATS %s µs CPU per event stored (3 replicas)",
		scalePosters, spread(ingestRate), spread(ingestCPU), spread(natsLoadCPU))
}

// preload posts scaleEvents unique events, turn about to each ingest
// replica and channel, scalePosters at once, and fails the test unless
// every one is accepted.
func (d *clusterDeployment) preload(t *testing.T, prefix string) {
	t.Helper()
	sample := eventBody(t, "sample-000")
	var next atomic.Int64
	var wg sync.WaitGroup
	for range scalePosters {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= scaleEvents || t.Context().Err() != nil {
					return
				}
				id := fmt.Sprintf("%s%d-%03d", prefix, i/1000, i%1000)
				target := d.ingestBases[i%len(d.ingestBases)] + d.paths[(i/len(d.ingestBases))%len(d.paths)]
				body := bytes.Replace(sample, []byte(`"sample-000"`), []byte(strconv.Quote(id)), 1)
				resp, err := client.Post(target, "application/json", bytes.NewReader(body))
				if err != nil {
					t.Errorf("POST %s: %v", target, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("POST %s = %d, want 204", target, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// drain starts n dispatchers on a backlog of events (of which it expects
// at least want to reach Slack), waits until the backlog is empty and
// every one delivered, stops them, and returns the delivery rate between
// 10% and 90% of want, and the dispatchers' CPU seconds.
func (d *clusterDeployment) drain(t *testing.T, n, want int) (rate, cpuSecs float64) {
	t.Helper()
	base := d.fake.Total()
	var ready []func()
	for range n {
		ready = append(ready, d.startDispatcher(t))
	}
	started := d.dispatchers[len(d.dispatchers)-n:]
	for _, r := range ready {
		r()
	}
	var t10, t90 time.Time
	poll(t, drainTimeout, func() (bool, string) {
		got := d.fake.Total() - base
		now := time.Now()
		if t10.IsZero() && got*10 >= want {
			t10 = now
		}
		if t90.IsZero() && got*10 >= want*9 {
			t90 = now
		}
		if got < want {
			return false, fmt.Sprintf("%d of %d events delivered after %v", got, want, drainTimeout)
		}
		why := d.consumerBusy(t.Context())
		return why == "", fmt.Sprintf("the backlog is not empty after %v: %s", drainTimeout, why)
	})
	for _, s := range started {
		cpuSecs += processCPU(t, s)
		if err := s.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("after SIGTERM %s exited with %v, want status 0", s.name, err)
		}
	}
	if want == 0 || !t90.After(t10) {
		return 0, cpuSecs
	}
	return float64(want) * 0.8 / t90.Sub(t10).Seconds(), cpuSecs
}

// logStoredSize logs how many bytes JAMF_EVENTS holds per event: what
// sizes the backlog (STREAM_MAX_BYTES).
func (d *clusterDeployment) logStoredSize(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := d.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream %s: %v", bus.StreamEvents, err)
	}
	st := s.CachedInfo().State
	if st.Msgs > 0 {
		t.Logf("%s holds %d events in %d bytes: %d bytes per event of a %d-byte body", bus.StreamEvents, st.Msgs, st.Bytes,
			st.Bytes/st.Msgs, len(eventBody(t, "sample-000")))
	}
}

// natsCPU is the CPU seconds the cluster's running nodes have used.
func (d *clusterDeployment) natsCPU(t *testing.T) float64 {
	t.Helper()
	var sum float64
	for _, n := range d.nats.nodes {
		sum += processCPU(t, n.svc)
	}
	return sum
}

// ingestCPU is the CPU seconds the ingest replicas have used.
func (d *clusterDeployment) ingestCPU(t *testing.T) float64 {
	t.Helper()
	var sum float64
	for _, s := range d.ingests {
		sum += processCPU(t, s)
	}
	return sum
}

// processCPU is the user and system CPU seconds process s has used, from
// /proc/<pid>/stat.
func processCPU(t *testing.T, s *service) float64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/stat")
	if err != nil {
		t.Fatalf("CPU time of %s: %v", s.name, err)
	}
	// The fields after the command name, which is in parentheses: utime
	// and stime are the 14th and 15th of the line, the 12th and 13th here.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(fields) < 13 {
		t.Fatalf("CPU time of %s: short /proc stat %q", s.name, raw)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("CPU time of %s: %q", s.name, raw)
	}
	return (utime + stime) / clockTicks
}

// loadAverage is the machine's 1, 5 and 15 minute load averages.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

// spread is the median of xs and their range: "412 (398–430)".
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return fmt.Sprintf("%.0f (%.0f–%.0f)", s[len(s)/2], s[0], s[len(s)-1])
}
