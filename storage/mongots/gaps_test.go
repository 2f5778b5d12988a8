package mongots

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
)

// seqDoc is the sample of device with seq at t0 + sec seconds.
func seqDoc(device string, seq uint64, sec int) Doc {
	s := sample(device, sec, map[string]devices.Value{"pressure": devices.Float64Value(1)})
	s.Seq = seq
	return Doc{Sample: s, Offset: int64(100 + sec)}
}

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// gapsFixture returns the samples of four devices, the seqs a test
// removes (deletes after writing, or never writes), and what Gaps finds in
// [0s, 60s) after that.
func gapsFixture() ([]Doc, map[string][]uint64, []DeviceGaps) {
	var docs []Doc
	for i := range 20 {
		docs = append(docs, seqDoc("press-01", uint64(i), i), seqDoc("press-02", uint64(i), i))
	}
	// press-02: 7 and 8 stored twice (a replayed stretch), 12 three times.
	docs = append(docs, seqDoc("press-02", 7, 7), seqDoc("press-02", 8, 8), seqDoc("press-02", 12, 12), seqDoc("press-02", 12, 12))
	// press-03: seq 100..109, then its gateway's spool is wiped: 0..4.
	for i := range 10 {
		docs = append(docs, seqDoc("press-03", uint64(100+i), i))
	}
	for i := range 5 {
		docs = append(docs, seqDoc("press-03", uint64(i), 10+i))
	}
	// press-04: continuous, but only before the range asked.
	for i := range 3 {
		docs = append(docs, seqDoc("press-04", uint64(i), -10+i))
	}
	// press-01 loses 3, 4, 5 and 10; press-03 loses 102 and 2.
	removed := map[string][]uint64{"press-01": {3, 4, 5, 10}, "press-03": {102, 2}}
	want := []DeviceGaps{
		{
			Device: "press-01", Seen: 16, FirstSeq: 0, LastSeq: 19, FirstTime: at(0), LastTime: at(19),
			Missing: []SeqRange{{3, 5}, {10, 10}}, MissingRanges: 2, MissingSamples: 4,
		},
		{
			Device: "press-02", Seen: 24, FirstSeq: 0, LastSeq: 19, FirstTime: at(0), LastTime: at(19),
			Duplicates: []SeqRange{{7, 8}, {12, 12}}, DuplicateRanges: 2, DuplicateSamples: 4,
		},
		{
			Device: "press-03", Seen: 13, FirstSeq: 100, LastSeq: 4, FirstTime: at(0), LastTime: at(14),
			Missing: []SeqRange{{102, 102}, {2, 2}}, MissingRanges: 2, MissingSamples: 2,
			Restarts: []SeqRestart{{From: 109, FromTime: at(9), To: 0, Time: at(10)}}, RestartCount: 1,
		},
	}
	return docs, removed, want
}

// TestGaps writes four devices' samples to the stand-in, deletes some on
// purpose and checks what Gaps finds, and the one find it sends.
func TestGaps(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	docs, removed, want := gapsFixture()
	if res, err := s.Write(ctx, topic, docs); err != nil || len(res.Failed) != 0 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	for dev, seqs := range removed {
		del, err := s.Database().Collection(topic).DeleteMany(ctx, bson.D{
			{Key: "meta.device", Value: dev}, {Key: "seq", Value: bson.D{{Key: "$in", Value: seqs}}},
		})
		if err != nil || del.DeletedCount != int64(len(seqs)) {
			t.Fatalf("delete %v of %s: %+v, %v", seqs, dev, del, err)
		}
	}

	m.Reset()
	got, err := s.Gaps(ctx, topic, "", at(0), at(60))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Gaps:\n got %+v\nwant %+v", got, want)
	}
	for _, g := range got {
		if lossless := g.Device == "press-02"; g.Lossless() != lossless {
			t.Errorf("%s: Lossless() = %v, want %v", g.Device, g.Lossless(), lossless)
		}
	}
	projection := bson.D{{Key: "_id", Value: int32(0)}, {Key: "meta.device", Value: int32(1)}, {Key: "seq", Value: int32(1)}, {Key: "ts", Value: int32(1)}}
	sort := bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}
	span := bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(at(0))}, {Key: "$lt", Value: bson.NewDateTimeFromTime(at(60))}}
	assertCommand(t, onlyCommand(t, m, "find"), bson.D{
		{Key: "find", Value: topic},
		{Key: "filter", Value: bson.D{{Key: "ts", Value: span}}},
		{Key: "projection", Value: projection},
		{Key: "sort", Value: sort},
	})

	// One device, part of the time: seqs missing before the first sample
	// in the range are not seen.
	m.Reset()
	got, err = s.Gaps(ctx, topic, "press-01", at(4), at(15))
	if err != nil {
		t.Fatal(err)
	}
	want = []DeviceGaps{{
		Device: "press-01", Seen: 8, FirstSeq: 6, LastSeq: 14, FirstTime: at(6), LastTime: at(14),
		Missing: []SeqRange{{10, 10}}, MissingRanges: 1, MissingSamples: 1,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Gaps of press-01 in [4s, 15s):\n got %+v\nwant %+v", got, want)
	}
	span = bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(at(4))}, {Key: "$lt", Value: bson.NewDateTimeFromTime(at(15))}}
	assertCommand(t, onlyCommand(t, m, "find"), bson.D{
		{Key: "find", Value: topic},
		{Key: "filter", Value: bson.D{{Key: "meta.device", Value: "press-01"}, {Key: "ts", Value: span}}},
		{Key: "projection", Value: projection},
		{Key: "sort", Value: sort},
	})

	// Nothing in the range: no device, no error.
	if got, err := s.Gaps(ctx, topic, "", at(-60), at(-30)); err != nil || len(got) != 0 {
		t.Fatalf("Gaps of an empty range: %+v, %v", got, err)
	}
}

// TestRealGaps runs Gaps on a time-series collection of the MongoDB in
// MONGODB_URI, the removed samples never written (MongoDB 6.0 deletes from
// a time-series collection by metaField only), and logs the plan of its
// find.
func TestRealGaps(t *testing.T) {
	s, _ := realStore(t, DefaultOptions())
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	docs, removed, want := gapsFixture()
	kept := slices.DeleteFunc(docs, func(d Doc) bool { return slices.Contains(removed[d.Sample.Device], d.Sample.Seq) })
	if res, err := s.Write(ctx, topic, kept); err != nil || len(res.Failed) != 0 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	got, err := s.Gaps(ctx, topic, "", at(0), at(60))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Gaps:\n got %+v\nwant %+v", got, want)
	}
	plan, err := s.Database().RunCommand(ctx, bson.D{
		{Key: "explain", Value: bson.D{
			{Key: "find", Value: topic},
			{Key: "filter", Value: gapsFilter("", at(0), at(60))},
			{Key: "projection", Value: bson.D{{Key: "_id", Value: 0}, {Key: "meta.device", Value: 1}, {Key: "seq", Value: 1}, {Key: "ts", Value: 1}}},
			{Key: "sort", Value: bson.D{{Key: "meta.device", Value: 1}, {Key: "ts", Value: -1}}},
		}},
		{Key: "verbosity", Value: "queryPlanner"},
	}).Raw()
	if err != nil {
		t.Logf("explain of Gaps's find: %v", err)
		return
	}
	t.Logf("plan of Gaps's find: %s", plan.Lookup("queryPlanner"))
}

func TestGapsCorruptDoc(t *testing.T) {
	opts, _ := standIn()
	s, _ := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.Ensure(ctx, CollectionSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Database().Collection(topic).InsertOne(ctx, bson.D{
		{Key: "ts", Value: bson.NewDateTimeFromTime(t0)},
		{Key: "meta", Value: bson.D{{Key: "device", Value: "press-01"}}},
		{Key: "seq", Value: "seven"},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Gaps(ctx, topic, "", t0, t0.Add(time.Hour))
	if !errors.Is(err, ErrCorruptDoc) || !containsAll(err.Error(), s.Database().Name()+"."+topic, "press-01", "seq is") {
		t.Fatalf("Gaps over a seq that is a string: %v, want ErrCorruptDoc naming the collection, the device and seq", err)
	}
}

func TestGapsArguments(t *testing.T) {
	s, _ := ferretStore(t, Options{})
	ctx := testCtx(t)
	for name, err := range map[string]error{
		"empty range":   func() error { _, err := s.Gaps(ctx, topic, "", t0, t0); return err }(),
		"no collection": func() error { _, err := s.Gaps(ctx, "", "", t0, t0.Add(time.Second)); return err }(),
	} {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// feed gives r the samples of dev, (seq, second) pairs in time order, as
// Gaps's find returns them: latest first.
func feed(r *gapsReader, dev string, samples [][2]int) {
	for i := len(samples) - 1; i >= 0; i-- {
		r.feed(dev, uint64(samples[i][0]), at(samples[i][1]))
	}
}

func TestGapsReader(t *testing.T) {
	t.Run("same ts, seqs in any order", func(t *testing.T) {
		var r gapsReader
		// Two samples share second 2 (a gateway clock's resolution), sent
		// in the wrong order within it.
		r.feed("d", 4, at(3))
		r.feed("d", 2, at(2))
		r.feed("d", 3, at(2))
		r.feed("d", 1, at(1))
		got := r.finish()
		if len(got) != 1 || !got[0].Lossless() || got[0].DuplicateRanges != 0 || got[0].Seen != 4 || got[0].FirstSeq != 1 || got[0].LastSeq != 4 {
			t.Fatalf("got %+v, want 4 continuous samples", got)
		}
	})
	t.Run("duplicates merge only across continuous seqs", func(t *testing.T) {
		var r gapsReader
		// 2 and 3 twice, 4; restart; 0, 1, 2, 4 twice: 2-3 and 4, not
		// one range 2-4.
		feed(&r, "d", [][2]int{{2, 0}, {2, 0}, {3, 1}, {3, 1}, {4, 2}, {0, 3}, {1, 4}, {2, 5}, {4, 7}, {4, 7}})
		g := r.finish()[0]
		want := []SeqRange{{2, 3}, {4, 4}}
		if !reflect.DeepEqual(g.Duplicates, want) || g.DuplicateRanges != 2 || g.DuplicateSamples != 3 ||
			!reflect.DeepEqual(g.Missing, []SeqRange{{3, 3}}) || g.RestartCount != 1 {
			t.Fatalf("got %+v, want duplicates %v, missing 3, one restart", g, want)
		}
	})
	t.Run("lists are bounded, earliest kept", func(t *testing.T) {
		const gaps = 2*MaxReportedRanges + 500
		var r gapsReader
		var samples [][2]int
		for i := range gaps + 1 {
			samples = append(samples, [2]int{2 * i, i}) // every odd seq missing
		}
		// Then seq 1, 0, 0 again and again: a restart to 1 (from the last
		// even seq), then restarts from 1 to 0, each 0 a duplicate.
		for i := range gaps {
			base := gaps + 1 + 2*i
			samples = append(samples, [2]int{1, base}, [2]int{0, base + 1}, [2]int{0, base + 1})
		}
		feed(&r, "d", samples)
		g := r.finish()[0]
		if len(g.Missing) != MaxReportedRanges || g.MissingRanges != gaps || g.MissingSamples != gaps {
			t.Fatalf("%d missing ranges kept, %d counted, %d samples; want %d, %d, %d", len(g.Missing), g.MissingRanges, g.MissingSamples, MaxReportedRanges, gaps, gaps)
		}
		for i, r := range g.Missing {
			if want := (SeqRange{uint64(2*i + 1), uint64(2*i + 1)}); r != want {
				t.Fatalf("Missing[%d] = %v, want %v", i, r, want)
			}
		}
		if len(g.Restarts) != MaxReportedRanges || g.RestartCount != gaps+1 ||
			g.Restarts[0].From != 2*gaps || g.Restarts[0].To != 1 || g.Restarts[1].From != 1 || g.Restarts[1].To != 0 {
			t.Fatalf("%d restarts kept, %d counted, first two %+v", len(g.Restarts), g.RestartCount, g.Restarts[:2])
		}
		if len(g.Duplicates) != MaxReportedRanges || g.DuplicateRanges != gaps || g.DuplicateSamples != gaps {
			t.Fatalf("%d duplicate ranges kept, %d counted, %d samples", len(g.Duplicates), g.DuplicateRanges, g.DuplicateSamples)
		}
	})
}

func TestSeqRangeString(t *testing.T) {
	for r, want := range map[SeqRange]string{{101, 105}: "101-105 (5)", {7, 7}: "7 (1)"} {
		if got := fmt.Sprint(r); got != want {
			t.Errorf("%#v prints %q, want %q", r, got, want)
		}
	}
}
