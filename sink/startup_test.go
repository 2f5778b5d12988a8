package sink

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// startupPipeline returns a sink pipeline on a Store of the database db
// at uri (stand-in mode), its client's commands recorded in m.
func startupPipeline(t testing.TB, uri, db string, m *mongotest.Monitor) *pipeline {
	t.Helper()
	opts := mongots.DefaultOptions()
	opts.TimeSeries, opts.Database = false, db
	st := mongots.New(mongotest.Connect(t, uri, m), opts)
	cfg := DefaultConfig()
	cfg.Factories = []string{testFactory}
	return newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), st)
}

// stopPipeline does what a sink that stops does after its last batch:
// it waits for the status and rollups written beside the pipeline and
// writes those still held (pipeline.finish).
func stopPipeline(t testing.TB, p *pipeline) {
	t.Helper()
	if _, err := p.finish(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

// assignAll assigns the 4 partitions of benchBatch's topic to p as a group
// would: nothing committed at the broker, the end offsets ends.
func assignAll(t testing.TB, p *pipeline, ends map[int32]int64) {
	t.Helper()
	committed := map[int32]int64{0: -1, 1: -1, 2: -1, 3: -1}
	endsFn := func(context.Context) (map[int32]int64, error) { return ends, nil }
	if _, err := p.assign(context.Background(), testFactory+".press", committed, endsFn); err != nil {
		t.Fatal(err)
	}
}

// batchEnds returns the offset after the last record of each partition
// of recs.
func batchEnds(recs []*kgo.Record) map[int32]int64 {
	out := map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}
	for _, r := range recs {
		out[r.Partition] = max(out[r.Partition], r.Offset+1)
	}
	return out
}

// startupReads is what a sink read from MongoDB between taking its
// partitions and its first insert.
type startupReads struct {
	commands []string // name and collection, in order
	returned int      // documents read back
}

// TestStartupReadsBounded: a sink that takes over partitions whose
// collection holds 1× or 100× the history sends the same commands and
// reads the same documents before its first write. It reads the
// checkpoint and the devices' status entries, never the samples.
func TestStartupReadsBounded(t *testing.T) {
	const devs, perDevice = 40, 5
	uri := mongotest.Start(t)
	var got []startupReads
	for _, batches := range []int{1, 100} {
		db := mongotest.DatabaseName(fmt.Sprintf("startup%d", batches))
		// The history, written by a sink that then stops.
		p := startupPipeline(t, uri, db, nil)
		assignAll(t, p, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
		if _, err := p.process(context.Background(), benchBatch(0, devs, perDevice*batches)); err != nil {
			t.Fatal(err)
		}
		stopPipeline(t, p)
		// The next sink: the records produced meanwhile are one batch.
		next := benchBatch(batches, devs, perDevice)
		var m mongotest.Monitor
		p = startupPipeline(t, uri, db, &m)
		assignAll(t, p, batchEnds(next))
		if _, err := p.process(context.Background(), next); err != nil {
			t.Fatal(err)
		}
		stopPipeline(t, p)
		var r startupReads
		for _, c := range m.All() {
			if c.Name == "insert" {
				break
			}
			coll, _ := c.Doc.Lookup(c.Name).StringValueOK()
			r.commands = append(r.commands, c.Name+" "+coll)
			r.returned += c.Returned()
			if coll == testFactory+".press" && (c.Name == "find" || c.Name == "aggregate") {
				t.Errorf("history %d×: the sink read the samples before its first write: %s", batches, c.Doc)
			}
		}
		t.Logf("history %d× (%d documents): before the first insert %d commands %q, %d documents read",
			batches, batches*devs*perDevice, len(r.commands), r.commands, r.returned)
		got = append(got, r)
	}
	if !slices.Equal(got[0].commands, got[1].commands) || got[0].returned != got[1].returned {
		t.Fatalf("start-up reads grow with the history: 1×: %q, %d documents; 100×: %q, %d documents",
			got[0].commands, got[0].returned, got[1].commands, got[1].returned)
	}
	// The checkpoint (one entry per partition), the status (one per
	// device) and the collection's listCollections entry, nothing more.
	if got[0].returned != 4+devs+1 {
		t.Fatalf("read %d documents, want %d (4 checkpoint entries, %d status entries, 1 collection)", got[0].returned, 4+devs+1, devs)
	}
	if !slices.ContainsFunc(got[0].commands, func(c string) bool { return strings.HasPrefix(c, "find "+mongots.StatusCollection) }) {
		t.Fatalf("no find of %s: %q", mongots.StatusCollection, got[0].commands)
	}
}

// BenchmarkStartup measures what a sink taking over 10,000 devices reads
// before its first write (assignment: the checkpoint and the end offsets;
// the first batch: the devices' status entries), on the FerretDB
// stand-in, with 1× and 10× the history in the collection:
//
//	go test -run '^$' -bench BenchmarkStartup -benchtime 5x ./sink/
//
// The history is one or ten samples per device, written directly, with
// each device's status entry. The ratio of the two ns/op figures is the
// growth with history (1.0: none). The write itself is left out: the
// stand-in's updates cost what its collections hold, whatever the
// indexes.
func BenchmarkStartup(b *testing.B) {
	const devs = 10000
	for _, history := range []int{1, 10} {
		b.Run(fmt.Sprintf("history=%dx", history), func(b *testing.B) {
			uri := mongotest.Start(b)
			db := mongotest.DatabaseName("startup")
			opts := mongots.DefaultOptions()
			opts.TimeSeries, opts.Database = false, db
			client := mongotest.Connect(b, uri, nil)
			st := mongots.New(client, opts)
			ctx := context.Background()
			if err := st.Ensure(ctx, mongots.CollectionSpec{Name: testFactory + ".press"}); err != nil {
				b.Fatal(err)
			}
			hist := benchBatch(0, devs, history)
			docs := make([]mongots.Doc, len(hist))
			status := make([]any, 0, devs)
			for i, r := range hist {
				smp, err := devices.DecodeSample(r.Value)
				if err != nil {
					b.Fatal(err)
				}
				docs[i] = mongots.Doc{Sample: smp, Partition: r.Partition, Offset: r.Offset}
				if i >= len(hist)-devs { // the newest sample of each device
					status = append(status, bson.D{
						{Key: "_id", Value: r.Topic + "/" + smp.Device}, {Key: "topic", Value: r.Topic},
						{Key: "factory", Value: smp.Factory}, {Key: "class", Value: smp.Class}, {Key: "device", Value: smp.Device},
						{Key: "ts", Value: smp.Time}, {Key: "seq", Value: int64(smp.Seq)}, {Key: "error_count", Value: int32(1)},
					})
				}
			}
			if _, err := st.Write(ctx, testFactory+".press", docs); err != nil {
				b.Fatal(err)
			}
			if _, err := client.Database(db).Collection(mongots.StatusCollection).InsertMany(ctx, status); err != nil {
				b.Fatal(err)
			}
			next := benchBatch(history, devs, 1)
			ends := batchEnds(next)
			cps, attempted := map[int32]int64{}, map[int32]int64{}
			for part, e := range batchEnds(hist) {
				cps[part], attempted[part] = e, e-1
			}
			if err := st.MarkAttempted(ctx, DefaultGroup, testFactory+".press", attempted); err != nil {
				b.Fatal(err)
			}
			if err := st.SaveOffsets(ctx, DefaultGroup, testFactory+".press", cps); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				q := startupPipeline(b, uri, db, nil)
				b.StartTimer()
				assignAll(b, q, ends)
				_, cands, _, _ := q.decode(next)
				if err := q.learn(ctx, cands); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcerns: every write the sink sends has write concern majority and
// every read that decides what is stored read concern majority; with a
// weak write concern (allowed explicitly), w: 1 and read concern local.
func TestConcerns(t *testing.T) {
	uri := mongotest.Start(t)
	for _, c := range []struct {
		name  string
		wc    *writeconcern.WriteConcern
		w, rc string
	}{
		{"majority", nil, `"majority"`, `"majority"`},
		{"weak", &writeconcern.WriteConcern{W: 1}, `{"$numberInt":"1"}`, `"local"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m mongotest.Monitor
			opts := mongots.DefaultOptions()
			opts.TimeSeries, opts.Database, opts.WriteConcern = false, mongotest.DatabaseName("concerns"), c.wc
			cfg := DefaultConfig()
			cfg.Factories = []string{testFactory}
			cfg.SummaryInterval = 0 // status and rollups written at every batch: updates as well as inserts
			p := newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), mongots.New(mongotest.Connect(t, uri, &m), opts))
			first := benchBatch(0, 8, 3)
			assignAll(t, p, batchEnds(first)) // every record at or below the floor: checked
			for i, recs := range [][]*kgo.Record{first, benchBatch(1, 8, 3)} {
				if _, err := p.process(context.Background(), recs); err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				stopPipeline(t, p) // the status and rollups, written beside the batches, have landed
			}
			seen := map[string]int{}
			for _, cmd := range m.All() {
				coll, _ := cmd.Doc.Lookup(cmd.Name).StringValueOK()
				switch cmd.Name {
				case "insert", "update":
					if got := cmd.Doc.Lookup("writeConcern", "w").String(); got != c.w {
						t.Errorf("%s %s: writeConcern.w %s, want %s", cmd.Name, coll, got, c.w)
					}
				case "find", "aggregate":
					if got := cmd.Doc.Lookup("readConcern", "level").String(); got != c.rc {
						t.Errorf("%s %s: readConcern.level %s, want %s", cmd.Name, coll, got, c.rc)
					}
				default:
					continue
				}
				seen[cmd.Name+" "+coll]++
			}
			// The sample inserts, the checkpoint, the status, the rollups;
			// the reads of the checkpoint, status, stored samples and
			// rollups.
			for _, want := range []string{"insert " + testFactory + ".press", "update sink_offsets", "update device_status",
				"update " + testFactory + ".press_1m", "find sink_offsets", "find device_status", "find " + testFactory + ".press",
				"find " + testFactory + ".press_1h"} {
				if seen[want] == 0 {
					t.Errorf("no %s among %v", want, seen)
				}
			}
		})
	}
}
