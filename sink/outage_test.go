package sink

import (
	"fmt"
	"maps"
	"net/url"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/mongotest"
)

// TestMongoOutage stops the FerretDB stand-in in the middle of a stream
// and starts it again on the same address and data directory: the sink
// retries (counted), commits nothing meanwhile, and in the end every
// sample is stored exactly once.
func TestMongoOutage(t *testing.T) {
	o := startOutage(t, 2)
	addr, topic, cfg, p := o.addr, o.topic, o.cfg, o.p
	const devs, n = 6, 300
	r := startSink(t, cfg)
	p.produce(t, stream([]string{"press"}, devs, 0, 100)...)
	waitFor(t, "a first commit", func() bool { return committedOffsets(t, addr, cfg.Kafka.Group)[topic] != nil })

	o.stopMongo()
	p.produce(t, stream([]string{"press"}, devs, 100, 200)...)
	retries := func() float64 { return counter(t, r.s.reg, "factorywire_sink_transient_retries_total") }
	waitFor(t, "retries during the outage", func() bool { return retries() >= 3 })
	during := committedOffsets(t, addr, cfg.Kafka.Group)[topic]
	// Two more failed attempts, not a time window, before looking again.
	more := retries() + 2
	waitFor(t, "two more retries", func() bool { return retries() >= more })
	if after := committedOffsets(t, addr, cfg.Kafka.Group)[topic]; !maps.Equal(after, during) {
		t.Fatalf("offsets committed while MongoDB is down: %v, then %v", during, after)
	}
	t.Logf("outage: %v retries so far, committed %v", retries(), during)
	o.restartMongo()
	p.produce(t, stream([]string{"press"}, devs, 200, n)...)
	ends := endOffsets(t, addr, topic)
	waitFor(t, "everything committed after the outage", func() bool {
		return allCommitted(committedOffsets(t, addr, cfg.Kafka.Group), ends)
	})
	r.close(t)
	d := openDB(t, cfg)
	checkExactlyOnce(t, d.seqs(t, topic), pressSeqs(devs, n))
	t.Logf("retries by operation: load %v, ensure %v, write %v, dlq %v, save %v",
		counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opLoad),
		counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opEnsure),
		counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opWrite),
		counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opDLQ),
		counter(t, r.s.reg, "factorywire_sink_transient_retries_total", "op="+opSave))
}

// TestRebalanceDuringOutage: while MongoDB is down and the first member
// retries its batch, a second member joins. The first gives its batch up
// (rewinding its partitions) so that the rebalance completes, instead of
// blocking it until the group evicts it; once MongoDB is back, both write
// and every sample is stored exactly once.
func TestRebalanceDuringOutage(t *testing.T) {
	o := startOutage(t, 4)
	addr, topic, cfg, p := o.addr, o.topic, o.cfg, o.p
	const devs, n = 8, 150
	a := startSink(t, cfg)
	p.produce(t, stream([]string{"press"}, devs, 0, 50)...)
	waitFor(t, "a first commit", func() bool { return committedOffsets(t, addr, cfg.Kafka.Group)[topic] != nil })

	o.stopMongo()
	p.produce(t, stream([]string{"press"}, devs, 50, 100)...)
	retries := func(r *running) float64 { return counter(t, r.s.reg, "factorywire_sink_transient_retries_total") }
	waitFor(t, "the first member retrying", func() bool { return retries(a) >= 2 })
	b := startSink(t, cfg)
	waitFor(t, "the first member to give its batch up", func() bool {
		return counter(t, a.s.reg, "factorywire_sink_batches_abandoned_total") >= 1
	})
	waitFor(t, "partitions to move to the second member", func() bool {
		a.s.pipe.mu.Lock()
		defer a.s.pipe.mu.Unlock()
		return len(a.s.pipe.parts) < 4
	})
	o.restartMongo()
	p.produce(t, stream([]string{"press"}, devs, 100, n)...)
	ends := endOffsets(t, addr, topic)
	waitFor(t, "everything committed after the outage", func() bool {
		return allCommitted(committedOffsets(t, addr, cfg.Kafka.Group), ends)
	})
	b.close(t)
	a.close(t)
	if c := counter(t, b.s.reg, "factorywire_sink_records_consumed_total"); c == 0 {
		t.Fatal("the second member consumed nothing")
	}
	d := openDB(t, cfg)
	checkExactlyOnce(t, d.seqs(t, topic), pressSeqs(devs, n))
}

// outage is the set-up of the outage tests: a broker with the press topic
// of partitions partitions (and its dead-letter topic), the stand-in on a
// directory and address it can be stopped and started again on, a sink
// configuration for both, and a producer.
type outage struct {
	addr, topic string
	cfg         Config
	p           *producer
	dir, host   string
	stopMongo   func()
	t           *testing.T
}

func startOutage(t *testing.T, partitions int32) *outage {
	t.Helper()
	o := &outage{t: t, addr: startBroker(t), topic: testFactory + ".press", dir: t.TempDir()}
	createTopics(t, o.addr, map[string]int32{o.topic: partitions, o.topic + ".dlq": 1})
	var uri string
	uri, o.stopMongo = mongotest.StartAt(t, o.dir, "127.0.0.1:0")
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	o.host = u.Host
	o.cfg = testConfig(o.addr, uri)
	// A write cut by the outage may still be applied until its deadline:
	// the sink checks what it stored only after the deadline, so keep it
	// short here.
	o.cfg.Retry.AttemptTimeout = 2 * time.Second
	o.cfg.Batch.MaxRecords = 200
	o.p = newProducer(t, o.addr)
	return o
}

// restartMongo ends the outage: the stand-in again, on its address and data.
func (o *outage) restartMongo() { mongotest.StartAt(o.t, o.dir, o.host) }

// pressSeqs is what checkExactlyOnce expects of devs press devices that
// produced seqs 0 to n-1.
func pressSeqs(devs int, n uint64) map[string][2]uint64 {
	want := map[string][2]uint64{}
	for i := range devs {
		want[fmt.Sprintf("press-%02d", i)] = [2]uint64{0, n}
	}
	return want
}
