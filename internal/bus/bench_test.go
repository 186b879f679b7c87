package bus_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/benchcpu"
	"github.com/jackalope-app/jackalope/internal/bus"
	"github.com/jackalope-app/jackalope/internal/bus/bustest"
	"github.com/jackalope-app/jackalope/internal/jamf"
)

// benchBody is a ComputerCheckIn of realistic size (about 1 KB); %012d
// makes each body unique, so the dedup window stores every one.
const benchBody = `{"webhook":{"id":12,"name":"Slack - Computer Check-In","webhookEvent":"ComputerCheckIn","eventTimestamp":1732871702117},` +
	`"event":{"computer":{"alternateMacAddress":"3E:A6:F6:12:4B:7F","building":"HQ","department":"Engineering",` +
	`"deviceName":"MBP-JRIVERA-01","emailAddress":"jordan.rivera@example.com","ipAddress":"203.0.113.45","jssID":1322,` +
	`"macAddress":"3C:A6:F6:12:4B:7E","model":"MacBook Pro (14-inch, 2023)","osBuild":"23G93","osVersion":"14.6.1",` +
	`"phone":"555-0142","position":"Software Engineer","realName":"Jordan Rivera","reportedIpAddress":"192.168.10.23",` +
	`"room":"3A-101","serialNumber":"%012d","udid":"6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42","userDirectoryID":"-1",` +
	`"username":"jrivera","managementId":"8f5c2d9e-1b3a-4e7f-9a6c-2d4b8e0f1a37"},"trigger":"CLIENT_CHECKIN","username":"jrivera"}}`

// benchSeq numbers the bodies of a benchmark process. It is not reset
// between runs of a benchmark: a server that outlives one (the external
// one) would fold repeated bodies as duplicates, which cost less.
var benchSeq atomic.Int64

// BenchmarkPublish measures Publish against a real JetStream, 64
// publishes in flight on two cores as ingest has under load: "embedded"
// is the in-process server, "standalone" a server reached over loopback
// TCP in the same process, and "external" the server named by
// JACKALOPE_TEST_NATS_URL (skipped without it), whose CPU time and
// allocations are then not the benchmark's. Every publish is a stored
// message. cpu-ns/op is the process's CPU time (user and system) per
// publish, which varies much less than ns/op when other work shares the
// cores.
func BenchmarkPublish(b *testing.B) {
	const installation = "11111111-aaaa-4bbb-8ccc-000000000001"
	big := func(c *bus.Config) { c.MaxBytes = 4 << 30 }
	conns := []struct {
		name string
		conn func(b *testing.B) *bus.Conn
	}{
		{name: "embedded", conn: func(b *testing.B) *bus.Conn { return bustest.New(b, big) }},
		{name: "standalone", conn: func(b *testing.B) *bus.Conn { return bustest.Server(b).Connect(b, big) }},
		{name: "external", conn: func(b *testing.B) *bus.Conn { return bustest.External(b, big) }},
	}
	for _, cc := range conns {
		b.Run(cc.name, func(b *testing.B) {
			c := cc.conn(b)
			at := time.Now()
			b.ReportAllocs()
			defer benchcpu.Start(b)()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := jamf.Received{
						InstallationID: installation,
						Event:          "ComputerCheckIn",
						ReceivedAt:     at,
						Body:           fmt.Appendf(nil, benchBody, benchSeq.Add(1)),
					}
					if err := c.Publish(b.Context(), r); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
