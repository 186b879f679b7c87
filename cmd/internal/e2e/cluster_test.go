package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/slack/slacktest"
)

const (
	// envCluster switches the cluster test on: it takes minutes and three
	// nats-server processes (make cluster-test; CI sets it).
	envCluster = "JACKALOPE_TEST_CLUSTER"
	// clusterNodes is the size of the JetStream cluster, and the replicas
	// of every stream (STREAM_REPLICAS).
	clusterNodes = 3
	// clusterIngests and clusterDispatchers are the service replicas.
	clusterIngests     = 2
	clusterDispatchers = 3
	// clusterChannels are the channels the load is spread over.
	clusterChannels = 4
	// clusterRate is the load: unique events a second, spread over the
	// ingest replicas and the channels.
	clusterRate = 200
	// faultEvents is how many events are sent while a node is down: 20
	// seconds of load.
	faultEvents = 20 * clusterRate
	// warmEvents are sent before a fault, so that the fault hits a
	// cluster at work.
	warmEvents = 2 * clusterRate
	// clusterWorkers is DISPATCH_WORKERS of each dispatcher.
	clusterWorkers = 16
	// clusterAckWait is ACK_WAIT (its floor): an event whose
	// acknowledgement a dead node lost comes again after it.
	clusterAckWait = 5 * time.Second
	// catchUpTimeout bounds how long a restarted node may take to be a
	// current replica of every stream and consumer again.
	catchUpTimeout = 2 * time.Minute
	// clusterDeliveryTimeout bounds how long the accepted events may take
	// to reach Slack once the load has stopped: thousands of events under
	// -race on a shared machine, and redeliveries after clusterAckWait.
	clusterDeliveryTimeout = 3 * time.Minute
)

// TestCluster runs the split deployment against a real three-node
// JetStream cluster (nats-server processes clustered on loopback, each with
// its own store, deploy/nats/jackalope.conf's users) with STREAM_REPLICAS=3:
// the installer, two ingest replicas and three dispatchers, every service
// given all three URLs. Under a steady load of unique events it kills the
// node that leads JAMF_EVENTS with SIGKILL and brings it back, then rolls
// the three nodes one after another with SIGTERM. Every event ingest
// accepted (204) must reach Slack; repeats stay within the events in
// flight; ingest refuses only with 503 and Retry-After, and never during
// the rolling restart.
func TestCluster(t *testing.T) {
	if os.Getenv(envCluster) == "" {
		t.Skipf("set %s=1 (make cluster-test does; CI does) to run the split services on a 3-node JetStream cluster under load", envCluster)
	}
	start := time.Now()
	d := startClusterDeployment(t, clusterDispatchers, clusterChannels, nil)
	t.Logf("3-node cluster, installer, %d ingest and %d dispatchers ready after %v", clusterIngests, clusterDispatchers,
		time.Since(start).Round(time.Millisecond))

	t.Run("node loss", func(t *testing.T) {
		l := d.startLoad(t, "loss")
		l.waitSent(t, warmEvents)
		victim := d.nats.node(t, d.streamLeader(t, bus.StreamEvents))
		inFlight := d.watchAckPending(t)
		if err := victim.svc.stop(t, syscall.SIGKILL); !exitedBySignal(err, syscall.SIGKILL) {
			t.Errorf("%s ended with %v, want death by SIGKILL", victim.name, err)
		}
		killed := time.Now()
		newLeader := d.streamLeader(t, bus.StreamEvents)
		elected := time.Now()
		t.Logf("killed %s, the leader of %s, with SIGKILL; %s leads it %v later", victim.name, bus.StreamEvents,
			newLeader, elected.Sub(killed).Round(time.Millisecond))
		l.waitSent(t, warmEvents+faultEvents)
		d.nats.start(victim)
		restarted := time.Now()
		d.waitCaughtUp(t, victim)
		t.Logf("restarted %s %v after the kill; it caught up in %v", victim.name, restarted.Sub(killed).Round(time.Millisecond),
			time.Since(restarted).Round(time.Millisecond))
		r := l.stop(t)
		maxInFlight := inFlight()
		dups := d.checkDelivered(t, r)
		t.Logf("node loss: %d events sent at %d/s, %d accepted, 0 lost, %d repeated (at most %d were in flight), %d answered 503 over %v",
			r.sent, clusterRate, len(r.accepted), dups, maxInFlight, len(r.busy), r.busySpan().Round(time.Millisecond))
		if len(r.busy) > 0 {
			t.Logf("the 503s came from %v to %v after the kill; the new leader was seen %v after it",
				slices.MinFunc(r.busy, time.Time.Compare).Sub(killed).Round(time.Millisecond),
				slices.MaxFunc(r.busy, time.Time.Compare).Sub(killed).Round(time.Millisecond), elected.Sub(killed).Round(time.Millisecond))
		}
		if dups > maxInFlight {
			t.Errorf("%d events arrived more than once, more than the %d in flight at most", dups, maxInFlight)
		}
	})

	t.Run("rolling restart", func(t *testing.T) {
		l := d.startLoad(t, "roll")
		l.waitSent(t, warmEvents)
		for _, n := range d.nats.nodes {
			began := time.Now()
			if err := n.svc.stop(t, syscall.SIGTERM); err != nil {
				t.Errorf("%s stopped with %v after SIGTERM, want status 0", n.name, err)
			}
			d.nats.start(n)
			d.waitCaughtUp(t, n)
			t.Logf("restarted %s (SIGTERM) and it caught up in %v", n.name, time.Since(began).Round(time.Millisecond))
		}
		r := l.stop(t)
		dups := d.checkDelivered(t, r)
		t.Logf("rolling restart: %d events sent at %d/s, %d accepted, 0 lost, %d repeated, %d answered 503",
			r.sent, clusterRate, len(r.accepted), dups, len(r.busy))
		if len(r.busy) > 0 {
			t.Errorf("ingest answered 503 %d times over %v during the rolling restart, want never", len(r.busy), r.busySpan())
		}
	})

	for _, s := range slices.Concat(d.dispatchers, d.ingests, []*service{d.installer}) {
		if err := s.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("after SIGTERM %s exited with %v, want status 0", s.name, err)
		}
	}
	t.Logf("cluster test done in %v", time.Since(start).Round(time.Millisecond))
}

// natsNode is one server of a natsCluster.
type natsNode struct {
	name string // server_name, as stream info names the leader
	port int    // clients
	conf string // its configuration file
	svc  *service
}

// natsCluster is a JetStream cluster of nats-server processes on loopback.
type natsCluster struct {
	// t is the test that started the cluster: a node started again within
	// a subtest runs until that test ends, not the subtest.
	t     *testing.T
	bin   string
	keys  map[string]string // the users' public keys, the servers' environment
	nodes []*natsNode
	url   string // every node's URL, comma-separated: NATS_URL
}

// startNATSCluster starts n nats-servers clustered on loopback, each with
// free client and route ports, a store of its own and, with keys,
// deploy/nats/jackalope.conf's account and users. It returns once the
// cluster has a JetStream leader: the admin (seed) can read the account's
// JetStream information.
func startNATSCluster(t *testing.T, bin string, keys map[string]string, adminSeed string, n int) (*natsCluster, jetstream.JetStream) {
	t.Helper()
	c := &natsCluster{t: t, bin: bin, keys: keys}
	routePorts := make([]int, n)
	routes := make([]string, n)
	urls := make([]string, n)
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{name: "n" + strconv.Itoa(i+1), port: freePort(t)})
		routePorts[i] = freePort(t)
		routes[i] = strconv.Quote("nats-route://127.0.0.1:" + strconv.Itoa(routePorts[i]))
		urls[i] = "nats://127.0.0.1:" + strconv.Itoa(c.nodes[i].port)
	}
	c.url = strings.Join(urls, ",")
	for i, node := range c.nodes {
		cluster := fmt.Sprintf("server_name: %s\ncluster {\n  name: jackalope\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			node.name, routePorts[i], strings.Join(routes, ", "))
		node.conf = writeNATSConf(t, t.TempDir(), node.port, cluster, keys != nil)
		c.start(node)
	}
	js := clusterJetStream(t, c.url, adminSeed)
	poll(t, readyTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		for _, node := range c.nodes {
			if !node.svc.running() {
				t.Fatalf("%s exited (%v)", node.svc.name, node.svc.err)
			}
		}
		return err == nil, fmt.Sprintf("the cluster has no JetStream leader after %v (last: %v)", readyTimeout, err)
	})
	return c, js
}

// start starts node, or starts it again on the same store, until the
// test that started the cluster ends.
func (c *natsCluster) start(node *natsNode) {
	c.t.Helper()
	node.svc = startProcess(c.t, "nats-"+node.name, c.bin, c.keys, "-c", node.conf)
}

// node is the node called name.
func (c *natsCluster) node(t *testing.T, name string) *natsNode {
	t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %q in the cluster", name)
	return nil
}

// clusterSample is how often the test's own client tries a lost node again,
// and how often it samples the events in flight: a rate of observation,
// never a wait for something to happen.
const clusterSample = 50 * time.Millisecond

// clusterJetStream connects to the cluster at urls as the admin, following
// it through node losses for as long as the test runs.
func clusterJetStream(t *testing.T, urls, seed string) jetstream.JetStream {
	t.Helper()
	key, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(urls, key, nats.Name("jackalope-e2e"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(clusterSample))
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// clusterDeployment is the split deployment on a natsCluster.
type clusterDeployment struct {
	nats        *natsCluster
	js          jetstream.JetStream // the admin's
	fake        *slacktest.Server
	bins        map[string]string
	env         func(user string, extra map[string]string) map[string]string
	workers     int // DISPATCH_WORKERS of the dispatchers it starts
	installer   *service
	installEnv  map[string]string
	installBase string
	ingests     []*service
	dispatchers []*service
	// webhooks are the channels the load goes to and paths, for each, its
	// Jamf URL path (/jamf/<token>).
	webhooks []string
	paths    []string
	// ingestBases are the ingest replicas' base URLs.
	ingestBases []string
}

// startClusterDeployment starts the cluster, then the installer (SQLite),
// clusterIngests ingest replicas and n dispatchers on it, each signed in as
// its own user with every node's URL and STREAM_REPLICAS=3, and adds the
// channels. extra adds to every service's environment.
func startClusterDeployment(t *testing.T, dispatchers, channels int, extra map[string]string) *clusterDeployment {
	t.Helper()
	bins := binaries(t, "installer", "ingest", "dispatcher")
	seed, keys := natsUsers(t)
	natsBin := natsServerBinary(t)
	// docker-compose.yml's cluster nodes are configured as valid.
	confEnv := maps.Clone(keys)
	confEnv["NATS_SERVER_NAME"] = "nats-1"
	checkNATSConf(t, natsBin, "cluster.conf", confEnv)
	c, js := startNATSCluster(t, natsBin, keys, seed("admin"), clusterNodes)
	d := &clusterDeployment{nats: c, js: js, fake: slacktest.New(t), bins: bins, workers: clusterWorkers}

	common := map[string]string{
		"NATS_URL":            c.url,
		"STREAM_REPLICAS":     strconv.Itoa(clusterNodes),
		"SECRET_KEY":          randomKey(t),
		"SHUTDOWN_TIMEOUT":    shutdownTimeout.String(),
		"SLACK_WEBHOOK_HOSTS": fakeWebhookHosts,
		"ACK_WAIT":            clusterAckWait.String(),
		// Each event in a message of its own, so that each is seen to
		// arrive: no pace to speak of, no digests.
		"CHANNEL_PACE": "1000/s", "CHANNEL_BURST": "100", "DIGESTS": "off",
	}
	maps.Copy(common, extra)
	d.env = userEnv(common, seed)

	installerAddr, installerBase := loopback(t)
	installerOpsAddr, installerOps := loopback(t)
	d.installBase = installerBase
	d.installEnv = d.env("installer", map[string]string{
		"LISTEN_ADDR": installerAddr, "METRICS_ADDR": installerOpsAddr, "SERVER_NAME": installerBase,
		"DATA_DIR": t.TempDir(),
	})
	d.installer = startProcess(t, "installer", bins["installer"], d.installEnv)
	waitReady(t, d.installer, installerOps+"/readyz")

	var ready []func()
	for i := range clusterIngests {
		addr, base := loopback(t)
		opsAddr, ops := loopback(t)
		s := startProcess(t, "ingest-"+strconv.Itoa(i+1), bins["ingest"], d.env("ingest", map[string]string{"LISTEN_ADDR": addr, "METRICS_ADDR": opsAddr}))
		d.ingests = append(d.ingests, s)
		d.ingestBases = append(d.ingestBases, base)
		ready = append(ready, func() { waitReady(t, s, ops+"/readyz") })
	}
	for range dispatchers {
		ready = append(ready, d.startDispatcher(t))
	}
	for _, r := range ready {
		r()
	}
	d.addChannels(t, channels)
	return d
}

// startDispatcher starts one more dispatcher and returns a function that
// waits until it is ready.
func (d *clusterDeployment) startDispatcher(t *testing.T) (ready func()) {
	t.Helper()
	opsAddr, ops := loopback(t)
	s := startProcess(t, "dispatcher-"+strconv.Itoa(len(d.dispatchers)+1), d.bins["dispatcher"], d.env("dispatcher", map[string]string{
		"METRICS_ADDR": opsAddr, "SERVER_NAME": d.installBase, "DISPATCH_WORKERS": strconv.Itoa(d.workers),
	}))
	d.dispatchers = append(d.dispatchers, s)
	return func() { waitReady(t, s, ops+"/readyz") }
}

// addChannels adds n channels by hand, through the installer's command (a
// few at once), and waits until every ingest replica knows each.
func (d *clusterDeployment) addChannels(t *testing.T, n int) {
	t.Helper()
	webhooks := make([]string, n)
	paths := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		name := "#fleet-" + strconv.Itoa(i+1)
		webhooks[i] = d.fake.NewWebhook(name)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := commandOutput(t, d.bins["installer"], d.installEnv, "channels", "add", "--webhook-url", webhooks[i], "--channel", name)
			if err != nil {
				t.Errorf("channels add %s: %v\n%s", name, err, out)
				return
			}
			m := jamfURLPattern.FindString(out)
			u, err := url.Parse(m)
			if m == "" || err != nil {
				t.Errorf("no Jamf URL in channels add's output:\n%s", out)
				return
			}
			paths[i] = u.Path
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	d.webhooks = append(d.webhooks, webhooks...)
	d.paths = append(d.paths, paths...)
	// Every ingest replica knows every channel before the load starts.
	for i, base := range d.ingestBases {
		for j, p := range paths {
			postEvent(t, base+p, "application/json", eventBody(t, fmt.Sprintf("warm%d-%03d", i, j%1000)))
		}
	}
}

// streamLeader waits until stream has a leader and returns its name.
func (d *clusterDeployment) streamLeader(t *testing.T, stream string) string {
	t.Helper()
	var leader string
	poll(t, catchUpTimeout, func() (bool, string) {
		// A stream without a leader does not answer: a short bound looks
		// again soon.
		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		s, err := d.js.Stream(ctx, stream)
		if err != nil {
			return false, fmt.Sprintf("stream %s has no leader after %v (last: %v)", stream, catchUpTimeout, err)
		}
		if c := s.CachedInfo().Cluster; c != nil {
			leader = c.Leader
		}
		return leader != "", fmt.Sprintf("stream %s has no leader after %v", stream, catchUpTimeout)
	})
	return leader
}

// watchAckPending samples the dispatch consumer's unacknowledged events
// until the returned function is called, which returns the most seen: the
// events in flight, the most a fault can make arrive twice.
func (d *clusterDeployment) watchAckPending(t *testing.T) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	most := 0
	done := make(chan struct{})
	sample := func() {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := d.js.Consumer(ctx, bus.StreamEvents, bus.ConsumerDispatch)
		if err != nil {
			return // no leader just now
		}
		most = max(most, c.CachedInfo().NumAckPending)
	}
	sample()
	go func() {
		defer close(done)
		tick := time.NewTicker(clusterSample)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() int {
		cancel()
		<-done
		return most
	}
}

// waitCaughtUp waits until node is back in every replicated stream and
// durable consumer of the account, and every one has a leader and all its
// replicas current, none lagging.
func (d *clusterDeployment) waitCaughtUp(t *testing.T, node *natsNode) {
	t.Helper()
	poll(t, catchUpTimeout, func() (bool, string) {
		if !node.svc.running() {
			t.Fatalf("%s exited (%v)", node.svc.name, node.svc.err)
		}
		why := d.notCaughtUp(t.Context(), node.name)
		return why == "", fmt.Sprintf("%s did not catch up within %v: %s", node.name, catchUpTimeout, why)
	})
}

// notCaughtUp says why node is not yet a current replica of everything, or
// "" when it is.
func (d *clusterDeployment) notCaughtUp(ctx context.Context, node string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	names := d.js.StreamNames(ctx)
	var streams []string
	for name := range names.Name() {
		streams = append(streams, name)
	}
	if err := names.Err(); err != nil {
		return "stream names: " + err.Error()
	}
	for _, name := range streams {
		s, err := d.js.Stream(ctx, name)
		if err != nil {
			return name + ": " + err.Error()
		}
		info := s.CachedInfo()
		if info.Config.Replicas < 2 {
			continue
		}
		if why := replicasBehind(name, node, info.Config.Replicas, info.Cluster); why != "" {
			return why
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			if ci.Config.Durable == "" {
				continue // a KV watcher's ordered consumer: one replica
			}
			if why := replicasBehind(name+"/"+ci.Name, node, info.Config.Replicas, ci.Cluster); why != "" {
				return why
			}
		}
		if err := consumers.Err(); err != nil {
			return name + " consumers: " + err.Error()
		}
	}
	return ""
}

// replicasBehind says why the raft group of what, of want replicas, is not
// led with node among its current replicas, or "" when it is.
func replicasBehind(what, node string, want int, c *jetstream.ClusterInfo) string {
	if c == nil || c.Leader == "" {
		return what + " has no leader"
	}
	if len(c.Replicas) != want-1 {
		return fmt.Sprintf("%s has %d replicas besides its leader, want %d", what, len(c.Replicas), want-1)
	}
	member := c.Leader == node
	for _, p := range c.Replicas {
		if !p.Current || p.Offline || p.Lag > 0 {
			return fmt.Sprintf("%s: replica %s current %t, offline %t, lag %d", what, p.Name, p.Current, p.Offline, p.Lag)
		}
		member = member || p.Name == node
	}
	if !member {
		return what + " does not have " + node + " among its peers"
	}
	return ""
}

// load posts unique events at clusterRate, turn about to each ingest
// replica and channel, until stopped, and records every answer.
type load struct {
	body   func(id string) []byte
	cancel context.CancelFunc
	done   chan struct{}
	posts  sync.WaitGroup

	mu       sync.Mutex
	sent     int
	accepted []string    // ids answered 204
	busy     []time.Time // when a 503 with Retry-After came
	wrong    []string    // anything else
}

// loadResult is what a load saw.
type loadResult struct {
	sent     int
	accepted []string
	busy     []time.Time
}

// busySpan is the time from the first 503 to the last.
func (r loadResult) busySpan() time.Duration {
	if len(r.busy) == 0 {
		return 0
	}
	return slices.MaxFunc(r.busy, time.Time.Compare).Sub(slices.MinFunc(r.busy, time.Time.Compare))
}

// startLoad starts posting events named prefix<n>-<nnn> (the form
// countIDs finds).
func (d *clusterDeployment) startLoad(t *testing.T, prefix string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	sample := eventBody(t, "sample-000")
	l := &load{cancel: cancel, done: make(chan struct{}), body: func(id string) []byte {
		return bytes.Replace(sample, []byte(`"sample-000"`), []byte(strconv.Quote(id)), 1)
	}}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Second / clusterRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("%s%d-%03d", prefix, i/1000, i%1000)
			target := d.ingestBases[i%len(d.ingestBases)] + d.paths[(i/len(d.ingestBases))%len(d.paths)]
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			l.posts.Add(1)
			go func() {
				defer l.posts.Done()
				l.post(target, id)
			}()
		}
	}()
	return l
}

// post sends one event and records the answer.
func (l *load) post(target, id string) {
	resp, err := client.Post(target, "application/json", bytes.NewReader(l.body(id)))
	var why string
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		why = err.Error()
	case resp.StatusCode == http.StatusNoContent:
		l.accepted = append(l.accepted, id)
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		l.busy = append(l.busy, time.Now())
	default:
		answer, _ := io.ReadAll(resp.Body)
		why = fmt.Sprintf("%d %q (Retry-After %q)", resp.StatusCode, answer, resp.Header.Get("Retry-After"))
	}
	if resp != nil {
		resp.Body.Close()
	}
	if why != "" {
		l.wrong = append(l.wrong, id+": "+why)
	}
}

// waitSent waits until the load has sent n events.
func (l *load) waitSent(t *testing.T, n int) {
	t.Helper()
	poll(t, time.Duration(n)*time.Second/clusterRate+deliveryTimeout, func() (bool, string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.sent >= n, fmt.Sprintf("the load sent %d of %d events", l.sent, n)
	})
}

// stop stops the load, waits for the answers to every post and returns
// them, failing the test for any answer other than 204 or 503 with
// Retry-After.
func (l *load) stop(t *testing.T) loadResult {
	t.Helper()
	l.cancel()
	<-l.done
	l.posts.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.wrong) > 0 {
		t.Errorf("%d posts were answered neither 204 nor 503 with Retry-After: %v", len(l.wrong), head(l.wrong, 10))
	}
	return loadResult{sent: l.sent, accepted: slices.Clone(l.accepted), busy: slices.Clone(l.busy)}
}

// checkDelivered waits until every accepted event has reached Slack and
// the dispatchers have acknowledged everything (so that redeliveries have
// come), and returns how many messages were repeats. It fails the test
// for every accepted event lost.
func (d *clusterDeployment) checkDelivered(t *testing.T, r loadResult) int {
	t.Helper()
	byChannel := map[string][]string{}
	for _, id := range r.accepted {
		i := d.channelOf(t, id)
		byChannel[d.webhooks[i]] = append(byChannel[d.webhooks[i]], id)
	}
	poll(t, clusterDeliveryTimeout, func() (bool, string) {
		why := d.consumerBusy(t.Context())
		return why == "", fmt.Sprintf("the dispatchers still hold events after %v: %s", clusterDeliveryTimeout, why)
	})
	dups := 0
	for webhook, ids := range byChannel {
		got := waitDelivered(t, d.fake, webhook, ids, deliveryTimeout)
		dups += duplicates(got, ids)
	}
	return dups
}

// channelOf is the index of the channel the load sent id to.
func (d *clusterDeployment) channelOf(t *testing.T, id string) int {
	t.Helper()
	dash := strings.LastIndexByte(id, '-')
	thousands, err1 := strconv.Atoi(strings.TrimLeft(id[:dash], "abcdefghijklmnopqrstuvwxyz"))
	units, err2 := strconv.Atoi(id[dash+1:])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("event name %q: %v", id, err)
	}
	i := thousands*1000 + units
	return (i / len(d.ingestBases)) % len(d.paths)
}

// consumerBusy says what the dispatch consumer still has to do (events not
// yet handed out, or handed out and not acknowledged), or "" when nothing.
func (d *clusterDeployment) consumerBusy(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.js.Consumer(ctx, bus.StreamEvents, bus.ConsumerDispatch)
	if err != nil {
		return err.Error()
	}
	info := c.CachedInfo()
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Sprintf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
	}
	return ""
}
