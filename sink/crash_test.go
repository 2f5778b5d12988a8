package sink

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// crashSample is a small sample: the stand-in scans whole collections to
// answer the sink's queries, so small documents keep the test quick.
func crashSample(class, device string, seq uint64) *kgo.Record {
	return sampleRecord(devices.Sample{
		Factory: testFactory, Class: class, Device: device,
		Time: t0.Add(time.Duration(seq) * time.Second), Seq: seq,
		Fields: map[string]devices.Value{"pressure": devices.Float64Value(float64(seq) / 4)},
	})
}

// TestCrashLoop runs the sink as a child process and kills it with SIGKILL
// at random moments, 12 times, while a stream of 25 200 records (24 000
// samples of 10 devices on 5 partitions, and gateway-style re-deliveries
// of 1 200 of them) is produced, a chunk per child; a child started after
// each kill takes over (static membership, so at once). In the end every
// (device, seq) is stored exactly once, and folded once into the
// rollups. Each kill comes within 1.5 s of the child's first write, so
// that it leaves records written past the checkpoint, which the next
// child consumes again. Against the FerretDB stand-in, which answers the
// sink's queries by scanning whole collections, hence small topics and
// documents.
func TestCrashLoop(t *testing.T) {
	const (
		classes   = 5
		perClass  = 2 // devices per topic, on its one partition
		kills     = 12
		chunk     = 200           // samples per device per chunk, one chunk per kill
		seqs      = kills * chunk // samples per device
		redeliver = 10            // after each chunk, the chunk's last samples again
		// killWithin is the span, in ms from its first write, in which a
		// child is killed: shorter than a child takes to work through the
		// records the kills before left (thousands, consumed again).
		killWithin = 1500
	)
	addr := startBroker(t)
	topicSet := map[string]int32{}
	var names []string
	for c := range classes {
		topic := fmt.Sprintf("%s.c%d", testFactory, c)
		topicSet[topic], topicSet[topic+".dlq"] = 1, 1
		names = append(names, topic)
	}
	createTopics(t, addr, topicSet)
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.Kafka.InstanceID = "crash-test"
	cfg.Batch.MaxRecords = 500
	d := openDB(t, cfg)
	p := newProducer(t, addr)

	// chunkRecords is the stream's chunk i: seqs i*chunk to (i+1)*chunk-1
	// of every device, then the last redeliver of them again, as a
	// gateway that crashed produces again what it had produced.
	chunkRecords := func(i int) []*kgo.Record {
		var recs []*kgo.Record
		from := uint64(i * chunk)
		add := func(seq uint64) {
			for c := range classes {
				for dev := range perClass {
					recs = append(recs, crashSample(fmt.Sprintf("c%d", c), fmt.Sprintf("c%d-dev-%d", c, dev), seq))
				}
			}
		}
		for seq := from; seq < from+chunk; seq++ {
			add(seq)
		}
		for seq := from + chunk - redeliver; seq < from+chunk; seq++ {
			add(seq)
		}
		return recs
	}
	committed := func() int64 {
		var sum int64
		for _, parts := range committedOffsets(t, addr, cfg.Kafka.Group) {
			for _, o := range parts {
				sum += o
			}
		}
		return sum
	}
	work := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	replays := 0
	for i := range kills {
		before, stored := committed(), d.total(names...)
		// A chunk of the stream arrives while the child starts, so that
		// the child has a backlog of several batches to work through.
		produced := make(chan error, 1)
		go func() { produced <- p.cl.ProduceSync(t.Context(), chunkRecords(i)...).FirstErr() }()
		child := startChild(t, cfg, work, "")
		// Once it has stored samples, kill it at a random moment of its
		// work: writing samples or summaries, saving or committing, or
		// after it is done. Timed from its first write rather than its
		// first commit, which can come only once the chunk is done (the
		// summaries write holds the checkpoint), so that most kills leave
		// records written past the checkpoint, to be consumed again.
		waitFor(t, fmt.Sprintf("child %d to store samples", i+1), func() bool { return d.total(names...) > stored })
		time.Sleep(time.Duration(rng.IntN(killWithin)) * time.Millisecond)
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		if !killedBySIGKILL(child) {
			t.Fatalf("child %d exited before the kill: %v", i+1, child.ProcessState)
		}
		if err := <-produced; err != nil {
			t.Fatalf("produce: %v", err)
		}
		ahead := writtenPastCheckpoint(t, d, cfg.Kafka.Group, names)
		if ahead > 0 {
			replays++
		}
		t.Logf("kill %d: %d records committed before the child started, %d after the kill; %d records written past MongoDB's checkpoint",
			i+1, before, committed(), ahead)
	}
	t.Logf("%d of %d kills left records written but not checkpointed, consumed again by the next child", replays, kills)
	if replays == 0 {
		t.Errorf("no kill left records written past the checkpoint: the test no longer exercises a sink consuming again what a killed one wrote (killWithin too long?)")
	}
	child := startChild(t, cfg, work, "")
	ends := endOffsets(t, addr, names...)
	// The last child consumes again everything past the checkpoint (up
	// to 18,500 records), checking each record consumed again against
	// MongoDB: about 20 s alone, longer in a run of the whole suite on 2
	// cores. Its progress is logged every 30 s, so that a stall (the
	// committed offsets not moving) shows as one.
	lastLog := time.Now()
	waitWithin(t, "the last child to commit everything", 3*waitLimit, func() bool {
		c := committedOffsets(t, addr, cfg.Kafka.Group)
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			t.Logf("the last child: committed %v of %v; %d records written past MongoDB's checkpoint",
				c, ends, writtenPastCheckpoint(t, d, cfg.Kafka.Group, names))
		}
		return allCommitted(c, ends)
	})
	child.terminate(t)
	var all []map[string][]uint64
	want := map[string][2]uint64{}
	for c, topic := range names {
		all = append(all, d.seqs(t, topic))
		for dev := range perClass {
			want[fmt.Sprintf("c%d-dev-%d", c, dev)] = [2]uint64{0, seqs}
		}
	}
	checkExactlyOnce(t, mergeSeqs(all...), want)

	// The rollups folded every sample exactly once too: per device, the
	// counts of its minute and of its hour rollups add up to the samples,
	// and their pressure sums to Σ seq/4.
	wantSum := float64(seqs-1) * float64(seqs) / 2 / 4
	for _, topic := range names {
		for _, per := range mongots.Periods {
			for dev, got := range d.rollupTotals(t, mongots.RollupCollection(topic, per)) {
				if got.n != seqs || got.pressure != seqs || got.sum != wantSum {
					t.Errorf("%s rollups of %s: %d samples, %d pressure values summing to %g; want %d, %d, %g",
						per.Name, dev, got.n, got.pressure, got.sum, seqs, seqs, wantSum)
				}
			}
		}
	}
}

// rollupTotal is what a device's rollups in one collection add up to.
type rollupTotal struct {
	n, pressure int64   // samples folded, pressure values folded
	sum         float64 // of the pressure values
}

// rollupTotals adds up each device's rollups in coll.
func (d *db) rollupTotals(t *testing.T, coll string) map[string]rollupTotal {
	t.Helper()
	cur, err := d.client.Database(d.name).Collection(coll).Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(t.Context())
	out := map[string]rollupTotal{}
	for cur.Next(t.Context()) {
		dev, _ := cur.Current.Lookup("meta", "device").StringValueOK()
		tot := out[dev]
		tot.n += cur.Current.Lookup("n").AsInt64()
		tot.pressure += cur.Current.Lookup("fields", "pressure", "n").AsInt64()
		tot.sum += cur.Current.Lookup("fields", "pressure", "sum").Double()
		out[dev] = tot
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no rollups in %s", coll)
	}
	return out
}

// writtenPastCheckpoint returns how many offsets of topics (one partition
// each) lie between MongoDB's checkpoint and the highest stored source
// offset: records a killed sink wrote but did not checkpoint.
func writtenPastCheckpoint(t *testing.T, d *db, group string, topics []string) int64 {
	t.Helper()
	var ahead int64
	for _, topic := range topics {
		saved, err := d.store.LoadOffsets(t.Context(), group, topic)
		if err != nil {
			t.Fatal(err)
		}
		// The highest stored source offset: a scan, which the sink no
		// longer needs, but a test may afford.
		opts := options.FindOne().SetSort(bson.D{{Key: "src.o", Value: -1}})
		raw, err := d.client.Database(d.name).Collection(topic).FindOne(t.Context(), bson.D{{Key: "src.p", Value: 0}}, opts).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := raw.Lookup("src", "o").AsInt64() + 1 - saved[0]; n > 0 {
			ahead += n
		}
	}
	return ahead
}
