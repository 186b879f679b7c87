package bustest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a NATS server that can drop or hold the
// messages the server delivers to the connections of one client name (a
// publisher's acknowledgements, say), to show what a client does when an
// acknowledgement is lost or late. Everything else passes unchanged.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener

	mu    sync.Mutex
	rules map[string]Rule // by client name
	conns map[*proxyConn]struct{}
	wg    sync.WaitGroup
}

// Rule says what Proxy does with the messages delivered to a client.
type Rule int

const (
	// Pass forwards messages; it is the rule of every client at first.
	Pass Rule = iota
	// Drop discards messages, as if they were lost on the way.
	Drop
	// Hold keeps messages back until the rule changes, then forwards them.
	Hold
)

// NewProxy listens on a loopback port and forwards each connection to
// target (host:port or nats://host:port). It stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	if u, ok := bytes.CutPrefix([]byte(target), []byte("nats://")); ok {
		target = string(u)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bustest: proxy listen: %v", err)
	}
	p := &Proxy{t: t, target: target, ln: ln, rules: map[string]Rule{}, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept(t.Context())
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's client URL.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// Set makes rule apply to the messages delivered to connections whose
// CONNECT named them name. Leaving Hold forwards what was held, in order.
func (p *Proxy) Set(name string, rule Rule) {
	p.mu.Lock()
	p.rules[name] = rule
	var release []*proxyConn
	if rule != Hold {
		// Only connections that held something have anything to send.
		for c := range p.conns {
			release = append(release, c)
		}
	}
	p.mu.Unlock()
	for _, c := range release {
		c.release()
	}
}

func (p *Proxy) rule(name string) Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rules[name]
}

func (p *Proxy) accept(ctx context.Context) {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		var d net.Dialer
		server, err := d.DialContext(ctx, "tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxyConn{p: p, client: client, server: server}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go c.fromClient()
		go c.fromServer()
	}
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	p              *Proxy
	client, server net.Conn

	mu   sync.Mutex // guards name, held and writes to client
	name string
	held [][]byte
}

// fromClient forwards what the client sends, noting the name its CONNECT
// gives.
func (c *proxyConn) fromClient() {
	defer c.p.wg.Done()
	defer func() { _ = c.server.Close() }()
	r := bufio.NewReader(c.client)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if rest, ok := bytes.CutPrefix(line, []byte("CONNECT ")); ok {
				var opts struct{ Name string }
				if json.Unmarshal(bytes.TrimSpace(rest), &opts) == nil {
					c.mu.Lock()
					c.name = opts.Name
					c.mu.Unlock()
				}
				if _, err := c.server.Write(line); err != nil {
					return
				}
				// After CONNECT only the payloads matter to the server.
				if _, err := r.WriteTo(c.server); err != nil {
					return
				}
				return
			}
			if _, err := c.server.Write(line); err != nil {
				return
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// fromServer forwards what the server sends, one protocol operation at a
// time, applying the client's rule to MSG and HMSG.
func (c *proxyConn) fromServer() {
	defer c.p.wg.Done()
	defer func() { _ = c.client.Close() }()
	r := bufio.NewReaderSize(c.server, 64<<10)
	for {
		op, err := readOp(r)
		if err != nil {
			return
		}
		if err := c.forward(op); err != nil {
			return
		}
	}
}

// forward applies the client's rule to op. The rule is read and held
// messages are kept or sent under c.mu, so that release never misses one
// and messages keep their order.
func (c *proxyConn) forward(op []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rule := Pass
	if bytes.HasPrefix(op, []byte("MSG ")) || bytes.HasPrefix(op, []byte("HMSG ")) {
		rule = c.p.rule(c.name)
	}
	switch rule {
	case Drop:
		return nil
	case Hold:
		c.held = append(c.held, op)
		return nil
	}
	if err := c.flushHeld(); err != nil {
		return err
	}
	_, err := c.client.Write(op)
	return err
}

// release forwards the held messages.
func (c *proxyConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushHeld() //nolint:errcheck // fromServer sees a broken client itself
}

// flushHeld writes the held messages; c.mu is held.
func (c *proxyConn) flushHeld() error {
	for i, op := range c.held {
		if _, err := c.client.Write(op); err != nil {
			c.held = c.held[i:]
			return err
		}
	}
	c.held = nil
	return nil
}

// readOp reads one operation of the server's protocol: a control line, or
// MSG/HMSG with its payload.
func readOp(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("MSG ")) && !bytes.HasPrefix(line, []byte("HMSG ")) {
		return line, nil
	}
	fields := bytes.Fields(line)
	size, err := strconv.Atoi(string(fields[len(fields)-1]))
	if err != nil {
		return nil, err
	}
	op := make([]byte, len(line)+size+2)
	copy(op, line)
	if _, err := io.ReadFull(r, op[len(line):]); err != nil {
		return nil, err
	}
	return op, nil
}
