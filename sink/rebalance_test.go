package sink

import (
	"fmt"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/mongotest"
)

// TestRebalance: a second member joins the group in the middle of a
// stream; partitions move to it (cooperative-sticky) after the first
// member finished and committed its batch, and every sample is stored
// exactly once. Runs against our broker, kfake and Apache Kafka.
func TestRebalance(t *testing.T) { forEachTarget(t, testRebalance) }

func testRebalance(t *testing.T, addr string) {
	press, meter := testFactory+".press", testFactory+".power-meter"
	createTopics(t, addr, map[string]int32{press: 4, meter: 2, press + ".dlq": 1, meter + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Batch.MaxRecords = 200
	p := newProducer(t, addr)
	classes := []string{"press", "power-meter"}
	const devs, n, step = 6, 300, 20

	produced := make(chan error, 1)
	second := make(chan struct{})
	go func() {
		defer close(produced)
		for from := uint64(0); from < n; from += step {
			if from == n/2 {
				<-second // the second member has joined: the rest of the stream goes to both
			}
			if err := p.cl.ProduceSync(t.Context(), stream(classes, devs, from, from+step)...).FirstErr(); err != nil {
				produced <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	a := startSink(t, cfg)
	waitFor(t, "the first member to commit", func() bool { return committedOffsets(t, addr, cfg.Kafka.Group)[press] != nil })
	b := startSink(t, cfg)
	waitFor(t, "the second member to be assigned partitions", func() bool {
		b.s.pipe.mu.Lock()
		defer b.s.pipe.mu.Unlock()
		return len(b.s.pipe.parts) > 0
	})
	close(second)
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	ends := endOffsets(t, addr, press, meter)
	waitFor(t, fmt.Sprintf("everything committed (end offsets %v)", ends), func() bool {
		c := committedOffsets(t, addr, cfg.Kafka.Group)
		if testing.Verbose() {
			t.Logf("committed %v", c)
		}
		return allCommitted(c, ends)
	})
	b.close(t)
	a.close(t)
	consumedA := counter(t, a.s.reg, "factorywire_sink_records_consumed_total")
	consumedB := counter(t, b.s.reg, "factorywire_sink_records_consumed_total")
	if consumedB == 0 {
		t.Fatalf("the second member consumed nothing (the first consumed %v)", consumedA)
	}
	t.Logf("records consumed: first member %v, second %v", consumedA, consumedB)
	d := openDB(t, cfg)
	want := map[string][2]uint64{}
	for _, class := range classes {
		for i := range devs {
			want[fmt.Sprintf("%s-%02d", class, i)] = [2]uint64{0, n}
		}
	}
	checkExactlyOnce(t, mergeSeqs(d.seqs(t, press), d.seqs(t, meter)), want)
}
