package bus

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConn exposes the raw connection to the tests of package bus_test,
// which publish malformed messages with it.
func (c *Conn) NATSConn() *nats.Conn { return c.nc }

// PublishConn exposes the connection publishes go through, so that tests
// can wait until it too has seen the server go.
func (c *Conn) PublishConn() *nats.Conn { return c.pub }

// JetStream exposes the JetStream context to the tests, which inspect
// streams and consumers with it.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Header names, for the tests.
const (
	HeaderInstallation = headerInstallation
	HeaderEvent        = headerEvent
	HeaderReceivedAt   = headerReceivedAt
	HeaderLastBody     = headerLastBody
)

// EventMsgID is eventMsgID, for the tests.
var EventMsgID = eventMsgID

// WatchStopped is closed once the watch keeping s current has stopped.
func WatchStopped(s *Installations) <-chan struct{} { return s.stopped }
