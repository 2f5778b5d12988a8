package mongots

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/factorywire/factorywire/devices"
)

// TestDeviceStatus runs against the FerretDB stand-in: entries move only
// forward in time, errors_since marks the start of a run of samples with
// errors, and Status reads exactly one topic's devices. It runs the
// commands MongoDB is sent (the guard in the update's filter) and those
// of the stand-in mode (the stored ts read first, the update by _id).
func TestDeviceStatus(t *testing.T) {
	for _, mode := range []struct {
		name       string
		timeSeries bool
	}{{"mongodb-commands", true}, {"stand-in", false}} {
		t.Run(mode.name, func(t *testing.T) { testDeviceStatus(t, mode.timeSeries) })
	}
}

func testDeviceStatus(t *testing.T, timeSeries bool) {
	opts, _ := standIn()
	opts.TimeSeries = timeSeries
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	smp := func(topicClass, device string, seq int, errs map[string]string) devices.Sample {
		x := sample(device, seq, map[string]devices.Value{"pressure": devices.Float64Value(float64(seq))})
		x.Class, x.Errors = topicClass, errs
		return x
	}
	st := func(topic string, x devices.Sample, since time.Time) DeviceStatus {
		return DeviceStatus{Topic: topic, Sample: x, ErrorsSince: since}
	}
	bad := map[string]string{"temperature": "modbus exception 2 (illegal data address)"}
	tagged := func(x devices.Sample) devices.Sample {
		x.Tags, x.Units = map[string]string{"line": "line-3"}, map[string]string{"pressure": "bar"}
		return x
	}
	// Neighbouring topics whose _ids sort next to plant-a.press's.
	if err := s.UpdateStatus(ctx, []DeviceStatus{
		st(topic, smp("press", "press-01", 5, nil), time.Time{}),
		st(topic, tagged(smp("press", "press-02", 7, bad)), time.Time{}),
		st("plant-a.press-x", smp("press-x", "press-01", 1, nil), time.Time{}),
		st("plant-a.press2", smp("press2", "press-01", 1, nil), time.Time{}),
	}); err != nil {
		t.Fatal(err)
	}
	// An older sample (a replayed batch) does not move press-01 back; a
	// newer one with errors moves press-01 forward; press-02's errors go on
	// since their first sample; press-03 is new.
	m.Reset()
	if err := s.UpdateStatus(ctx, []DeviceStatus{
		st(topic, smp("press", "press-01", 3, nil), time.Time{}),
		st(topic, tagged(smp("press", "press-02", 8, bad)), t0.Add(7*time.Second)),
		st(topic, smp("press", "press-03", 1, bad), time.Time{}),
	}); err != nil {
		t.Fatalf("UpdateStatus with an older sample: %v, want the update skipped", err)
	}
	// To MongoDB the guard is in the filter (the stand-in stops at the
	// refused update and is sent the rest again; MongoDB applies all of
	// the first command). In the stand-in mode the entries' ts are read
	// first and the older sample is not sent.
	up := m.Commands("update")[0]
	first := up.Lookup("updates").Array().Index(0).Document()
	want := bson.D{{Key: "_id", Value: topic + "/press-01"}, {Key: "ts", Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t0.Add(3 * time.Second))}}}}
	if !timeSeries {
		want = bson.D{{Key: "_id", Value: topic + "/press-02"}}
		if n := len(m.Commands("find")); n != 1 {
			t.Errorf("%d finds before the updates, want 1 (the entries' ts)", n)
		}
	}
	if got, want := extJSON(t, first.Lookup("q")), extJSON(t, want); got != want {
		t.Errorf("update q %s, want %s", got, want)
	}
	if got := field(t, up, "writeConcern"); got != extJSON(t, bson.D{{Key: "w", Value: "majority"}}) {
		t.Errorf("writeConcern %s, want majority", got)
	}

	got, err := s.ReadStatus(ctx, topic, []string{"press-01", "press-02", "press-03", "press-04"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := map[string]struct {
		seq    uint64
		nerr   int
		since  time.Time
		errors map[string]string
	}{
		"press-01": {5, 0, time.Time{}, nil},
		"press-02": {8, 1, t0.Add(7 * time.Second), bad},
		"press-03": {1, 1, t0.Add(time.Second), bad},
	}
	if len(got) != len(wantStatus) {
		t.Fatalf("ReadStatus: %d entries, want %d: %+v", len(got), len(wantStatus), got)
	}
	for d, w := range wantStatus {
		g := got[d]
		if g.Topic != topic || g.Sample.Device != d || g.Sample.Seq != w.seq || g.ErrorCount != w.nerr || !g.ErrorsSince.Equal(w.since) ||
			!maps.Equal(g.Sample.Errors, w.errors) || g.Sample.Fields["pressure"].Float64() != float64(w.seq) || g.UpdatedAt.IsZero() {
			t.Errorf("ReadStatus[%s] = %+v, want seq %d, %d errors since %v", d, g, w.seq, w.nerr, w.since)
		}
	}
	if g := got["press-02"].Sample; g.Tags["line"] != "line-3" || g.Units["pressure"] != "bar" || len(got["press-01"].Sample.Tags) != 0 {
		t.Errorf("tags and units: press-02 %v %v, press-01 %v; want press-02's only", g.Tags, g.Units, got["press-01"].Sample.Tags)
	}

	// An entry marked New that exists (another writer made it) is updated
	// instead, still only forward in time.
	newer := st(topic, smp("press", "press-01", 6, nil), time.Time{})
	newer.New = true
	older := st(topic, smp("press", "press-03", 0, nil), time.Time{})
	older.New = true
	if err := s.UpdateStatus(ctx, []DeviceStatus{older, newer, st(topic, smp("press", "press-04", 2, nil), time.Time{})}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadStatus(ctx, topic, []string{"press-01", "press-03", "press-04"}); err != nil || got["press-01"].Sample.Seq != 6 ||
		got["press-03"].Sample.Seq != 1 || got["press-04"].Sample.Seq != 2 {
		t.Fatalf("after inserts of existing entries: %+v, %v; want press-01 at 6, press-03 still at 1, press-04 at 2", got, err)
	}

	// press-02 recovers: errors and errors_since go, and so do its tags
	// and units, which its newest sample no longer has.
	if err := s.UpdateStatus(ctx, []DeviceStatus{st(topic, smp("press", "press-02", 9, nil), t0)}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Status(ctx, topic, false)
	if err != nil || len(all) != 4 || all[0].Sample.Device != "press-01" || all[3].Sample.Device != "press-04" {
		t.Fatalf("Status: %+v, %v; want press-01..04 of %s only", all, err, topic)
	}
	if all[1].ErrorCount != 0 || !all[1].ErrorsSince.IsZero() || len(all[1].Sample.Errors) != 0 || all[1].Sample.Tags != nil || all[1].Sample.Units != nil {
		t.Fatalf("press-02 after recovering: %+v", all[1])
	}
	withErrors, err := s.Status(ctx, topic, true)
	if err != nil || len(withErrors) != 1 || withErrors[0].Sample.Device != "press-03" {
		t.Fatalf("Status with errors: %+v, %v; want press-03", withErrors, err)
	}
}

// TestWithPause: a write of status entries under WithPause calls the
// pause before each bulk command it sends (the stand-in's commands carry
// 24 statements), and stops at the pause's error, sending nothing more.
func TestWithPause(t *testing.T) {
	opts, _ := standIn()
	s, m := ferretStore(t, opts)
	ctx := testCtx(t)
	var updates []DeviceStatus
	for i := range 60 {
		x := sample(fmt.Sprintf("press-%02d", i), 1, map[string]devices.Value{"pressure": devices.Float64Value(1)})
		updates = append(updates, DeviceStatus{Topic: topic, Sample: x})
	}
	if err := s.UpdateStatus(ctx, updates); err != nil { // the entries exist: updates from now on
		t.Fatal(err)
	}
	for i := range updates {
		updates[i].Sample.Seq, updates[i].Sample.Time = 2, updates[i].Sample.Time.Add(time.Second)
	}
	m.Reset()
	pauses := 0
	if err := s.UpdateStatus(WithPause(ctx, func(context.Context) error { pauses++; return nil }), updates); err != nil {
		t.Fatal(err)
	}
	if sent := len(m.Commands("update")); sent != 3 || pauses != sent {
		t.Fatalf("%d pauses for %d update commands: want one before each of 3 (60 statements, 24 a command)", pauses, sent)
	}

	for i := range updates {
		updates[i].Sample.Seq, updates[i].Sample.Time = 3, updates[i].Sample.Time.Add(time.Second)
	}
	m.Reset()
	stop := errors.New("stop here")
	pauses = 0
	err := s.UpdateStatus(WithPause(ctx, func(context.Context) error {
		if pauses++; pauses == 2 {
			return stop
		}
		return nil
	}), updates)
	if !errors.Is(err, stop) {
		t.Fatalf("UpdateStatus: %v, want the pause's error", err)
	}
	if sent := len(m.Commands("update")); sent != 1 {
		t.Fatalf("%d update commands sent: want 1, the one before the pause that failed", sent)
	}
}
