package mongots

// Tests against a real MongoDB (6.0 or later), run only when MONGODB_URI is
// set: what FerretDB cannot show. Each test works in a database of its own
// and drops it at the end.
//
//	MONGODB_URI=mongodb://127.0.0.1:27017 go test -run Real ./storage/mongots/

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
)

// serverVersion returns the server's major and minor version.
func serverVersion(t *testing.T, s *Store) (int, int) {
	t.Helper()
	raw, err := s.Database().RunCommand(testCtx(t), bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	parts, err := raw.Lookup("versionArray").Array().Values()
	if err != nil || len(parts) < 2 {
		t.Fatalf("buildInfo versionArray: %s", raw.Lookup("versionArray"))
	}
	return int(parts[0].AsInt64()), int(parts[1].AsInt64())
}

// collOptions returns the collection's type and options from
// listCollections.
func collOptions(t *testing.T, s *Store, name string) (string, bson.Raw) {
	t.Helper()
	specs, err := s.Database().ListCollectionSpecifications(testCtx(t), bson.D{{Key: "name", Value: name}})
	if err != nil || len(specs) != 1 {
		t.Fatalf("listCollections %s: %+v, %v", name, specs, err)
	}
	return specs[0].Type, specs[0].Options
}

func TestRealEnsureTimeSeries(t *testing.T) {
	opts := DefaultOptions()
	rec := &recorder{}
	opts.Logger = newLogger(rec)
	s, m := realStore(t, opts)
	ctx := testCtx(t)
	if major, _ := serverVersion(t, s); major < 6 {
		t.Fatalf("MongoDB %d: factorywire needs 6.0 or later", major)
	}
	spec := CollectionSpec{Name: topic, ExpireAfter: 7 * 24 * time.Hour}
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	typ, o := collOptions(t, s, topic)
	if typ != "timeseries" {
		t.Fatalf("type %q, want timeseries", typ)
	}
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"timeseries", "timeField"}, "ts"},
		{[]string{"timeseries", "metaField"}, "meta"},
		{[]string{"timeseries", "granularity"}, "seconds"},
	} {
		if got, _ := o.Lookup(c.path...).StringValueOK(); got != c.want {
			t.Errorf("options %v: %q, want %q (%s)", c.path, got, c.want, o)
		}
	}
	if got, _ := o.Lookup("expireAfterSeconds").AsInt64OK(); got != 604800 {
		t.Fatalf("expireAfterSeconds %s, want 604800", o.Lookup("expireAfterSeconds"))
	}

	// Indexes, as listIndexes shows them on a time-series collection.
	idx, err := s.Database().Collection(topic).Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, ix := range idx {
		keys[ix.Name] = extJSON(t, ix.KeysDocument)
	}
	if want := extJSON(t, bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}); keys[IndexDeviceTime] != want {
		t.Errorf("index %s: %q, want %s (all: %v)", IndexDeviceTime, keys[IndexDeviceTime], want, keys)
	}
	if _, ok := keys[LegacyIndexSource]; ok {
		t.Errorf("the legacy index %s exists: %v", LegacyIndexSource, keys)
	}

	// Idempotent: nothing to change.
	m.Reset()
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Commands("create")) + len(m.Commands("collMod")); n != 0 {
		t.Fatalf("second Ensure sent %d create or collMod commands", n)
	}

	// A new TTL is applied with collMod and logged; 0 turns it off.
	for _, c := range []struct {
		ttl  time.Duration
		want int64 // -1: absent
	}{{24 * time.Hour, 86400}, {0, -1}, {time.Hour, 3600}} {
		spec.ExpireAfter = c.ttl
		if err := s.Ensure(ctx, spec); err != nil {
			t.Fatalf("Ensure with TTL %v: %v", c.ttl, err)
		}
		_, o := collOptions(t, s, topic)
		got, ok := o.Lookup("expireAfterSeconds").AsInt64OK()
		if c.want < 0 && ok || c.want >= 0 && got != c.want {
			t.Fatalf("after TTL %v, expireAfterSeconds %s, want %d", c.ttl, o.Lookup("expireAfterSeconds"), c.want)
		}
	}
	if n := len(m.Commands("collMod")); n != 3 {
		t.Fatalf("%d collMod commands, want 3", n)
	}
	changes := 0
	for _, msg := range rec.messages() {
		if strings.Contains(msg, "changed the collection's TTL") {
			changes++
		}
	}
	if changes != 3 {
		t.Fatalf("%d TTL changes logged, want 3: %q", changes, rec.messages())
	}

	// A different granularity is refused, whichever way.
	for _, g := range []string{GranularityMinutes, GranularityHours} {
		err := s.Ensure(ctx, CollectionSpec{Name: topic, Granularity: g, ExpireAfter: time.Hour})
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "can only increase") {
			t.Fatalf("Ensure with granularity %s: %v, want ErrShape", g, err)
		}
	}
}

func TestRealEnsureCustomBucketing(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	if major, minor := serverVersion(t, s); major < 6 || major == 6 && minor < 3 {
		t.Skipf("custom bucketing needs MongoDB 6.3 or later, the server is %d.%d", major, minor)
	}
	ctx := testCtx(t)
	spec := CollectionSpec{Name: topic, BucketMaxSpan: 6 * time.Hour}
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_, o := collOptions(t, s, topic)
	for _, key := range []string{"bucketMaxSpanSeconds", "bucketRoundingSeconds"} {
		if got, _ := o.Lookup("timeseries", key).AsInt64OK(); got != 21600 {
			t.Errorf("%s %s, want 21600 (%s)", key, o.Lookup("timeseries", key), o)
		}
	}
	if err := s.Ensure(ctx, spec); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); !errors.Is(err, ErrShape) {
		t.Fatalf("Ensure with a granularity on custom bucketing: %v, want ErrShape", err)
	}
}

func TestRealEnsureRefusesPlainCollection(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	if err := s.Database().CreateCollection(ctx, topic); err != nil {
		t.Fatal(err)
	}
	err := s.Ensure(ctx, CollectionSpec{Name: topic})
	if !errors.Is(err, ErrNotTimeSeries) || !strings.Contains(err.Error(), s.Database().Name()+"."+topic) {
		t.Fatalf("Ensure on a plain collection: %v, want ErrNotTimeSeries naming it", err)
	}
}

// realData writes, for press-01 and press-02, ten samples 10 s apart from
// t0 (seq and offset i, partitions 0 and 1): pressure i as a float for
// press-01 and 10·i for press-02, cycles i as an integer, running; sample 7
// of press-01 has no pressure (an errors entry).
func realData(t *testing.T, s *Store) []Doc {
	t.Helper()
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic, ExpireAfter: 365 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	var docs []Doc
	for d, dev := range []string{"press-01", "press-02"} {
		for i := range 10 {
			smp := devices.Sample{
				Factory: "plant-a", Class: "press", Device: dev,
				Time: t0.Add(time.Duration(i) * 10 * time.Second), Seq: uint64(i),
				Fields: map[string]devices.Value{
					"pressure": devices.Float64Value(float64(i * (1 + 9*d))),
					"cycles":   devices.Int64Value(int64(i)),
					"running":  devices.BoolValue(true),
				},
			}
			if d == 1 { // as a version 2 sample carries them
				smp.Tags = map[string]string{"line": "line-3", "asset_id": "P-1107"}
				smp.Units = map[string]string{"pressure": "bar"}
			}
			if d == 0 && i == 7 {
				delete(smp.Fields, "pressure")
				smp.Errors = map[string]string{"pressure": "modbus exception 2 (illegal data address)"}
			}
			docs = append(docs, Doc{Sample: smp, Partition: int32(d), Offset: int64(i)})
		}
	}
	res, err := s.Write(ctx, topic, docs)
	if err != nil || res.Inserted != len(docs) || len(res.Failed) != 0 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	return docs
}

func TestRealQueries(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	docs := realData(t, s)

	t.Run("Latest", func(t *testing.T) {
		for _, c := range []struct {
			filter []string
			want   []devices.Sample
		}{
			{nil, []devices.Sample{docs[9].Sample, docs[19].Sample}},
			{[]string{"press-02", "press-09"}, []devices.Sample{docs[19].Sample}},
		} {
			got, err := s.Latest(ctx, topic, c.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("Latest(%v): %d samples, want %d", c.filter, len(got), len(c.want))
			}
			for i := range got {
				if err := sameSample(got[i], c.want[i]); err != nil {
					t.Errorf("Latest(%v) sample %d: %v", c.filter, i, err)
				}
			}
		}
	})

	t.Run("Window", func(t *testing.T) {
		for _, c := range []struct {
			name, device, field, unit string
			bin                       int
			to                        time.Duration
			want                      []Bucket
		}{
			// Minute 0 holds samples 0-5, minute 1 samples 6-9 without 7.
			{"float per minute", "press-01", "pressure", "minute", 1, 100 * time.Second, []Bucket{
				{Start: t0, Min: 0, Avg: 2.5, Max: 5, Count: 6},
				{Start: t0.Add(time.Minute), Min: 6, Avg: 23.0 / 3, Max: 9, Count: 3},
			}},
			{"integers, 30 s from a range", "press-02", "cycles", "second", 30, 60 * time.Second, []Bucket{
				{Start: t0, Min: 0, Avg: 1, Max: 2, Count: 3},
				{Start: t0.Add(30 * time.Second), Min: 3, Avg: 4, Max: 5, Count: 3},
			}},
			{"hour", "press-02", "pressure", "hour", 1, time.Hour, []Bucket{{Start: t0, Min: 0, Avg: 45, Max: 90, Count: 10}}},
			{"bools are not numbers", "press-01", "running", "hour", 1, time.Hour, nil},
			{"no such field", "press-01", "absent", "hour", 1, time.Hour, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := s.Window(ctx, topic, c.device, c.field, t0, t0.Add(c.to), c.unit, c.bin)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(c.want) {
					t.Fatalf("Window: %+v, want %+v", got, c.want)
				}
				for i := range got {
					g, w := got[i], c.want[i]
					if !g.Start.Equal(w.Start) || g.Min != w.Min || g.Max != w.Max || g.Count != w.Count || math.Abs(g.Avg-w.Avg) > 1e-9 {
						t.Errorf("bucket %d: %+v, want %+v", i, g, w)
					}
				}
			})
		}
	})

	t.Run("Range", func(t *testing.T) {
		got, err := s.Range(ctx, topic, "press-01", t0.Add(15*time.Second), t0.Add(75*time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []devices.Sample{docs[2].Sample, docs[3].Sample, docs[4].Sample, docs[5].Sample, docs[6].Sample, docs[7].Sample}
		if len(got) != len(want) {
			t.Fatalf("Range: %d samples, want %d", len(got), len(want))
		}
		for i := range got {
			if err := sameSample(got[i], want[i]); err != nil {
				t.Errorf("sample %d: %v", i, err)
			}
		}
		if got, _ := s.Range(ctx, topic, "press-01", t0, t0.Add(time.Hour), 3); len(got) != 3 || got[2].Seq != 2 {
			t.Fatalf("Range with limit 3: %+v", got)
		}
	})

	t.Run("by tag", func(t *testing.T) {
		c := s.Database().Collection(topic)
		n, err := c.CountDocuments(ctx, bson.D{{Key: "meta.tags.line", Value: "line-3"}})
		if err != nil || n != 10 {
			t.Fatalf("documents with meta.tags.line line-3: %d (%v), want press-02's 10", n, err)
		}
		raw, err := c.FindOne(ctx, bson.D{{Key: "meta.device", Value: "press-02"}}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		// MongoDB may return meta's fields in another order than
		// written: compare them one by one.
		for path, want := range map[string]string{"tags.line": "line-3", "tags.asset_id": "P-1107", "units.pressure": "bar"} {
			keys := append([]string{"meta"}, strings.Split(path, ".")...)
			if got, ok := raw.Lookup(keys...).StringValueOK(); !ok || got != want {
				t.Errorf("meta.%s = %s, want %q", path, raw.Lookup(keys...), want)
			}
		}
	})

	t.Run("offsets", func(t *testing.T) {
		extra := Doc{Sample: sample("press-01", 100, nil), Partition: 0, Offset: 10}
		rest, err := s.UnstoredSamples(ctx, topic, append(slices.Clone(docs), extra))
		if err != nil || len(rest) != 1 || rest[0].Offset != 10 {
			t.Fatalf("UnstoredSamples: %+v, %v; want only offset 10", rest, err)
		}
	})
}

// TestRealDuplicatesAccepted shows why replay detection cannot rely on
// _id: a time-series collection stores the same document twice, and even
// two documents with the same _id, where FerretDB (and a regular
// collection) refuses the second.
func TestRealDuplicatesAccepted(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	docs := realData(t, s)
	res, err := s.Write(ctx, topic, docs)
	if err != nil || res.Inserted != len(docs) {
		t.Fatalf("second Write of the same documents: %+v, %v", res, err)
	}
	c := s.Database().Collection(topic)
	if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != int64(2*len(docs)) {
		t.Fatalf("collection holds %d (%v), want %d: each document twice", n, err, 2*len(docs))
	}
	id := bson.NewObjectID()
	dup := bson.D{{Key: "_id", Value: id}, {Key: "ts", Value: bson.NewDateTimeFromTime(t0)}, {Key: "meta", Value: bson.D{{Key: "device", Value: "x"}}}}
	if _, err := c.InsertMany(ctx, []any{dup, dup}); err != nil {
		t.Fatalf("two documents with one _id: %v, want both accepted", err)
	}
	if n, err := c.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}); err != nil || n != 2 {
		t.Fatalf("documents with _id %s: %d (%v), want 2", id, n, err)
	}
	if rest, err := s.UnstoredSamples(ctx, topic, docs); err != nil || len(rest) != 0 {
		t.Fatalf("UnstoredSamples after the replay: %d left (%v), want 0", len(rest), err)
	}
}

// TestRealWriteValues checks that every kind of value reads back from a
// time-series collection with its type, and that values without a
// faithful BSON form are under errors.
func TestRealWriteValues(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	smp := sample("press-01", 0, map[string]devices.Value{
		"running":  devices.BoolValue(false),
		"offset":   devices.Int64Value(math.MinInt64),
		"big":      devices.Uint64Value(math.MaxInt64),
		"pressure": devices.Float64Value(-0.25),
		"model":    devices.StringValue("PX-200 ü"),
		"inf":      devices.Float64Value(math.Inf(-1)),
		"nan":      devices.Float64Value(math.NaN()),
		"huge":     devices.Uint64Value(math.MaxInt64 + 1),
	})
	res, err := s.Write(ctx, topic, []Doc{{Sample: smp}})
	if err != nil || res.Inserted != 1 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	got, err := s.Range(ctx, topic, "press-01", t0, t0.Add(time.Second), 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("Range: %v, %v", got, err)
	}
	wantFields := map[string]devices.Value{
		"running":  devices.BoolValue(false),
		"offset":   devices.Int64Value(math.MinInt64),
		"big":      devices.Int64Value(math.MaxInt64),
		"pressure": devices.Float64Value(-0.25),
		"model":    devices.StringValue("PX-200 ü"),
	}
	for name, w := range wantFields {
		if v := got[0].Fields[name]; v.Kind() != w.Kind() || !v.Equal(w) {
			t.Errorf("%s read back as %v (%v), want %v (%v)", name, v, v.Kind(), w, w.Kind())
		}
	}
	wantErrs := map[string]string{
		"inf":  "devices: value is not a finite number: -Inf",
		"nan":  "devices: value is not a finite number: NaN",
		"huge": OverflowPrefix + "9223372036854775808",
	}
	if len(got[0].Fields) != len(wantFields) || len(got[0].Errors) != len(wantErrs) {
		t.Fatalf("read back fields %v, errors %q", got[0].Fields, got[0].Errors)
	}
	for name, w := range wantErrs {
		if got[0].Errors[name] != w {
			t.Errorf("errors.%s = %q, want %q", name, got[0].Errors[name], w)
		}
	}
}

func TestRealOffsets(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	want := map[int32]int64{0: 100, 5: 3}
	if err := s.SaveOffsets(ctx, "sink", topic, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadOffsets(ctx, "sink", topic)
	if err != nil || !mapsEqual(got, want) {
		t.Fatalf("LoadOffsets: %v, %v; want %v", got, err, want)
	}
}
