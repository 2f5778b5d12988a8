package demo

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/devices"
)

// TestEndToEnd runs simulator → gateway → our broker → sink → MongoDB
// stand-in in this process: 3 factories × 2 classes × 20 devices polled
// every 100 ms, the broker restarted in the middle. Afterwards every
// (device, seq) the gateways polled is stored exactly once, and at the
// broker each device's samples are in seq order.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("about 25 s: skipped with -short")
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// 1,200 samples/s; under the race detector, which slows the stand-in
	// sink about tenfold, 120.
	interval, batch, perDevice := 100*time.Millisecond, uint64(10_000), 50
	if raceEnabled {
		interval, batch, perDevice = time.Second, 1_000, 5
	}
	d, err := Start(Config{
		DataDir:    t.TempDir(),
		ClassesDir: "../../configs/devices",
		Interval:   interval,
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The bounds are not measurements: on a quiet machine each wait takes
	// about 10 s; on one whose two cores other tests also load, the
	// stand-in sink has stored as few as 120 samples/s.
	waitStats(t, d, fmt.Sprintf("%d samples stored", batch), 3*time.Minute, func(s Stats) bool { return s.Stored >= batch })
	before := d.Stats()
	if err := d.RestartBroker(); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker restarted with %d samples polled, %d stored", before.Polled, before.Stored)
	waitStats(t, d, fmt.Sprintf("%d more samples stored after the restart", batch), 3*time.Minute, func(s Stats) bool { return s.Stored >= before.Stored+batch })
	if err := d.StopPolling(); err != nil {
		t.Fatal(err)
	}
	polled := d.Stats().Polled
	waitStats(t, d, "every polled sample stored", 60*time.Second, func(s Stats) bool { return s.Stored >= polled })
	final := d.Stats()
	var polledSum, storedSum uint64
	for _, fs := range final.Factories {
		polledSum, storedSum = polledSum+fs.Polled, storedSum+fs.Stored
	}
	if len(final.Factories) != d.Config().Factories || polledSum != final.Polled || storedSum != final.Stored {
		t.Errorf("factories %v: polled %d, stored %d in all; want %d factories adding up to %d and %d",
			final.Factories, polledSum, storedSum, d.Config().Factories, final.Polled, final.Stored)
	}
	p50, _ := final.Delays(Stats{}, 0.50)
	p99, _ := final.Delays(Stats{}, 0.99)
	t.Logf("%d samples polled, %d produced, %d stored; poll to stored p50 %v p99 %v", final.Polled, final.Produced, final.Stored, p50, p99)

	total := checkStored(t, d, final.Polled, perDevice)
	dups := checkBrokerOrder(t, d)
	if dups != 0 {
		t.Fatalf("%d samples at the broker twice", dups)
	}
	t.Logf("%d devices, %d documents, each (device, seq) once; per-device order held at the broker", len(d.Devices)*len(d.Config().Classes)*d.Config().Devices, total)
}

// checkStored reads every document the sink wrote and checks that each
// (factory, device, seq) is there exactly once, seqs 0..n-1 without a gap,
// n at least perDevice for every device, and polled documents in all; and
// that each has the device's tag line and its class's units under meta.
// It returns the documents.
func checkStored(t *testing.T, d *Demo, polled uint64, perDevice int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(d.MongoURI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	db := client.Database(d.Config().Database)
	classes, err := devices.LoadDir(d.Config().ClassesDir)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]string]map[int64]int{}
	total := 0
	for _, topic := range d.Topics {
		cur, err := db.Collection(topic).Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "meta", Value: 1}, {Key: "seq", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var docs []struct {
			Meta struct {
				Factory, Class, Device string
				Tags, Units            map[string]string
			}
			Seq int64
		}
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			if want := map[string]string{"line": Line}; !maps.Equal(doc.Meta.Tags, want) || !maps.Equal(doc.Meta.Units, classes[doc.Meta.Class].Units) {
				t.Fatalf("%s seq %d: meta.tags %v, meta.units %v; want %v and class %s's %v", doc.Meta.Device, doc.Seq,
					doc.Meta.Tags, doc.Meta.Units, want, doc.Meta.Class, classes[doc.Meta.Class].Units)
			}
			k := [2]string{doc.Meta.Factory, doc.Meta.Device}
			if stored[k] == nil {
				stored[k] = map[int64]int{}
			}
			stored[k][doc.Seq]++
			total++
		}
	}
	if uint64(total) != polled {
		t.Errorf("%d documents stored, %d samples polled", total, polled)
	}
	for factory, devs := range d.Devices {
		for id := range devs {
			seqs := stored[[2]string{factory, id}]
			for seq := int64(0); seq < int64(len(seqs)); seq++ {
				if seqs[seq] != 1 {
					t.Fatalf("%s/%s seq %d stored %d times (device has %d seqs)", factory, id, seq, seqs[seq], len(seqs))
				}
			}
			if len(seqs) < perDevice {
				t.Fatalf("%s/%s: only %d samples stored", factory, id, len(seqs))
			}
		}
	}
	return total
}

// checkBrokerOrder reads every record of the demo's topics and checks
// that each device's samples first appear in seq order, 0, 1, 2… without a
// gap: per-device order held. It returns how many records repeat a sample
// already read (a producer's retry after an unclear failure can write one
// twice; the sink stores it once).
func checkBrokerOrder(t *testing.T, d *Demo) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts, err := d.kafka().Opts(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, d.Topics...)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, ends.Error())
	}
	parts := map[string]map[int32]kgo.Offset{}
	remaining := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if parts[o.Topic] == nil {
			parts[o.Topic] = map[int32]kgo.Offset{}
		}
		parts[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		remaining += o.Offset
	})
	cons, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(parts))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	next := map[[2]string]uint64{}
	dups := 0
	for remaining > 0 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: %d records left", remaining)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Topic][r.Partition].Offset {
				return
			}
			remaining--
			seq, ok := devices.SeqOf(r.Value)
			if !ok {
				t.Fatalf("%s/%d@%d: not a sample", r.Topic, r.Partition, r.Offset)
			}
			k := [2]string{r.Topic, string(r.Key)}
			switch {
			case seq == next[k]:
				next[k]++
			case seq < next[k]:
				dups++
			default:
				t.Fatalf("%s device %s: seq %d where %d was due, at %d/%d", r.Topic, r.Key, seq, next[k], r.Partition, r.Offset)
			}
		})
	}
	return dups
}

func waitStats(t *testing.T, d *Demo, what string, limit time.Duration, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := d.Stats()
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %+v", limit, what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
