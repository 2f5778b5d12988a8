package sink

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// discardStore is MongoDB taken out: Write encodes each document as the
// real store would send it (Doc.AppendBSON) and drops it; nothing is ever
// stored.
type discardStore struct {
	buf []byte
}

func (d *discardStore) Ensure(context.Context, mongots.CollectionSpec) error { return nil }

func (d *discardStore) Write(_ context.Context, _ string, docs []mongots.Doc) (mongots.WriteResult, error) {
	var res mongots.WriteResult
	for i := range docs {
		var err error
		d.buf, err = docs[i].AppendBSON(d.buf[:0])
		if err != nil {
			res.Failed = append(res.Failed, mongots.DocError{Index: i, Doc: docs[i], Message: err.Error()})
			continue
		}
		res.Inserted++
	}
	return res, nil
}

func (d *discardStore) ReadStatus(context.Context, string, []string) (map[string]mongots.DeviceStatus, error) {
	return nil, nil
}

func (d *discardStore) UpdateStatus(context.Context, []mongots.DeviceStatus) error {
	return nil
}

func (d *discardStore) EnsureRollups(context.Context, string, mongots.Period, time.Duration) error {
	return nil
}

func (d *discardStore) LoadRollups(context.Context, string, mongots.Period, []mongots.RollupKey) (map[mongots.RollupKey]*mongots.Rollup, error) {
	return nil, nil
}

func (d *discardStore) SaveRollups(_ context.Context, _ string, _ mongots.Period, rs []*mongots.Rollup) ([]mongots.RollupKey, error) {
	for _, r := range rs {
		r.Rev++
	}
	return nil, nil
}

func (d *discardStore) MarkTopicsAttempted(context.Context, string, map[string]map[int32]int64) error {
	return nil
}

func (d *discardStore) UnstoredSamples(_ context.Context, _ string, docs []mongots.Doc) ([]mongots.Doc, error) {
	return docs, nil
}

func (d *discardStore) LastSeqs(context.Context, string, []string) (map[string]mongots.SeqMark, error) {
	return nil, nil
}

func (d *discardStore) LoadCheckpoints(context.Context, string, string) (map[int32]mongots.Checkpoint, error) {
	return nil, nil
}

func (d *discardStore) LowerAttempted(context.Context, string, []mongots.MarkLowering) (int, error) {
	return 0, nil
}

func (d *discardStore) SaveTopicOffsets(context.Context, string, map[string]map[int32]int64) error {
	return nil
}

// benchBatch returns batch i of records as the sink polls them: devs
// press devices on 4 partitions, perDevice consecutive samples each, seq
// and offsets continuing from batch i-1.
func benchBatch(i, devs, perDevice int) []*kgo.Record {
	const partitions = 4
	var perPartition [partitions]int64 // devices per partition
	for d := range devs {
		perPartition[d%partitions]++
	}
	recs := make([]*kgo.Record, 0, devs*perDevice)
	for k := range perDevice {
		row := int64(i*perDevice + k)
		for d := range devs {
			r := sampleRecord(testSample("press", fmt.Sprintf("press-%03d", d), uint64(row)))
			r.Partition = int32(d % partitions)
			r.Offset = row*perPartition[d%partitions] + int64(d/partitions)
			recs = append(recs, r)
		}
	}
	return recs
}

// BenchmarkPipeline measures the sink's pipeline on batches of 5000
// records (50 devices × 100 samples, 4 partitions): decode, check,
// dedupe, build documents, and write them, the offsets checkpoint, the
// device status and the rollups (written beside the pipeline, every
// summary_interval and at the end).
// no-db takes MongoDB out (documents encoded to BSON and dropped);
// ferretdb writes to the FerretDB stand-in (SQLite, plain collections)
// in the same run; mongodb writes time-series collections to the real
// MongoDB named by MONGODB_URI, and is skipped without it:
//
//	go test -run '^$' -bench BenchmarkPipeline -benchtime 20x ./sink/
//	MONGODB_URI=mongodb://127.0.0.1:27017 go test -run '^$' -bench 'BenchmarkPipeline/mongodb' -benchtime 20x ./sink/
//
// Records are built outside the timer; samples/s counts samples stored.
func BenchmarkPipeline(b *testing.B) {
	const devs, perDevice = 50, 100
	run := func(b *testing.B, st store) {
		cfg := DefaultConfig()
		cfg.Factories = []string{testFactory}
		p := newPipeline(cfg, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()), st)
		assignAll(b, p, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}) // as the group does: an empty topic
		ctx := context.Background()
		stored := 0
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			recs := benchBatch(i, devs, perDevice)
			b.StartTimer()
			res, err := p.process(ctx, recs)
			if err != nil {
				b.Fatal(err)
			}
			stored += res.stored
		}
		stopPipeline(b, p) // the status and rollups still held, as a sink that stops writes them
		b.StopTimer()
		if stored != b.N*devs*perDevice {
			b.Fatalf("stored %d samples, want %d", stored, b.N*devs*perDevice)
		}
		b.ReportMetric(float64(stored)/b.Elapsed().Seconds(), "samples/s")
	}
	b.Run("no-db", func(b *testing.B) { run(b, &discardStore{}) })
	b.Run("ferretdb", func(b *testing.B) {
		client := mongotest.Connect(b, mongotest.Start(b), nil)
		opts := mongots.DefaultOptions()
		opts.TimeSeries, opts.Database = false, mongotest.DatabaseName("bench")
		run(b, mongots.New(client, opts))
	})
	b.Run("mongodb", func(b *testing.B) {
		client := mongotest.Connect(b, mongotest.RealURI(b), nil)
		opts := mongots.DefaultOptions()
		opts.Database = mongotest.DatabaseName("sink_bench")
		st := mongots.New(client, opts)
		mongotest.DropDatabase(b, st.Database())
		run(b, st)
	})
}
