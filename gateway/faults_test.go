package gateway

import (
	"net"
	"testing"
	"time"
)

// unusedAddr is a loopback address nobody listens on: a port just released.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestGatewayBacklogGaugesWhileUnreachable: with no broker at the
// configured address (nobody ever listened there, or our broker stopped
// after taking samples), polling goes on into the spool, and the spool's
// sample and age gauges, read at scrape time, keep growing between two
// scrapes.
func TestGatewayBacklogGaugesWhileUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start returns the broker address and, for a broker that
		// runs at first, a stop called once samples were delivered.
		start func(t *testing.T) (addr string, stop func() error)
	}{
		{"nobody listens", func(t *testing.T) (string, func() error) { return unusedAddr(t), nil }},
		{"broker stopped", func(t *testing.T) (string, func() error) {
			b := startBroker(t, t.TempDir(), "127.0.0.1:0")
			return b.Addr().String(), b.Close
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, stopBroker := tc.start(t)
			plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
			if stopBroker != nil {
				createTopics(t, addr, plant.topics)
			}
			g, stop := runGateway(t, plant.cfg)
			defer stop()
			if stopBroker != nil {
				plant.delivered(t, addr, 6)
				if err := stopBroker(); err != nil {
					t.Fatal(err)
				}
			}
			topic := testFactory + ".press"
			waitFor(t, "samples spooled", 20*time.Second, func() bool { return g.spool.backlog(true) >= 3 })
			age1, n1 := backlogOf(t, g, topic)
			waitFor(t, "the backlog gauges to grow while the broker is unreachable", 20*time.Second, func() bool {
				age2, n2 := backlogOf(t, g, topic)
				return n2 > n1 && age2 > age1
			})
		})
	}
}
