package gateway

import (
	"net"
	"net/http"
	"strings"
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

// TestGatewayReadyzProduceFailing: our broker is up and answers metadata,
// but the gateway's topics do not exist and the broker does not create
// them. Every produce fails; /readyz must answer 503 naming the topic and
// the error once that lasted kafka.stall_timeout, and 200 again once the
// topics exist and the spool is forwarded.
func TestGatewayReadyzProduceFailing(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0") // auto_create_topics off by default
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	plant.cfg.Kafka.StallTimeout = 300 * time.Millisecond
	g, stop := runGateway(t, plant.cfg)
	defer stop()
	readyz := func() (int, string) { return get(t, "http://"+g.Addr().String()+"/readyz") }
	var why string
	waitFor(t, "/readyz to report the failing produces", 30*time.Second, func() bool {
		code, body := readyz()
		why = body
		return code == http.StatusServiceUnavailable && strings.Contains(body, testFactory+".press") && strings.Contains(body, "UNKNOWN_TOPIC_OR_PARTITION")
	})
	t.Logf("/readyz with the topics missing: %s", strings.TrimSpace(why))

	createTopics(t, addr, plant.topics)
	waitFor(t, "/readyz to be ready once the topics exist", 60*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	stop()
	last, total := polled(g)
	checkSeqs(t, plant.delivered(t, addr, total), plant.devices, last, true)
}
