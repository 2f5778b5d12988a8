package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// statusGate is the sink's store with its device status writes held
// while the gate is closed.
type statusGate struct {
	store
	mu     sync.Mutex
	open   chan struct{} // closed: writes go through
	writes int           // UpdateStatus calls started
}

func (g *statusGate) UpdateStatus(ctx context.Context, updates []mongots.DeviceStatus) error {
	g.mu.Lock()
	g.writes++
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.store.UpdateStatus(ctx, updates)
}

func (g *statusGate) started() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.writes
}

// TestSummariesBesideThePipeline: the device status and rollups are
// written beside the samples, not in their way. While a status write is
// held, later samples are still written; the checkpoint in MongoDB and the
// offsets committed at the broker stay at the first sample folded into
// what is not written yet; once the write goes through they reach the
// end, and the status holds each device's newest sample.
func TestSummariesBesideThePipeline(t *testing.T) {
	addr := startBroker(t)
	topic := testFactory + ".press"
	createTopics(t, addr, map[string]int32{topic: 1, topic + ".dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.SummaryInterval = 0 // a write of the summaries after every batch, when none is in progress
	d := openDB(t, cfg)
	p := newProducer(t, addr)
	gate := &statusGate{open: make(chan struct{})}
	startSinkOn(t, cfg, func(st store) store {
		gate.store = st
		return gate
	})
	const devs = 3
	p.produce(t, stream([]string{"press"}, devs, 0, 5)...)
	waitFor(t, "a status write to start", func() bool { return gate.started() > 0 })
	// Held: the samples that come now are written all the same.
	p.produce(t, stream([]string{"press"}, devs, 5, 10)...)
	waitFor(t, "the later samples stored while the status write is held", func() bool { return d.count(topic) == devs*10 })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	saved, err := d.store.LoadOffsets(ctx, cfg.Kafka.Group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := saved[0]; ok && o > 0 {
		t.Fatalf("checkpoint at offset %d while the status of offset 0 on is not written, want at most 0", o)
	}
	if o, ok := committedOffsets(t, addr, cfg.Kafka.Group)[topic][0]; ok && o > 0 {
		t.Fatalf("offset %d committed while the status of offset 0 on is not written, want at most 0", o)
	}
	close(gate.open)
	ends := endOffsets(t, addr, topic)
	waitFor(t, "the checkpoint and the commit to reach the end", func() bool {
		saved, err := d.store.LoadOffsets(ctx, cfg.Kafka.Group, topic)
		return err == nil && saved[0] == ends[topic][0] && allCommitted(committedOffsets(t, addr, cfg.Kafka.Group), ends)
	})
	status, err := d.store.ReadStatus(ctx, topic, []string{"press-00", "press-01", "press-02"})
	if err != nil {
		t.Fatal(err)
	}
	for dev := range devs {
		if st := status[fmt.Sprintf("press-%02d", dev)]; st.Sample.Seq != 9 {
			t.Errorf("status of press-%02d at seq %d, want 9", dev, st.Sample.Seq)
		}
	}
}

// rollupStore is a store on the stand-in, in a database of its own named
// after name, and its client.
func rollupStore(t *testing.T, name string) (*mongots.Store, *mongo.Client, string) {
	t.Helper()
	opts := mongots.DefaultOptions()
	opts.TimeSeries, opts.Database = false, mongotest.DatabaseName(name)
	client := mongotest.Connect(t, mongotest.Start(t), nil)
	return mongots.New(client, opts), client, opts.Database
}

// rollupPipeline is a pipeline writing its summaries to st every
// interval (0: after every batch), with the 4 partitions of testFactory's
// press topic assigned, ends their end offsets.
func rollupPipeline(t *testing.T, st store, interval time.Duration, ends map[int32]int64) *pipeline {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Factories = []string{testFactory}
	cfg.SummaryInterval = interval
	p := newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), st)
	assignAll(t, p, ends)
	return p
}

// deviceSample is press-00's sample seq, at base + seq seconds.
func deviceSample(base time.Time, seq int) devices.Sample {
	s := testSample("press", "press-00", uint64(seq))
	s.Time = base.Add(time.Duration(seq) * time.Second)
	return s
}

// deviceRun is the records of press-00's samples from to to-1
// (deviceSample) on partition 0, offset = seq.
func deviceRun(base time.Time, from, to int) []*kgo.Record {
	var recs []*kgo.Record
	for seq := from; seq < to; seq++ {
		r := sampleRecord(deviceSample(base, seq))
		r.Partition, r.Offset = 0, int64(seq)
		recs = append(recs, r)
	}
	return recs
}

// TestSummariesConflictRewinds: a rollup another writer changed since
// the sink read it (a member evicted from the group, still finishing its
// work) makes the summaries write, beside the pipeline, conflict; when it
// lands, the partition's rollups are forgotten and the partition is to be
// consumed again from the first sample folded into what was not written.
func TestSummariesConflictRewinds(t *testing.T) {
	st, client, dbName := rollupStore(t, "conflict")
	p := rollupPipeline(t, st, 0, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
	// One device on partition 0, a sample a second within one minute.
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Hour).UTC()
	batch := func(from, to int) []*kgo.Record { return deviceRun(base, from, to) }
	ctx := context.Background()
	if _, err := p.process(ctx, batch(0, 5)); err != nil {
		t.Fatal(err)
	}
	if err := p.landSummaries(true); err != nil {
		t.Fatal(err)
	}
	if rw := p.takeRewinds(); len(rw) != 0 {
		t.Fatalf("rewinds %v after a write without conflict", rw)
	}
	// Another writer changes the device's minute rollup.
	coll := client.Database(dbName).Collection(mongots.RollupCollection(testFactory+".press", mongots.PeriodMinute))
	if res, err := coll.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$inc", Value: bson.D{{Key: "rev", Value: 1}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("change the rollup: %v, %v", res, err)
	}
	res, err := p.process(ctx, batch(5, 8))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.next[testFactory+".press"][0].Offset; got != 5 {
		t.Errorf("checkpoint after the second batch %d, want 5 (held at its first sample)", got)
	}
	if err := p.landSummaries(true); err != nil {
		t.Fatal(err)
	}
	rw := p.takeRewinds()
	if o, ok := rw[testFactory+".press"][0]; !ok || o.Offset != 5 {
		t.Fatalf("rewinds %v, want partition 0 from offset 5", rw)
	}
	// Consumed again from there, the samples are folded into the rollup
	// as the other writer left it, and written over it.
	if _, err := p.process(ctx, batch(5, 8)); err != nil {
		t.Fatal(err)
	}
	stopPipeline(t, p)
	if rw := p.takeRewinds(); len(rw) != 0 {
		t.Fatalf("rewinds %v after the partition was consumed again", rw)
	}
	got, err := st.LoadRollups(ctx, testFactory+".press", mongots.PeriodMinute, []mongots.RollupKey{{Device: "press-00", Start: base}})
	if err != nil {
		t.Fatal(err)
	}
	if r := got[mongots.RollupKey{Device: "press-00", Start: base}]; r == nil || r.Count != 8 || r.LastSeq != 7 {
		t.Fatalf("minute rollup %+v, want 8 samples up to seq 7", r)
	}
}

// TestRollupsPastCheckpointRead: a sink killed after its summaries write
// landed, before its checkpoint passed the hold, leaves rollups stored
// for records past the checkpoint, in several bins of a device. The next
// owner consumes those records again and reads every rollup they fold
// into, so that it folds each sample once, with no conflict: before, it
// read only the device's first bin, took the later ones for new,
// inserted them, met duplicate keys, consumed the partition again from
// its hold, and did the same again for ever.
func TestRollupsPastCheckpointRead(t *testing.T) {
	st, _, _ := rollupStore(t, "pastcheckpoint")
	topic := testFactory + ".press"
	// One device on partition 0, a sample a second from a whole hour on.
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Hour).UTC()
	batch := func(from, to int) []*kgo.Record { return deviceRun(base, from, to) }
	ctx := context.Background()
	newPipe := func() *pipeline { return rollupPipeline(t, st, 0, map[int32]int64{0: 150, 1: 0, 2: 0, 3: 0}) }
	// The first sink folds 2.5 minutes into three minute rollups and
	// writes them, then dies: its checkpoint stays held at offset 0.
	first := newPipe()
	if _, err := first.process(ctx, batch(0, 150)); err != nil {
		t.Fatal(err)
	}
	if err := first.landSummaries(true); err != nil {
		t.Fatal(err)
	}
	saved, err := st.LoadOffsets(ctx, DefaultConfig().Kafka.Group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := saved[0]; ok && o > 0 {
		t.Fatalf("checkpoint at %d after the first sink, want at most 0 (held)", o)
	}
	// The next owner consumes from the checkpoint, a minute a batch, and
	// goes on past where the first one stopped.
	next := newPipe()
	for from := 0; from < 240; from += 60 {
		if _, err := next.process(ctx, batch(from, from+60)); err != nil {
			t.Fatal(err)
		}
		if err := next.landSummaries(true); err != nil {
			t.Fatal(err)
		}
		if rw := next.takeRewinds(); len(rw) != 0 {
			t.Fatalf("batch from offset %d: rewinds %v, want none (no other writer)", from, rw)
		}
	}
	stopPipeline(t, next)
	var keys []mongots.RollupKey
	for m := range 4 {
		keys = append(keys, mongots.RollupKey{Device: "press-00", Start: base.Add(time.Duration(m) * time.Minute)})
	}
	got, err := st.LoadRollups(ctx, topic, mongots.PeriodMinute, keys)
	if err != nil {
		t.Fatal(err)
	}
	for m, k := range keys {
		if r := got[k]; r == nil || r.Count != 60 || r.LastSeq != uint64(m*60+59) {
			t.Errorf("minute %d rollup %+v, want 60 samples up to seq %d", m, r, m*60+59)
		}
	}
	hour, err := st.LoadRollups(ctx, topic, mongots.PeriodHour, []mongots.RollupKey{{Device: "press-00", Start: base}})
	if err != nil {
		t.Fatal(err)
	}
	if r := hour[mongots.RollupKey{Device: "press-00", Start: base}]; r == nil || r.Count != 240 {
		t.Errorf("hour rollup %+v, want 240 samples", r)
	}
}

// TestConflictReadsLaterBins: a stale writer (a member evicted from the
// group, finishing its batch) writes bins later than the one the sink
// holds, of records past the floor the sink took the partition at. The
// sink takes them for new, and the summaries write, which spans several
// batches, conflicts on inserting them. Consumed again from the hold, the
// records read every rollup they fold into, not only the first batch's,
// so that the second write has no conflict (before, the second batch took
// its bin for new again, and the partition went round for ever), and the
// stale writer's samples are kept.
func TestConflictReadsLaterBins(t *testing.T) {
	st, client, dbName := rollupStore(t, "laterbins")
	// Summaries written when the test says (startSummaries), after the
	// first batch's.
	p := rollupPipeline(t, st, time.Hour, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
	var logged bytes.Buffer
	p.log = slog.New(slog.NewTextHandler(&logged, nil))
	topic := testFactory + ".press"
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Hour).UTC()
	ctx := context.Background()
	write := func(what string) map[string]map[int32]kgo.EpochOffset {
		t.Helper()
		p.startSummaries(ctx)
		if err := p.landSummaries(true); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return p.takeRewinds()
	}
	process := func(from, to int) {
		t.Helper()
		if _, err := p.process(ctx, deviceRun(base, from, to)); err != nil {
			t.Fatal(err)
		}
	}
	process(0, 60)
	if rw := write("minute 0"); len(rw) != 0 {
		t.Fatalf("rewinds %v after minute 0, want none", rw)
	}
	// The stale writer's rollups of minutes 1 and 2: 10 samples of each.
	var stale []*mongots.Rollup
	for _, from := range []int{60, 120} {
		first := deviceSample(base, from)
		r := mongots.NewRollup(topic, mongots.PeriodMinute, &first)
		for seq := from; seq < from+10; seq++ {
			s := deviceSample(base, seq)
			r.Fold(&s)
		}
		stale = append(stale, r)
	}
	if conflicts, err := st.SaveRollups(ctx, topic, mongots.PeriodMinute, stale); err != nil || len(conflicts) > 0 {
		t.Fatalf("stale writer: %v, %v", conflicts, err)
	}
	process(60, 90)
	process(90, 150)
	rw := write("minutes 1 and 2")
	if o, ok := rw[topic][0]; !ok || o.Offset != 60 {
		t.Fatalf("rewinds %v, want partition 0 from offset 60", rw)
	}
	// The warning says which rollups conflicted.
	first := fmt.Sprintf(`first="%s press-00@%s"`, mongots.RollupCollection(topic, mongots.PeriodMinute), base.Add(time.Minute).Format(time.RFC3339))
	if !strings.Contains(logged.String(), first) || !strings.Contains(logged.String(), "rollups=2 ") {
		t.Errorf("conflict logged as %q, want rollups=2 and %s", logged.String(), first)
	}
	process(60, 90)
	process(90, 150)
	if rw := write("minutes 1 and 2 again"); len(rw) != 0 {
		t.Fatalf("rewinds %v after the partition was consumed again, want none", rw)
	}
	stopPipeline(t, p)
	want := map[string]int64{}
	for m, n := range []int64{60, 60, 30} {
		want[fmt.Sprintf("press-00@%s", base.Add(time.Duration(m)*time.Minute).Format(time.RFC3339))] = n
	}
	got := map[string]int64{}
	cur, err := client.Database(dbName).Collection(mongots.RollupCollection(topic, mongots.PeriodMinute)).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for cur.Next(ctx) {
		got[cur.Current.Lookup("_id").StringValue()] = cur.Current.Lookup("n").AsInt64()
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("minute rollups' samples %v, want %v", got, want)
	}
}

// failingStatus is a store whose status writes fail with a transient
// error until healed.
type failingStatus struct {
	store
	healed chan struct{}
}

func (f *failingStatus) UpdateStatus(ctx context.Context, updates []mongots.DeviceStatus) error {
	select {
	case <-f.healed:
		return f.store.UpdateStatus(ctx, updates)
	default:
		return transientError{errors.New("status write refused (test)")}
	}
}

// TestSummariesGiveUpForRebalance: a rebalance callback waits for the
// summaries write in progress; one that keeps failing gives up rather
// than hold the rebalance, and its entries are written by the next write,
// the checkpoint held until then.
func TestSummariesGiveUpForRebalance(t *testing.T) {
	uri := mongotest.Start(t)
	opts := mongots.DefaultOptions()
	opts.TimeSeries, opts.Database = false, mongotest.DatabaseName("giveup")
	st := mongots.New(mongotest.Connect(t, uri, nil), opts)
	cfg := DefaultConfig()
	cfg.Factories = []string{testFactory}
	cfg.SummaryInterval = 0
	cfg.Retry = RetryConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, AttemptTimeout: 10 * time.Second}
	failing := &failingStatus{store: st, healed: make(chan struct{})}
	p := newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), failing)
	recs := benchBatch(0, 4, 2)
	assignAll(t, p, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
	res, err := p.process(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if o := res.next[testFactory+".press"][0].Offset; o != 0 {
		t.Fatalf("checkpoint of partition 0 at %d while its status is not written, want 0", o)
	}
	done := make(chan struct{})
	go func() {
		p.awaitSummaries() // as onRevoked does
		close(done)
	}()
	waitClosed(t, "the rebalance callback to end", done)
	if err := p.landSummaries(true); err != nil {
		t.Fatal(err)
	}
	if next, err := p.finish(context.Background(), false); err != nil || len(next) != 0 {
		t.Fatalf("finish while the status is not written: offsets %v, %v; want none saved", next, err)
	}
	close(failing.healed)
	stopPipeline(t, p)
	got, err := st.ReadStatus(context.Background(), testFactory+".press", []string{"press-000", "press-003"})
	if err != nil || got["press-000"].Sample.Seq != 1 || got["press-003"].Sample.Seq != 1 {
		t.Fatalf("status after the write given up and the next: %+v, %v; want each device at seq 1", got, err)
	}
	saved, err := st.LoadOffsets(context.Background(), cfg.Kafka.Group, testFactory+".press")
	if err != nil || saved[0] != 2 {
		t.Fatalf("checkpoint %v, %v; want partition 0 at 2 once the status is written", saved, err)
	}
}

// TestHeldCheckpointNotSavedAgain: while a partition's hold keeps its
// checkpoint back, the batches after the one that saved it save nothing
// (the same offset again), and once the summaries are written the
// checkpoint moves on.
func TestHeldCheckpointNotSavedAgain(t *testing.T) {
	var m mongotest.Monitor
	p := startupPipeline(t, mongotest.Start(t), mongotest.DatabaseName("held"), &m)
	p.cfg.SummaryInterval = time.Hour
	p.lastFlush = time.Now() // the first write of the summaries is an hour away
	assignAll(t, p, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
	saves := func() int {
		n := 0
		for _, c := range m.Commands("update") {
			if coll, _ := c.Lookup("update").StringValueOK(); coll == mongots.OffsetsCollection &&
				c.Lookup("updates").Array().Index(0).Document().Lookup("u", "$set", "offset").Type != 0 {
				n++
			}
		}
		return n
	}
	for i := range 3 {
		res, err := p.process(context.Background(), benchBatch(i, 4, 2))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && len(res.next) != 0 {
			t.Errorf("batch %d: offsets %v to commit, want none (held at the first batch's)", i, res.next)
		}
	}
	if n := saves(); n != 1 {
		t.Errorf("%d saves of the offsets over three batches held at the first one's, want 1", n)
	}
	next, err := p.finish(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if o := next[testFactory+".press"][0].Offset; o != 6 {
		t.Fatalf("offset after the summaries were written %d, want 6", o)
	}
}

// TestBatchGate: a summaries write's pause goes on at once when no
// batch's samples are being written, waits for the batch that is being
// written to end, waits no longer in all than its budget (a second pause
// then goes on while the batch still writes), and ends with its context.
func TestBatchGate(t *testing.T) {
	var g batchGate
	ctx := context.Background()
	if err := g.giveWay(time.Hour)(ctx); err != nil {
		t.Fatalf("no batch: %v", err)
	}

	g.hold()
	pause := g.giveWay(time.Hour)
	returned := make(chan error, 1)
	go func() { returned <- pause(ctx) }()
	select {
	case err := <-returned:
		t.Fatalf("the pause returned (%v) while a batch was being written", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not return when the batch ended")
	}

	g.hold()
	defer g.release()
	pause = g.giveWay(20 * time.Millisecond)
	for i := range 2 {
		go func() { returned <- pause(ctx) }()
		select {
		case err := <-returned:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("pause %d of a 20 ms budget still waits after 10 s", i+1)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	pause = g.giveWay(time.Hour)
	go func() { returned <- pause(cctx) }()
	cancel()
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("pause under a canceled context: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not end with its context")
	}
}
