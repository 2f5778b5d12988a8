package gateway

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/kafkatest"
)

// TestGatewayTargets runs the same forwarding against our broker, kfake
// and Apache Kafka: every sample polled arrives once, each device's seq in
// order without a gap, on its murmur2 partition, with its headers and
// timestamp (testPlant.delivered checks each record).
func TestGatewayTargets(t *testing.T) {
	ours := func(t *testing.T) string { return startBroker(t, t.TempDir(), "127.0.0.1:0").Addr().String() }
	kafkatest.ForEachTarget(t, ours, func(t *testing.T, addr string) {
		plant := newTestPlant(t, addr, 100*time.Millisecond, 3)
		createTopics(t, addr, plant.topics)
		g, stop := runGateway(t, plant.cfg)
		plant.delivered(t, addr, 60)
		stop()
		last, total := polled(g)
		got := plant.delivered(t, addr, total)
		if n := checkSeqs(t, got, plant.devices, last, false); n != 0 {
			t.Fatalf("%d samples delivered twice", n)
		}
		t.Logf("%d samples of %d devices delivered", total, len(plant.devices))
	})
}

// TestGatewayStalledProduce: the broker (kfake, through its request
// control) answers every produce with NOT_ENOUGH_REPLICAS, as Apache Kafka
// does while a partition has fewer in-sync replicas than its
// min.insync.replicas. The producer retries; meanwhile /readyz must say
// forwarding is stalled and the spool's backlog and age, read at scrape
// time, must keep growing. The gateway stopped while stalled returns; run
// again once the broker accepts, it delivers everything, each device's seq
// in order without a gap, and /readyz is ready.
func TestGatewayStalledProduce(t *testing.T) {
	c, refuse := refusingCluster(t)
	addr := c.ListenAddrs()[0]
	plant := newTestPlant(t, addr, 100*time.Millisecond, 2)
	plant.cfg.Kafka.StallTimeout = 300 * time.Millisecond
	createTopics(t, addr, plant.topics)
	g, stop := runGateway(t, plant.cfg)

	readyz := func() (int, string) { return get(t, "http://"+g.Addr().String()+"/readyz") }
	var why string
	waitFor(t, "/readyz to report the stall", 20*time.Second, func() bool {
		code, body := readyz()
		why = body
		return code == http.StatusServiceUnavailable && strings.Contains(body, "forwarding stalled") && strings.Contains(body, testFactory+".press")
	})
	t.Logf("/readyz while produce is refused: %s", strings.TrimSpace(why))
	age1, n1 := backlogOf(t, g, testFactory+".press")
	waitFor(t, "the backlog to grow while stalled", 20*time.Second, func() bool {
		age2, n2 := backlogOf(t, g, testFactory+".press")
		return n2 > n1 && age2 > age1
	})

	// Stopped while stalled, the gateway returns (runGateway's stop fails
	// the test after 30 s) and keeps the samples for the next run.
	stop()
	refuse.Store(false)
	g, stop = runGateway(t, plant.cfg)
	waitFor(t, "/readyz to be ready again", 30*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	stop()
	last, total := polled(g)
	got := plant.delivered(t, addr, total)
	checkSeqs(t, got, plant.devices, last, true)
}

// backlogOf scrapes the spool's age and sample gauges of topic.
func backlogOf(t *testing.T, g *Gateway, topic string) (age float64, samples float64) {
	t.Helper()
	metrics := scrape(t, g)
	read := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + `\{topic="` + regexp.QuoteMeta(topic) + `"\} (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics lacks %s for %s", name, topic)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return read("factorywire_gateway_spool_oldest_sample_age_seconds"), read("factorywire_gateway_spool_samples")
}

// refusingCluster is a one-broker kfake cluster that answers every produce
// with NOT_ENOUGH_REPLICAS (retriable: the producer keeps trying) while
// the returned flag is set, as it is at first; cleared, it accepts them.
func refusingCluster(t *testing.T) (*kfake.Cluster, *atomic.Bool) {
	t.Helper()
	refuse := new(atomic.Bool)
	refuse.Store(true)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID // Produce v13 names topics by id
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return c, refuse
}
