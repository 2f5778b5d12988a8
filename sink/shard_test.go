package sink

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/storage/mongots"
)

// TestShardRefusedStopsSink: mongodb.shard against a server that is not a
// mongos (here the FerretDB stand-in) stops the sink at its first
// collection, with an error naming the collection and the fix, instead of
// retrying; neither the topic's collection nor device_status is created.
func TestShardRefusedStopsSink(t *testing.T) {
	addr := startBroker(t)
	createTopics(t, addr, map[string]int32{testFactory + ".press": 1, testFactory + ".press.dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.MongoDB.TimeSeries, cfg.MongoDB.Shard = true, true
	newProducer(t, addr).produce(t, sampleRecord(testSample("press", "press-01", 1)))

	s, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err = s.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the sink did not stop within %v: %v", waitLimit, err)
	}
	ns := cfg.MongoDB.Database + "." + testFactory + ".press"
	if !errors.Is(err, mongots.ErrNotMongos) || !strings.Contains(err.Error(), ns) || !strings.Contains(err.Error(), "mongodb.shard") {
		t.Fatalf("Run: %v, want ErrNotMongos naming %s and mongodb.shard", err, ns)
	}
	d := openDB(t, cfg)
	names, err := d.client.Database(d.name).ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	// sink_offsets, never sharded, may hold the partition's attempted
	// offset; the topic's collection and device_status must not exist.
	for _, n := range names {
		if n != mongots.OffsetsCollection {
			t.Fatalf("collections %v created on a server the sink refused to shard on", names)
		}
	}
}

// TestTimeSeriesOnStandInStopsSink: time_series: true against the FerretDB
// stand-in, which has no time-series collections, stops the sink at once
// with one error naming the collection, the command and the key to change,
// instead of retrying forever.
func TestTimeSeriesOnStandInStopsSink(t *testing.T) {
	addr := startBroker(t)
	createTopics(t, addr, map[string]int32{testFactory + ".press": 1, testFactory + ".press.dlq": 1})
	cfg := testConfig(addr, mongotest.Start(t))
	cfg.MongoDB.TimeSeries = true
	newProducer(t, addr).produce(t, sampleRecord(testSample("press", "press-01", 1)))
	err := runUntilStopped(t, cfg)
	var ce *mongots.CommandError
	ns := cfg.MongoDB.Database + "." + testFactory + ".press"
	if !errors.As(err, &ce) || ce.Command != "create" || !strings.Contains(err.Error(), ns) ||
		!strings.Contains(err.Error(), "set mongodb.time_series: false") {
		t.Fatalf("Run: %v, want a CommandError of create naming %s and mongodb.time_series", err, ns)
	}
}
