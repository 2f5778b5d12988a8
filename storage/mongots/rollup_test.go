package mongots

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
)

func TestRollupFold(t *testing.T) {
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	smp := func(seq int, at time.Duration, x float64) *devices.Sample {
		s := sample("press-01", 0, map[string]devices.Value{"pressure": devices.Float64Value(x), "running": devices.BoolValue(true)})
		s.Seq, s.Time = uint64(seq), base.Add(at)
		return &s
	}
	r := NewRollup(topic, PeriodMinute, smp(1, 5*time.Second, 3))
	for _, c := range []struct {
		s    *devices.Sample
		want bool
	}{
		{smp(1, 5*time.Second, 3), true},
		{smp(2, 10*time.Second, 1), true},
		{smp(2, 10*time.Second, 1), false},  // consumed again
		{smp(1, 5*time.Second, 3), false},   // delivered again
		{smp(3, 70*time.Second, 9), false},  // the next minute
		{smp(0, 20*time.Second, 5), true},   // seq started again, later ts
		{smp(9, 15*time.Second, 99), false}, // the clock went back
	} {
		if got := r.Fold(c.s); got != c.want {
			t.Errorf("Fold(seq %d at %v) = %v, want %v", c.s.Seq, c.s.Time, got, c.want)
		}
	}
	want := FieldStats{Count: 3, Min: 1, Max: 5, Sum: 9, First: 3, Last: 5}
	if r.Count != 3 || r.Fields["pressure"] != want || len(r.Fields) != 1 || !r.FirstTS.Equal(base.Add(5*time.Second)) || r.LastSeq != 0 {
		t.Fatalf("rollup %+v, want pressure %+v and no bool field", r, want)
	}
}

// TestRollupsStore runs against the FerretDB stand-in: rollups round-trip,
// a stale revision conflicts, and RollupWindow combines periods into bins
// as Window would.
func TestRollupsStore(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	if err := s.EnsureRollups(ctx, topic, PeriodMinute, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	assertCommand(t, onlyCommand(t, m, "createIndexes"), bson.D{
		{Key: "createIndexes", Value: topic + "_1m"},
		{Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: bson.D{{Key: "meta.device", Value: int32(1)}, {Key: "t", Value: int32(1)}}}, {Key: "name", Value: "meta.device_1_t_1"}}}},
	})
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var rs []*Rollup
	for minute := range 10 {
		var r *Rollup
		for k := range 6 { // every 10 s, value = minute*10 + k
			smp := sample("press-01", 0, map[string]devices.Value{"pressure": devices.Float64Value(float64(minute*10 + k))})
			smp.Seq, smp.Time = uint64(minute*6+k), base.Add(time.Duration(minute)*time.Minute+time.Duration(k)*10*time.Second)
			if r == nil {
				r = NewRollup(topic, PeriodMinute, &smp)
			}
			r.Fold(&smp)
		}
		rs = append(rs, r)
	}
	if conflicts, err := s.SaveRollups(ctx, topic, PeriodMinute, rs); err != nil || len(conflicts) != 0 || rs[0].Rev != 1 {
		t.Fatalf("SaveRollups: %v, %v, rev %d", conflicts, err, rs[0].Rev)
	}
	keys := []RollupKey{rs[0].Key(), rs[9].Key(), {Device: "press-02", Start: base}}
	got, err := s.LoadRollups(ctx, topic, PeriodMinute, keys)
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadRollups: %v, %v; want 2", got, err)
	}
	if g := got[rs[9].Key()]; g.Count != 6 || g.Fields["pressure"] != rs[9].Fields["pressure"] || g.Rev != 1 || !g.LastTS.Equal(rs[9].LastTS) {
		t.Fatalf("loaded %+v, want %+v", g, rs[9])
	}
	// A writer holding revision 0 of minute 0 conflicts; minute 9 at its
	// revision is written.
	stale := NewRollup(topic, PeriodMinute, &devices.Sample{Device: "press-01", Time: base})
	stale.Factory, stale.Class = "plant-a", "press"
	fresh := got[rs[9].Key()].Clone()
	conflicts, err := s.SaveRollups(ctx, topic, PeriodMinute, []*Rollup{stale, fresh})
	if err != nil || len(conflicts) != 1 || conflicts[0] != rs[0].Key() || fresh.Rev != 2 {
		t.Fatalf("SaveRollups with a stale revision: conflicts %v, %v, fresh rev %d; want minute 0 refused, rev 2", conflicts, err, fresh.Rev)
	}
	// The same, for a replacement: a writer holding revision 1 of minute
	// 9 (now at 2) conflicts, and minute 1 at its revision 1 is written,
	// with the revision guard in the filter (MongoDB) or read first (the
	// stand-in mode); a rollup whose document is gone is inserted again.
	m.Reset()
	staleReplace := got[rs[9].Key()].Clone() // rev 1
	current := got[rs[0].Key()].Clone()      // rev 1
	gone := rs[5].Clone()
	if _, err := s.collection(RollupCollection(topic, PeriodMinute)).DeleteOne(ctx, bson.D{{Key: "_id", Value: rollupID(gone.Device, gone.Start)}}); err != nil {
		t.Fatal(err)
	}
	conflicts, err = s.SaveRollups(ctx, topic, PeriodMinute, []*Rollup{staleReplace, current, gone})
	if err != nil || len(conflicts) != 1 || conflicts[0] != rs[9].Key() || current.Rev != 2 || gone.Rev != 2 {
		t.Fatalf("SaveRollups of replacements: conflicts %v, %v, revs %d %d; want minute 9 refused, minutes 0 and 5 at rev 2", conflicts, err, current.Rev, gone.Rev)
	}
	// Their revisions, one find by _id each: the stand-in serves only that
	// from an index, and a rollup collection only grows there.
	finds := m.Commands("find")
	if len(finds) != 3 {
		t.Errorf("%d finds before the stand-in's replacements, want 3 (a revision each)", len(finds))
	}
	for i, r := range []*Rollup{staleReplace, current, gone} {
		if i < len(finds) {
			if got, want := field(t, finds[i], "filter"), extJSON(t, bson.D{{Key: "_id", Value: rollupID(r.Device, r.Start)}}); got != want {
				t.Errorf("find %d: filter %s, want %s", i, got, want)
			}
		}
	}
	if after, err := s.LoadRollups(ctx, topic, PeriodMinute, []RollupKey{rs[0].Key(), rs[5].Key()}); err != nil || after[rs[0].Key()].Rev != 2 || after[rs[5].Key()].Rev != 2 {
		t.Fatalf("after the replacements: %+v, %v; want both at rev 2", after, err)
	}

	// 5-minute bins over 10 minutes: two bins of 30 values each.
	buckets, err := s.RollupWindow(ctx, topic, PeriodMinute, "press-01", "pressure", base, base.Add(10*time.Minute), "minute", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(buckets) != 2 || buckets[0].Count != 30 || buckets[0].Min != 0 || buckets[0].Max != 45 || buckets[0].Avg != 22.5 ||
		buckets[1].Count != 30 || buckets[1].Min != 50 || buckets[1].Max != 95 || !buckets[1].Start.Equal(base.Add(5*time.Minute)) {
		t.Fatalf("RollupWindow: %+v", buckets)
	}
	if _, err := s.RollupWindow(ctx, topic, PeriodHour, "press-01", "pressure", base, base.Add(time.Hour), "minute", 30); err == nil {
		t.Fatal("RollupWindow of 30-minute bins over hourly rollups: no error")
	}
}

// TestRollupsGuardInFilter: to MongoDB (Options.TimeSeries) a rollup's
// replacement carries its revision in the filter, with no read first,
// and a stale revision conflicts; run against the stand-in, which
// answers the same commands.
func TestRollupsGuardInFilter(t *testing.T) {
	opts, _ := standIn()
	opts.TimeSeries = true
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	smp := sample("press-01", 0, map[string]devices.Value{"pressure": devices.Float64Value(1)})
	r := NewRollup(topic, PeriodMinute, &smp)
	r.Fold(&smp)
	if conflicts, err := s.SaveRollups(ctx, topic, PeriodMinute, []*Rollup{r}); err != nil || len(conflicts) != 0 || r.Rev != 1 {
		t.Fatalf("SaveRollups: %v, %v, rev %d", conflicts, err, r.Rev)
	}
	stale := r.Clone()
	m.Reset()
	if conflicts, err := s.SaveRollups(ctx, topic, PeriodMinute, []*Rollup{r}); err != nil || len(conflicts) != 0 || r.Rev != 2 {
		t.Fatalf("SaveRollups over rev 1: %v, %v, rev %d", conflicts, err, r.Rev)
	}
	if n := len(m.Commands("find")); n != 0 {
		t.Errorf("%d finds before the replacement, want none", n)
	}
	q := m.Commands("update")[0].Lookup("updates").Array().Index(0).Document().Lookup("q")
	if got, want := extJSON(t, q), extJSON(t, bson.D{{Key: "_id", Value: rollupID(r.Device, r.Start)}, {Key: "rev", Value: int64(1)}}); got != want {
		t.Errorf("replacement q %s, want %s", got, want)
	}
	if conflicts, err := s.SaveRollups(ctx, topic, PeriodMinute, []*Rollup{stale}); err != nil || len(conflicts) != 1 || stale.Rev != 1 {
		t.Fatalf("SaveRollups over a stale rev: %v, %v, rev %d; want a conflict", conflicts, err, stale.Rev)
	}
}
