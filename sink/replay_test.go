package sink

import (
	"context"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/mongotest"
)

// TestReplays: a sink process killed (SIGKILL) in the middle of a write,
// then another killed after its write returned but before it saved the
// offsets; the sink started next consumes the batch again and stores none
// of it twice. Then a gateway-style re-delivery (the same samples produced
// again at new offsets, after some new ones) is skipped by seq. Against
// the FerretDB stand-in.
func TestReplays(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 2, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Batch.MaxRecords = 10000
	cfg.Batch.MaxWait = 200 * time.Millisecond
	// Static membership: each process takes the killed one's place at
	// once instead of waiting for its session to time out.
	cfg.Kafka.InstanceID = "replay-test"
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	const devs = 4
	p.produce(t, stream([]string{"press"}, devs, 0, 200)...)
	work := t.TempDir()

	for _, crash := range []string{"mid-write", "after-write"} {
		before := d.count(topic)
		child := startChild(t, cfg, work, crash)
		child.Wait()
		if !killedBySIGKILL(child) {
			t.Fatalf("%s child: %v, want killed by SIGKILL during its write", crash, child.ProcessState)
		}
		after := d.count(topic)
		if after <= before {
			t.Fatalf("%s child stored nothing (%d documents before, %d after)", crash, before, after)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		saved, err := d.store.LoadOffsets(ctx, cfg.Kafka.Group, topic)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(saved) != 0 {
			t.Fatalf("%s child saved offsets %v, want none (it died before)", crash, saved)
		}
		t.Logf("%s: child killed with %d documents stored", crash, after)
	}
	stored := d.count(topic)
	if stored != devs*200 {
		t.Fatalf("%d documents after the after-write crash, want all %d", stored, devs*200)
	}

	r := startSink(t, cfg)
	ends := endOffsets(t, addr, topic)
	waitFor(t, "the replayed batch committed", func() bool { return allCommitted(committedOffsets(t, addr, cfg.Kafka.Group), ends) })
	if c := counter(t, r.s.reg, "factorywire_sink_duplicates_skipped_total", "rule=offset"); c != devs*200 {
		t.Errorf("duplicates_skipped_total{rule=offset} = %v, want %d: every replayed record was stored already", c, devs*200)
	}

	// A gateway that crashed produces again what it had produced: seq
	// 150-199 again, then new ones.
	p.produce(t, stream([]string{"press"}, devs, 200, 220)...)
	p.produce(t, stream([]string{"press"}, devs, 150, 250)...)
	waitFor(t, "the new samples stored", func() bool { return d.count(topic) >= devs*250 })
	ends = endOffsets(t, addr, topic)
	waitFor(t, "everything committed", func() bool { return allCommitted(committedOffsets(t, addr, cfg.Kafka.Group), ends) })
	r.close(t)
	checkExactlyOnce(t, d.seqs(t, topic), pressSeqs(devs, 250))
	if c := counter(t, r.s.reg, "factorywire_sink_duplicates_skipped_total", "rule=seq"); c != devs*70 {
		t.Errorf("duplicates_skipped_total{rule=seq} = %v, want %d (seq 150-219 delivered twice)", c, devs*70)
	}
}
