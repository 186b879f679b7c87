package bus

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recordingConn records what is written to it; Write fails with failWith.
type recordingConn struct {
	net.Conn // nil: only the methods below are used

	mu       sync.Mutex
	writes   []string
	closed   bool
	failWith error
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failWith != nil {
		return 0, r.failWith
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func (r *recordingConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordingConn) written() []string {
	synctest.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

func TestCoalescedConnWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recordingConn{}
		c := newCoalescedConn(r)
		write := func(s string) {
			t.Helper()
			if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		check := func(what string, want []string) {
			t.Helper()
			if diff := cmp.Diff(want, r.written()); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", what, diff)
			}
		}

		write("a")
		write("b")
		write("c")
		write("d")
		check("a quiet connection writes at once", []string{"a", "b", "c", "d"})

		time.Sleep(coalesceWindow)
		write("e")
		check("four writes in a window make it busy; its first write goes out at once", []string{"a", "b", "c", "d", "e"})
		write("f")
		write("g")
		time.Sleep(coalesceWindow / 2)
		write("h")
		check("writes within the busy window wait", []string{"a", "b", "c", "d", "e"})
		time.Sleep(coalesceWindow / 2)
		check("at the window's end they go out in one write", []string{"a", "b", "c", "d", "e", "fgh"})

		write("i")
		check("still busy: the next write waits for the next window", []string{"a", "b", "c", "d", "e", "fgh"})
		big := strings.Repeat("x", coalesceMax)
		write(big)
		check("a full buffer goes out at once", []string{"a", "b", "c", "d", "e", "fgh", "i" + big})

		time.Sleep(10 * coalesceWindow)
		write("k")
		write("l")
		write("m")
		write("n")
		check("after a quiet spell, writes go out at once again", []string{"a", "b", "c", "d", "e", "fgh", "i" + big, "k", "l", "m", "n"})

		time.Sleep(coalesceWindow)
		write("o")
		write("p")
		check("busy again: p waits", []string{"a", "b", "c", "d", "e", "fgh", "i" + big, "k", "l", "m", "n", "o"})
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		check("Close writes what waits", []string{"a", "b", "c", "d", "e", "fgh", "i" + big, "k", "l", "m", "n", "o", "p"})
	})
}

func TestCoalescedConnWriteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		broken := errors.New("connection reset")
		r := &recordingConn{}
		c := newCoalescedConn(r)
		for _, w := range []string{"a", "b", "c", "d"} {
			if _, err := c.Write([]byte(w)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(coalesceWindow)
		if _, err := c.Write([]byte("e")); err != nil { // busy: the window's first write
			t.Fatal(err)
		}
		r.mu.Lock()
		r.failWith = broken
		r.mu.Unlock()
		if _, err := c.Write([]byte("f")); err != nil {
			t.Fatalf("a write that waits cannot fail yet: %v", err)
		}
		time.Sleep(coalesceWindow)
		synctest.Wait()
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if !closed {
			t.Error("a failed write should close the connection, for the NATS client to see it broken")
		}
		if _, err := c.Write([]byte("g")); !errors.Is(err, broken) {
			t.Errorf("Write after a failed one = %v, want %v", err, broken)
		}
	})
}
