package sink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// TestCheckpointWritesPerBatch: a batch whose records lie under the
// checkpoint's attempted marks writes no mark before its samples; one
// whose records pass a mark raises the marks max_records ahead, every
// topic in one command. Offsets are saved every topic in one command too
// (here once, when the sink stops: the status entries, written every
// summary_interval, hold the checkpoint back until then). A clean stop
// lowers the marks to the last offset written.
func TestCheckpointWritesPerBatch(t *testing.T) {
	const maxRecords = 40
	uri := mongotest.Start(t)
	var m mongotest.Monitor
	opts := mongots.DefaultOptions()
	opts.TimeSeries, opts.Database = false, mongotest.DatabaseName("checkpoint")
	st := mongots.New(mongotest.Connect(t, uri, &m), opts)
	cfg := DefaultConfig()
	cfg.Factories = []string{testFactory}
	cfg.Batch.MaxRecords = maxRecords
	p := newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), st)
	classes := []string{"press", "oven"}
	ctx := context.Background()
	for _, class := range classes {
		empty := func(context.Context) (map[int32]int64, error) { return map[int32]int64{0: 0, 1: 0}, nil }
		if _, err := p.assign(ctx, testFactory+"."+class, map[int32]int64{0: -1, 1: -1}, empty); err != nil {
			t.Fatal(err)
		}
	}
	// batch i: 4 devices per class, each one sample, 2 partitions: 2
	// records per partition and batch, offsets 2i and 2i+1.
	batch := func(i int) []*kgo.Record {
		var recs []*kgo.Record
		for _, class := range classes {
			for d := range 4 {
				r := sampleRecord(testSample(class, fmt.Sprintf("%s-%d", class, d), uint64(i)))
				r.Partition, r.Offset = int32(d%2), int64(2*i+d/2)
				recs = append(recs, r)
			}
		}
		return recs
	}
	// checkpointWrites returns the marks ($max), saves ($set offset) and
	// lowerings ($set attempted) among the updates of sink_offsets since
	// the last call, as the topics each command covered.
	checkpointWrites := func() (marks, saves, lowerings []map[string]int) {
		for _, cmd := range m.All() {
			if cmd.Name != "update" {
				continue
			}
			if coll, _ := cmd.Doc.Lookup("update").StringValueOK(); coll != mongots.OffsetsCollection {
				continue
			}
			topics := map[string]int{}
			isMark := false
			ups, err := cmd.Doc.Lookup("updates").Array().Values()
			if err != nil {
				t.Fatal(err)
			}
			isLowering := false
			for _, u := range ups {
				doc := u.Document()
				if _, err := doc.LookupErr("u", "$set", "attempted"); err == nil {
					isLowering = true // filtered on _id and the mark, not an upsert
					id := doc.Lookup("q", "_id").StringValue()
					topics[id[strings.Index(id, "/")+1:strings.LastIndex(id, "/")]]++
					continue
				}
				topics[doc.Lookup("u", "$set", "topic").StringValue()]++
				if _, err := doc.LookupErr("u", "$max", "attempted"); err == nil {
					isMark = true
				}
			}
			switch {
			case isLowering:
				lowerings = append(lowerings, topics)
			case isMark:
				marks = append(marks, topics)
			default:
				saves = append(saves, topics)
			}
		}
		m.Reset()
		return marks, saves, lowerings
	}
	both := map[string]int{testFactory + ".press": 2, testFactory + ".oven": 2}

	// The first batch raises the marks of every partition, in one
	// command.
	if _, err := p.process(ctx, batch(0)); err != nil {
		t.Fatal(err)
	}
	// saved reports whether a batch's saves are one command covering
	// both topics, or none (the status entries not written yet hold the
	// offsets back).
	saved := func(saves []map[string]int) bool {
		return len(saves) == 0 || fmt.Sprint(saves) == fmt.Sprint([]map[string]int{both})
	}
	marks, saves, _ := checkpointWrites()
	if fmt.Sprint(marks) != fmt.Sprint([]map[string]int{both}) || !saved(saves) {
		t.Fatalf("first batch: marks %v, saves %v; want one mark covering %v, at most one save covering them", marks, saves, both)
	}
	// Offset 1 is each partition's highest: marks at 1+maxRecords. The
	// batches up to that offset write no mark.
	for i := 1; 2*i+1 <= 1+maxRecords; i++ {
		if _, err := p.process(ctx, batch(i)); err != nil {
			t.Fatal(err)
		}
		if marks, saves, _ := checkpointWrites(); len(marks) != 0 || !saved(saves) {
			t.Fatalf("batch %d (offsets %d-%d, marks at %d): marks %v, saves %v; want no mark, at most one save covering %v",
				i, 2*i, 2*i+1, 1+maxRecords, marks, saves, both)
		}
	}
	// The next batch passes the marks: raised again.
	next := (1+maxRecords)/2 + 1
	if _, err := p.process(ctx, batch(next)); err != nil {
		t.Fatal(err)
	}
	if marks, saves, _ := checkpointWrites(); fmt.Sprint(marks) != fmt.Sprint([]map[string]int{both}) || !saved(saves) {
		t.Fatalf("batch %d (offsets %d-%d) past the marks at %d: marks %v, saves %v; want one mark covering %v, at most one save",
			next, 2*next, 2*next+1, 1+maxRecords, marks, saves, both)
	}
	// A clean stop writes the status entries, saves the offsets they held,
	// then lowers the marks to the last offset written: the next owner
	// checks nothing.
	stopPipeline(t, p)
	if marks, saves, lowerings := checkpointWrites(); len(marks) != 0 || len(saves) != 1 || !saved(saves) ||
		fmt.Sprint(lowerings) != fmt.Sprint([]map[string]int{both}) {
		t.Fatalf("stop: marks %v, saves %v, lowerings %v; want one save and one lowering covering %v", marks, saves, lowerings, both)
	}
	for _, class := range classes {
		cps, err := st.LoadCheckpoints(ctx, DefaultGroup, testFactory+"."+class)
		if err != nil {
			t.Fatal(err)
		}
		for part := range int32(2) {
			want := mongots.Checkpoint{Next: int64(2*next + 2), Attempted: int64(2*next + 1)}
			if cps[part] != want {
				t.Errorf("%s partition %d: checkpoint %+v, want %+v", class, part, cps[part], want)
			}
		}
	}
	var stored []bson.M
	cur, err := st.Database().Collection(testFactory+".oven").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if want := 4 * (next + 1); len(stored) != want {
		t.Errorf("%s.oven holds %d documents, want %d", testFactory, len(stored), want)
	}
}
