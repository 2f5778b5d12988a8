package mongots

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/mongotest"
)

// lastSeqStore returns a stand-in Store (FerretDB has no time-series
// collections: plain collection, same documents and indexes) with the
// collection coll ensured.
func lastSeqStore(t *testing.T, coll string) (*Store, context.Context) {
	s, ctx, _ := lastSeqStoreMonitored(t, coll)
	return s, ctx
}

func lastSeqStoreMonitored(t *testing.T, coll string) (*Store, context.Context, *mongotest.Monitor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var m mongotest.Monitor
	client := mongotest.Connect(t, mongotest.Start(t), &m)
	opts := DefaultOptions()
	opts.TimeSeries = false
	opts.Database = mongotest.DatabaseName("lastseq")
	s := New(client, opts)
	if err := s.Ensure(ctx, CollectionSpec{Name: coll}); err != nil {
		t.Fatal(err)
	}
	return s, ctx, &m
}

func lastSeqDoc(device string, seq uint64, ts time.Time, offset int64) Doc {
	return Doc{
		Sample: devices.Sample{Factory: "plant-a", Class: "press", Device: device, Time: ts, Seq: seq,
			Fields: map[string]devices.Value{"pressure": devices.Float64Value(1.5)}},
		Offset: offset,
	}
}

// TestLastSeqs runs against the FerretDB stand-in: the newest sample by ts
// of each device (of two at one ts, the higher seq), devices without
// samples absent. The stand-in refuses the last-point aggregation
// ($first), which LastSeqs then stops sending.
func TestLastSeqs(t *testing.T) {
	const coll = "plant-a.press"
	s, ctx, m := lastSeqStoreMonitored(t, coll)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var docs []Doc
	for i := range 5 {
		docs = append(docs, lastSeqDoc("press-01", uint64(10+i), t0.Add(time.Duration(i)*time.Second), int64(i)))
	}
	// Two samples at one ts, the higher seq first (press-02) or second
	// (press-03): the mark takes the higher.
	docs = append(docs, lastSeqDoc("press-02", 7, t0.Add(time.Minute), 5), lastSeqDoc("press-02", 6, t0.Add(time.Minute), 6),
		lastSeqDoc("press-03", 3, t0.Add(time.Minute), 7), lastSeqDoc("press-03", 4, t0.Add(time.Minute), 8))
	if _, err := s.Write(ctx, coll, docs); err != nil {
		t.Fatal(err)
	}
	m.Reset()
	got, err := s.LastSeqs(ctx, coll, []string{"press-01", "press-02", "press-03", "press-04", "press-01"})
	if err != nil {
		t.Fatal(err)
	}
	aggs := m.Commands("aggregate")
	if len(aggs) != 1 {
		t.Fatalf("%d aggregates, want 1 (then none: the stand-in has no $first)", len(aggs))
	}
	assertCommand(t, aggs[0], bson.D{
		{Key: "aggregate", Value: coll},
		{Key: "pipeline", Value: bson.A{
			bson.D{{Key: "$match", Value: bson.D{{Key: "meta.device", Value: bson.D{{Key: "$in", Value: bson.A{"press-01", "press-02", "press-03", "press-04"}}}}}}},
			bson.D{{Key: "$sort", Value: bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}}},
			bson.D{{Key: "$group", Value: bson.D{
				{Key: "_id", Value: "$meta.device"},
				{Key: "seq", Value: bson.D{{Key: "$first", Value: "$seq"}}},
				{Key: "ts", Value: bson.D{{Key: "$first", Value: "$ts"}}},
			}}},
		}},
		{Key: "cursor", Value: bson.D{}},
		{Key: "readConcern", Value: bson.D{{Key: "level", Value: "majority"}}},
	})
	// Then one find for the four, which the stand-in answers with one
	// read of the collection, not one per device.
	finds := m.Commands("find")
	if len(finds) != 1 {
		t.Fatalf("%d finds after the refused aggregate, want 1", len(finds))
	}
	if got, want := field(t, finds[0], "filter"), extJSON(t, bson.D{{Key: "meta.device", Value: bson.D{{Key: "$in", Value: bson.A{"press-01", "press-02", "press-03", "press-04"}}}}}); got != want {
		t.Errorf("find filter %s, want %s", got, want)
	}
	if got, want := field(t, finds[0], "projection"), extJSON(t, bson.D{{Key: "_id", Value: int32(0)}, {Key: "meta.device", Value: int32(1)}, {Key: "seq", Value: int32(1)}, {Key: "ts", Value: int32(1)}}); got != want {
		t.Errorf("find projection %s, want %s", got, want)
	}
	m.Reset()
	if _, err := s.LastSeqs(ctx, coll, []string{"press-01"}); err != nil || len(m.Commands("aggregate")) != 0 {
		t.Fatalf("LastSeqs after the stand-in refused $first: %v, %d aggregates; want none", err, len(m.Commands("aggregate")))
	}
	want := map[string]SeqMark{
		"press-01": {Seq: 14, Time: t0.Add(4 * time.Second)},
		"press-02": {Seq: 7, Time: t0.Add(time.Minute)},
		"press-03": {Seq: 4, Time: t0.Add(time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("LastSeqs = %v, want %v", got, want)
	}
	for d, w := range want {
		if g, ok := got[d]; !ok || g.Seq != w.Seq || !g.Time.Equal(w.Time) {
			t.Errorf("LastSeqs[%s] = %+v, want %+v", d, g, w)
		}
	}
}

// TestUnstoredSamples runs against the FerretDB stand-in: a sample is
// stored when a document has its device, seq and ts, whatever its offset;
// the same seq at another ts (a device whose seq restarted) is not.
func TestUnstoredSamples(t *testing.T) {
	const coll = "plant-a.press"
	s, ctx := lastSeqStore(t, coll)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var stored []Doc
	for i := range 60 { // more devices than one query's clauses
		dev := "dev-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		stored = append(stored, lastSeqDoc(dev, 1, t0, int64(2*i)), lastSeqDoc(dev, 2, t0.Add(time.Second), int64(2*i+1)))
	}
	if _, err := s.Write(ctx, coll, stored); err != nil {
		t.Fatal(err)
	}
	ask := []Doc{
		lastSeqDoc("dev-aa", 2, t0.Add(time.Second), 500),                  // re-delivered at a new offset: stored
		lastSeqDoc("dev-aa", 3, t0.Add(2*time.Second), 501),                // new
		lastSeqDoc("dev-hc", 1, t0, 502),                                   // the 60th device's first: stored
		lastSeqDoc("dev-ba", 2, t0.Add(time.Hour), 503),                    // same seq, another ts: new
		lastSeqDoc("dev-zz", 1, t0, 504),                                   // unknown device: new
		lastSeqDoc("dev-ab", 1, t0.Add(-time.Millisecond), 505),            // same seq, 1 ms earlier: new
		lastSeqDoc("dev-ab", 1, t0, 506),                                   // stored
		lastSeqDoc("dev-ab", 2, t0.Add(time.Second+time.Millisecond), 507), // new
	}
	got, err := s.UnstoredSamples(ctx, coll, ask)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, d := range got {
		offsets = append(offsets, d.Offset)
	}
	want := []int64{501, 503, 504, 505, 507}
	if len(offsets) != len(want) {
		t.Fatalf("UnstoredSamples kept offsets %v, want %v", offsets, want)
	}
	for i := range want {
		if offsets[i] != want[i] {
			t.Fatalf("UnstoredSamples kept offsets %v, want %v", offsets, want)
		}
	}
}

// TestAppendBSON checks that AppendBSON writes the document Write stores
// and refuses what Write refuses.
func TestAppendBSON(t *testing.T) {
	d := lastSeqDoc("press-01", 3, time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), 9)
	d.Partition = 2
	raw, err := d.AppendBSON([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	doc := bson.Raw(raw[len("prefix"):])
	if err := doc.Validate(); err != nil {
		t.Fatalf("AppendBSON wrote invalid BSON: %v", err)
	}
	if dev, _ := doc.Lookup("meta", "device").StringValueOK(); dev != "press-01" {
		t.Errorf("meta.device = %q, want press-01", dev)
	}
	if o, _ := doc.Lookup("src", "o").AsInt64OK(); o != 9 {
		t.Errorf("src.o = %d, want 9", o)
	}
	if p, _ := doc.Lookup("src", "p").AsInt64OK(); p != 2 {
		t.Errorf("src.p = %d, want 2", p)
	}
	bad := d
	bad.Sample.Device = "no spaces"
	out, err := bad.AppendBSON([]byte("prefix"))
	if !errors.Is(err, ErrInvalidDoc) || string(out) != "prefix" {
		t.Fatalf("AppendBSON of an invalid device = %q, %v; want the prefix back and ErrInvalidDoc", out, err)
	}
}
