package bus

import (
	"net"
	"sync"
	"time"
)

const (
	// coalesceWindow is the least time between two writes of the publish
	// connection while it is busy. The NATS client writes what it has as
	// soon as its flusher runs, which under concurrent requests was one
	// write, and one read and one acknowledgement write in nats-server, for
	// about every 1.3 publishes (strace of cmd/ingest under wrk at c=64).
	// Held back this long, the publishes of that moment go out in one
	// write and their acknowledgements come back together
	// (docs/benchmarks.md).
	coalesceWindow = 300 * time.Microsecond
	// coalesceBusy is how many writes within a window make the connection
	// busy for the next. A quieter one writes at once: holding back a lone
	// publish, or the delivery state written just after an event was
	// stored, cost the all-in-one about a tenth more CPU per event at a
	// steady 500 a second and saved nothing.
	coalesceBusy = 4
	// coalesceMax is how much a coalescedConn holds before it writes at
	// once: the NATS client's own buffer size.
	coalesceMax = 32 << 10
	// coalesceWriteTimeout bounds one write, as the NATS client's flusher
	// timeout does for its own.
	coalesceWriteTimeout = 10 * time.Second
)

// coalescedConn is a connection whose writes, while it is busy, go out at
// most once per coalesceWindow, together. A write that fails closes the
// connection, which the NATS client sees as any broken connection (it
// reconnects; a publish whose acknowledgement does not come is sent
// again). It is safe for concurrent use.
type coalescedConn struct {
	net.Conn

	mu     sync.Mutex
	buf    []byte
	last   time.Time   // when the last write went out
	timer  *time.Timer // set while buf waits
	err    error       // the failed write: later ones fail with it
	period time.Time   // when the window whose writes count began
	count  int         // Write calls in that window
	busy   bool        // the window before had coalesceBusy of them
}

func newCoalescedConn(conn net.Conn) *coalescedConn { return &coalescedConn{Conn: conn} }

// Write writes p now when the connection is not busy, or the last write
// is at least coalesceWindow old; otherwise it adds p to what goes out at
// the end of the window.
func (c *coalescedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	now := time.Now()
	if since := now.Sub(c.period); since >= coalesceWindow {
		c.busy = c.count >= coalesceBusy && since < 2*coalesceWindow
		c.period, c.count = now, 0
	}
	c.count++
	c.buf = append(c.buf, p...)
	if len(c.buf) < coalesceMax {
		if c.timer != nil {
			return len(p), nil
		}
		if wait := coalesceWindow - now.Sub(c.last); c.busy && wait > 0 {
			c.timer = time.AfterFunc(wait, c.flush)
			return len(p), nil
		}
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what waits.
func (c *coalescedConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.flushLocked()
}

func (c *coalescedConn) flushLocked() error {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.err != nil || len(c.buf) == 0 {
		return c.err
	}
	c.last = time.Now()
	err := c.Conn.SetWriteDeadline(c.last.Add(coalesceWriteTimeout))
	if err == nil {
		_, err = c.Conn.Write(c.buf)
	}
	c.buf = c.buf[:0]
	if cap(c.buf) > 2*coalesceMax {
		c.buf = nil // a large message once does not stay held
	}
	if err != nil {
		c.err = err
		_ = c.Conn.Close()
	}
	return err
}

// SetWriteDeadline does nothing: the NATS client sets a deadline around
// each of its writes, which here may only fill the buffer; each real write
// sets its own (coalesceWriteTimeout).
func (c *coalescedConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline; see SetWriteDeadline.
func (c *coalescedConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// Close writes what waits, then closes the connection.
func (c *coalescedConn) Close() error {
	c.flush()
	return c.Conn.Close()
}

// coalescingDialer dials TCP connections that coalesce their writes.
type coalescingDialer struct{ net.Dialer }

func (d *coalescingDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := d.Dialer.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return newCoalescedConn(conn), nil
}

// coalescingServer gives in-process connections to an embedded server
// that coalesce their writes.
type coalescingServer struct {
	srv interface{ InProcessConn() (net.Conn, error) }
}

func (s coalescingServer) InProcessConn() (net.Conn, error) {
	conn, err := s.srv.InProcessConn()
	if err != nil {
		return nil, err
	}
	return newCoalescedConn(conn), nil
}
