package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/benchcpu"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/dispatch"
	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/plainjs"
	"github.com/jackalope-app/jackalope/internal/registry"
	"github.com/jackalope-app/jackalope/internal/render"
	"github.com/jackalope-app/jackalope/internal/slack"
	"github.com/jackalope-app/jackalope/internal/testwait"
)

// benchChannels is how many channels the benchmark spreads events over.
const benchChannels = 1000

// BenchmarkDelivery measures events delivered per second to the fake
// Slack across 1,000 channels, at the same number of posts in flight:
//
//   - dispatch: events waiting in JetStream (embedded, file storage),
//     taken by the dispatcher as cmd/dispatcher runs it — decode, read
//     model, claim the channel's turn in the shared state, open the sealed
//     URL, render, post, ack. Channels are paced at 1000/s with a burst of
//     100 and no digests, so that every event is one post, as in bare;
//   - consume: the same events taken from the same consumer with the
//     jetstream package, parsed, rendered, posted and acked by plain
//     goroutines (plainjs.Deliver): plain JetStream, what any dispatcher
//     that JetStream feeds must do at the least;
//   - bare: the same rendered messages posted to the same webhooks by
//     plain goroutines with the same Slack client: the ceiling that the
//     fake and the HTTP stack allow.
//
// The fake answers at once, so this measures what delivery costs beyond
// the post itself. Each iteration is one event; events are published (or
// rendered) before the timer starts. Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench 'BenchmarkDelivery$' -benchtime 20000x ./internal/dispatch
func BenchmarkDelivery(b *testing.B) { benchmarkDelivery(b, 0) }

// BenchmarkDeliverySlowSlack is BenchmarkDelivery with the fake taking
// 20 ms to answer each post, as a real Slack (slower still) does.
func BenchmarkDeliverySlowSlack(b *testing.B) { benchmarkDelivery(b, 20*time.Millisecond) }

func benchmarkDelivery(b *testing.B, latency time.Duration) {
	s := newSystem(b, nil)
	s.slack.SetLatency(latency)
	type channel struct {
		entry registry.Entry
		url   string
	}
	fast := registry.DeliverySettings{Interval: time.Millisecond, Burst: 100, Digests: registry.DigestsOff}
	channels := make([]channel, benchChannels)
	for i := range channels {
		channels[i].entry, channels[i].url = s.addChannel(fmt.Sprintf("bench-%d", i), fast)
	}
	for _, inFlight := range []int{8, 64} {
		name := fmt.Sprintf("inflight=%d", inFlight)
		b.Run("dispatch/"+name, func(b *testing.B) {
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i], _ = numberedComputerAdded()
			}
			publishAll(b, s.conn, bodies, func(i int) string { return channels[i%benchChannels].entry.ID })
			d, err := dispatch.New(benchOptions(s, inFlight))
			if err != nil {
				b.Fatal(err)
			}
			target := s.slack.Total() + b.N
			b.ResetTimer()
			start, reportCPU := time.Now(), benchcpu.Start(b)
			stop := runDispatcher(s, d)
			s.slack.WaitTotal(b, target, 5*time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			reportCPU()
			if err := stop(); err != nil {
				b.Fatalf("run: %v", err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
		b.Run("consume/"+name, func(b *testing.B) {
			urls := make(map[string]string, benchChannels)
			for _, c := range channels {
				urls[c.entry.ID] = c.url
			}
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i], _ = numberedComputerAdded()
			}
			publishAll(b, s.conn, bodies, func(i int) string { return channels[i%benchChannels].entry.ID })
			target := s.slack.Total() + b.N
			b.ResetTimer()
			start, reportCPU := time.Now(), benchcpu.Start(b)
			stop := consumeLoop(b, s, urls, inFlight)
			s.slack.WaitTotal(b, target, 5*time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			reportCPU()
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
		b.Run("bare/"+name, func(b *testing.B) {
			client := slack.New(slack.Config{Webhooks: slack.NewWebhookPolicy("127.0.0.1"), Timeout: 10 * time.Second, HTTPClient: slack.PostingClient(inFlight)})
			type post struct {
				url string
				msg slack.Message
			}
			posts := make([]post, b.N)
			for i := range posts {
				body, _ := numberedComputerAdded()
				env, err := jamf.Parse(body)
				if err != nil {
					b.Fatal(err)
				}
				posts[i] = post{channels[i%benchChannels].url, render.Message(env, render.Options{IconBaseURL: iconBase, JamfURL: "https://jamf.example.com"})}
			}
			work := make(chan post, inFlight)
			var wg sync.WaitGroup
			b.ResetTimer()
			start, reportCPU := time.Now(), benchcpu.Start(b)
			for range inFlight {
				wg.Go(func() {
					for p := range work {
						if err := client.Post(context.Background(), p.url, p.msg); err != nil {
							b.Errorf("post: %v", err)
						}
					}
				})
			}
			for _, p := range posts {
				work <- p
			}
			close(work)
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			reportCPU()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

// consumeLoop runs plainjs.Deliver, what any dispatcher that JetStream
// feeds must do at the least, on the consumer "dispatch" of JAMF_EVENTS:
// it posts each event to its channel's webhook (urls, by installation ID)
// with the same Slack client and posts in flight as the dispatcher, until
// stop is called.
func consumeLoop(b *testing.B, s *system, urls map[string]string, inFlight int) (stop func()) {
	b.Helper()
	nc, err := nats.Connect(s.nats.URL())
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := js.Consumer(context.Background(), bus.StreamEvents, bus.ConsumerDispatch)
	if err != nil {
		b.Fatal(err)
	}
	client := slack.New(slack.Config{Webhooks: slack.NewWebhookPolicy("127.0.0.1"), Timeout: 10 * time.Second, HTTPClient: slack.PostingClient(inFlight)})
	post := func(ctx context.Context, subject string, m slack.Message) error {
		return client.Post(ctx, urls[subject[strings.LastIndexByte(subject, '.')+1:]], m)
	}
	stopDeliver, err := plainjs.Deliver(cons, inFlight, render.Options{IconBaseURL: iconBase}, post, func(err error) { b.Error(err) })
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		stopDeliver()
		nc.Close()
	}
}

// benchOptions configures a Dispatcher as cmd/dispatcher does, logging
// nothing.
func benchOptions(s *system, inFlight int) dispatch.Options {
	return dispatch.Options{
		Installations: s.model,
		Poster:        slack.New(slack.Config{Webhooks: slack.NewWebhookPolicy("127.0.0.1"), Timeout: 10 * time.Second, HTTPClient: slack.PostingClient(inFlight)}),
		DeadLetters:   s.conn,
		Reporter:      s.conn,
		Opener:        s.keys,
		States:        s.conn,
		MaxInFlight:   inFlight,
		IconBaseURL:   iconBase,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// publishAll publishes bodies, body i to installation idOf(i), from a few
// goroutines at once.
func publishAll(b *testing.B, conn *bus.Conn, bodies [][]byte, idOf func(int) string) {
	b.Helper()
	const publishers = 8
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := p; i < len(bodies); i += publishers {
				ev := jamf.Received{InstallationID: idOf(i), Event: "ComputerAdded", ReceivedAt: time.Now(), Body: bodies[i]}
				if err := conn.Publish(context.Background(), ev); err != nil {
					b.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkDeliverySlack200ms measures how long one dispatcher with the
// default settings (pace, burst, digests, posts in flight) takes to
// deliver a burst when Slack takes 200 ms to answer each post and never
// rate limits: 2,000 events to 50 channels, and 1 event each to 1,000
// channels. s/run is from the dispatcher's start to the moment the
// backlog is empty (every event acknowledged: posted alone or in a
// digest); posts/run is what the fake received. Run it once:
//
//	go test -run '^$' -bench 'BenchmarkDeliverySlack200ms' -benchtime 1x ./internal/dispatch
func BenchmarkDeliverySlack200ms(b *testing.B) {
	for _, tt := range []struct {
		name              string
		channels, perChan int
	}{
		{"events=2000/channels=50", 50, 40},
		{"events=1000/channels=1000", 1000, 1},
	} {
		b.Run(tt.name, func(b *testing.B) {
			s := newSystem(b, nil)
			s.slack.SetLatency(200 * time.Millisecond)
			ids := make([]string, tt.channels)
			for i := range ids {
				e, _ := s.addChannel(fmt.Sprintf("slow-%d", i), registry.DeliverySettings{})
				ids[i] = e.ID
			}
			var total time.Duration
			posts := 0
			for range b.N {
				b.StopTimer()
				n := tt.channels * tt.perChan
				bodies := make([][]byte, n)
				for i := range bodies {
					bodies[i], _ = numberedComputerAdded()
				}
				publishAll(b, s.conn, bodies, func(i int) string { return ids[i%tt.channels] })
				d, err := dispatch.New(benchOptions(s, 0))
				if err != nil {
					b.Fatal(err)
				}
				before := s.slack.Total()
				b.StartTimer()
				start := time.Now()
				stop := runDispatcher(s, d)
				waitBacklogEmpty(b, s.conn, 2*time.Minute)
				total += time.Since(start)
				b.StopTimer()
				posts += s.slack.Total() - before
				if err := stop(); err != nil {
					b.Fatalf("run: %v", err)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
			b.ReportMetric(float64(posts)/float64(b.N), "posts/run")
		})
	}
}

// runDispatcher runs d on s's bus, as cmd/dispatcher does, until the
// returned stop is called; stop returns Run's error.
func runDispatcher(s *system, d *dispatch.Dispatcher) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, 5*time.Second, func(ctx context.Context, take dispatch.Take) error {
			return s.conn.Consume(ctx, 256, func(ctx context.Context, dv *bus.Delivery) error { return take(ctx, dv) })
		})
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// waitBacklogEmpty waits until JAMF_EVENTS holds nothing: every event was
// acknowledged (the stream keeps an event only while it is not).
func waitBacklogEmpty(b *testing.B, conn *bus.Conn, timeout time.Duration) {
	b.Helper()
	testwait.Until(b, timeout, func() error {
		st, err := conn.Backlog(context.Background())
		if err != nil {
			b.Fatalf("backlog: %v", err)
		}
		if st.Msgs != 0 {
			return fmt.Errorf("the backlog still holds %d events", st.Msgs)
		}
		return nil
	})
}
