package sink

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

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
		for i := range batches {
			if _, err := p.process(context.Background(), benchBatch(i, devs, perDevice)); err != nil {
				t.Fatal(err)
			}
		}
		// The next sink: the records produced meanwhile are one batch.
		next := benchBatch(batches, devs, perDevice)
		var m mongotest.Monitor
		p = startupPipeline(t, uri, db, &m)
		assignAll(t, p, batchEnds(next))
		if _, err := p.process(context.Background(), next); err != nil {
			t.Fatal(err)
		}
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

// BenchmarkStartup measures what a sink taking over 10,000 devices spends
// before and on its first batch (assignment, the checkpoint, the devices'
// status, one sample per device written), on the FerretDB stand-in, with
// 1× and 10× the history in the collection:
//
//	go test -run '^$' -bench BenchmarkStartup -benchtime 3x ./sink/
//
// The history is one or ten samples per device. The ratio of the two
// ns/op figures is the growth with history (1.0: none).
func BenchmarkStartup(b *testing.B) {
	const devs = 10000
	for _, history := range []int{1, 10} {
		b.Run(fmt.Sprintf("history=%dx", history), func(b *testing.B) {
			uri := mongotest.Start(b)
			db := mongotest.DatabaseName("startup")
			p := startupPipeline(b, uri, db, nil)
			assignAll(b, p, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0})
			for i := range history {
				if _, err := p.process(context.Background(), benchBatch(i, devs, 1)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				next := benchBatch(history+i, devs, 1)
				q := startupPipeline(b, uri, db, nil)
				start := time.Now()
				b.StartTimer()
				assignAll(b, q, batchEnds(next))
				if _, err := q.process(context.Background(), next); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/startup")
			}
		})
	}
}
