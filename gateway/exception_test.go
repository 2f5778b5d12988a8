package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
)

func TestExceptionFilter(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	minute := time.Minute
	never := time.Duration(0)
	sample := func(after time.Duration, fields map[string]devices.Value, errs map[string]string) *devices.Sample {
		return &devices.Sample{Time: t0.Add(after), Fields: fields, Errors: errs}
	}
	f64 := devices.Float64Value
	base := map[string]devices.Value{"pressure": f64(100), "temperature": f64(50), "count": devices.Uint64Value(7), "model": devices.StringValue("X")}
	with := func(name string, v devices.Value) map[string]devices.Value {
		m := map[string]devices.Value{}
		for k, v := range base {
			m[k] = v
		}
		if v.Kind() == devices.KindInvalid {
			delete(m, name)
		} else {
			m[name] = v
		}
		return m
	}
	cfg := &ExceptionConfig{
		Deadband:   map[string]Deadband{"pressure": {Absolute: 0.5}, "temperature": {Percent: 1}},
		MaxSilence: &minute,
	}
	for _, tc := range []struct {
		name string
		cfg  *ExceptionConfig
		next *devices.Sample
		want bool
	}{
		{"same values", cfg, sample(time.Second, base, nil), false},
		{"within absolute deadband", cfg, sample(time.Second, with("pressure", f64(100.5)), nil), false},
		{"beyond absolute deadband", cfg, sample(time.Second, with("pressure", f64(99.4)), nil), true},
		{"within percent deadband", cfg, sample(time.Second, with("temperature", f64(50.5)), nil), false},
		{"beyond percent deadband", cfg, sample(time.Second, with("temperature", f64(50.6)), nil), true},
		{"field without deadband: any change", cfg, sample(time.Second, with("count", devices.Uint64Value(8)), nil), true},
		{"string changed", cfg, sample(time.Second, with("model", devices.StringValue("Y")), nil), true},
		{"field gone", cfg, sample(time.Second, with("model", devices.Value{}), nil), true},
		{"kind changed", cfg, sample(time.Second, with("pressure", devices.StringValue("100")), nil), true},
		{"error appeared", cfg, sample(time.Second, with("model", devices.Value{}), map[string]string{"model": "timeout"}), true},
		{"max silence reached", cfg, sample(time.Minute, base, nil), true},
		{"just before max silence", cfg, sample(time.Minute-time.Millisecond, base, nil), false},
		{"default max silence", &ExceptionConfig{}, sample(DefaultMaxSilence, base, nil), true},
		{"max silence 0: never forced", &ExceptionConfig{MaxSilence: &never}, sample(24*time.Hour, base, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := exceptionFor(tc.cfg, nil)
			if !f.report(sample(0, base, nil)) {
				t.Fatal("the first sample was not sent")
			}
			if got := f.report(tc.next); got != tc.want {
				t.Fatalf("sent %v, want %v", got, tc.want)
			}
		})
	}
}

// TestExceptionFilterFromLastSent: the deadband is measured from the last
// sample sent, not the last polled, so a slow drift is sent once it adds
// up beyond the deadband.
func TestExceptionFilterFromLastSent(t *testing.T) {
	f := exceptionFor(&ExceptionConfig{Deadband: map[string]Deadband{"p": {Absolute: 1}}}, nil)
	var sent []float64
	for i := range 10 {
		v := 0.3 * float64(i)
		s := &devices.Sample{Time: time.Unix(int64(i), 0), Fields: map[string]devices.Value{"p": devices.Float64Value(v)}}
		if f.report(s) {
			sent = append(sent, v)
		}
	}
	// 0 sent; 0.3..0.9 within 1 of 0; 1.2 sent; 1.5..2.1 within 1; 2.4 sent.
	want := []float64{0, 1.2, 2.4}
	if len(sent) != len(want) {
		t.Fatalf("sent %v, want about %v", sent, want)
	}
	for i := range want {
		if d := sent[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("sent %v, want %v", sent, want)
		}
	}
}

// TestExceptionMerge: a device's deadband entries replace its class's
// field by field, and its max_silence the class's.
func TestExceptionMerge(t *testing.T) {
	hour, ten := time.Hour, 10*time.Second
	class := &ExceptionConfig{Deadband: map[string]Deadband{"a": {Absolute: 1}, "b": {Percent: 2}}, MaxSilence: &hour}
	dev := &ExceptionConfig{Deadband: map[string]Deadband{"b": {Absolute: 3}}, MaxSilence: &ten}
	f := exceptionFor(class, dev)
	if f.deadband["a"] != (Deadband{Absolute: 1}) || f.deadband["b"] != (Deadband{Absolute: 3}) || f.maxSilence != ten {
		t.Fatalf("merged: %+v, max_silence %s", f.deadband, f.maxSilence)
	}
	if exceptionFor(nil, nil) != nil {
		t.Fatal("a filter without any report_by_exception")
	}
	if class.Deadband["b"] != (Deadband{Percent: 2}) {
		t.Fatal("the merge changed the class's config")
	}
}

func TestCheckReportByExceptionErrors(t *testing.T) {
	neg := -time.Second
	for _, tc := range []struct {
		name string
		rbe  map[string]ExceptionConfig
		dev  *ExceptionConfig
		want string
	}{
		{"unknown class", map[string]ExceptionConfig{"pres": {}}, nil, `report_by_exception.pres: no register map`},
		{"unknown field", map[string]ExceptionConfig{"press": {Deadband: map[string]Deadband{"presure": {Absolute: 1}}}}, nil,
			`report_by_exception.press.deadband.presure: class "press" has no field "presure"`},
		{"both kinds", nil, &ExceptionConfig{Deadband: map[string]Deadband{"x": {Absolute: 1, Percent: 1}}},
			`devices[0] (d1).report_by_exception.deadband.x: absolute 1, percent 1: set exactly one`},
		{"neither kind", map[string]ExceptionConfig{"press": {Deadband: map[string]Deadband{"x": {}}}}, nil, `report_by_exception.press.deadband.x: absolute 0, percent 0`},
		{"negative", map[string]ExceptionConfig{"press": {Deadband: map[string]Deadband{"x": {Percent: -1}}}}, nil, `want a finite number above 0`},
		{"not a number", map[string]ExceptionConfig{"press": {Deadband: map[string]Deadband{"running": {Absolute: 1}}}}, nil,
			`report_by_exception.press.deadband.running: field "running" is a bool, not a number`},
		{"negative max silence", nil, &ExceptionConfig{MaxSilence: &neg}, `devices[0] (d1).report_by_exception.max_silence -1s: must not be negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Factory, cfg.DataDir, cfg.ClassesDir = "plant-a", t.TempDir(), "../configs/devices"
			cfg.Connections = []modbus.ConnConfig{testConn("l1")}
			cfg.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "l1", Schedule: everySecond, ReportByException: tc.dev}}
			cfg.ReportByException = tc.rbe
			_, err := Check(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestGatewayReportByException: the real simulator with its clock fixed,
// so its values stay as they are unless the test writes them. press-00
// reports by exception with a 2 bar deadband on pressure and no forced
// sends in the test's time: its constant samples are suppressed, a move
// within the deadband is suppressed, a move beyond it is sent.
// power-meter-00 reports by exception without deadbands and a 500ms
// max_silence: its constant samples go out once per max_silence. At the
// broker each device's seqs run 0, 1, 2… without a gap: suppressed samples
// took none.
func TestGatewayReportByException(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	frozen := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	plant := newTestPlantSim(t, simulator.Config{Clock: func() time.Time { return frozen }}, addr, 100*time.Millisecond, 1)
	createTopics(t, addr, plant.topics)
	hour, silence := time.Hour, 500*time.Millisecond
	plant.cfg.ReportByException = map[string]ExceptionConfig{
		"press": {Deadband: map[string]Deadband{"pressure": {Absolute: 2}}, MaxSilence: &hour},
	}
	for i, d := range plant.cfg.Devices {
		if d.ID == "power-meter-00" {
			plant.cfg.Devices[i].ReportByException = &ExceptionConfig{MaxSilence: &silence}
		}
	}
	g, stop := runGateway(t, plant.cfg)
	health := func(id string) modbus.DeviceHealth {
		for _, h := range g.Health() {
			if h.ID == id {
				return h
			}
		}
		t.Fatalf("no device %s", id)
		return modbus.DeviceHealth{}
	}
	// suppressedMore waits until press-00 has suppressed n more polls,
	// which the poller took after whatever the test did before.
	suppressedMore := func(n uint64) {
		t.Helper()
		from := health("press-00").Suppressed
		waitFor(t, "suppressed polls of press-00", 20*time.Second, func() bool { return health("press-00").Suppressed >= from+n })
	}
	suppressedMore(3)
	if h := health("press-00"); h.NextSeq != 1 || h.Samples != 1 {
		t.Fatalf("constant values: press-00 emitted %d samples (next seq %d), want 1", h.Samples, h.NextSeq)
	}

	unit := plant.sim.Unit(1) // press-00
	regs, err := unit.Registers(devices.HoldingRegisters, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	raw := int16(regs[0])
	step := int16(1) // pressure is int16 hundredths of a bar: move away from the ends
	if raw > 0 {
		step = -1
	}
	write := func(v int16) {
		t.Helper()
		if err := unit.SetRegisters(devices.HoldingRegisters, 0, []uint16{uint16(v)}); err != nil {
			t.Fatal(err)
		}
	}
	write(raw + 150*step) // 1.5 bar: within the deadband
	suppressedMore(3)
	if h := health("press-00"); h.NextSeq != 1 {
		t.Fatalf("a move within the deadband was sent: next seq %d, want 1", h.NextSeq)
	}
	beyondRaw := raw + 250*step // 2.5 bar from the value sent
	write(beyondRaw)
	waitFor(t, "the move beyond the deadband to be sent", 20*time.Second, func() bool { return health("press-00").NextSeq == 2 })
	suppressedMore(3) // the new value is the new reference
	waitFor(t, "heartbeats of power-meter-00", 20*time.Second, func() bool { return health("power-meter-00").NextSeq >= 3 })
	metrics := scrape(t, g)
	stop()
	if h := health("press-00"); h.NextSeq != 2 {
		t.Fatalf("press-00: next seq %d after the test, want 2", h.NextSeq)
	}
	if h := health("power-meter-00"); h.Suppressed == 0 {
		t.Fatalf("power-meter-00: nothing suppressed between heartbeats: %+v", h)
	}
	want := `factorywire_gateway_device_suppressed_samples_total{class="press",conn="line-1",device="press-00"}`
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	last, total := polled(g)
	got := plant.delivered(t, addr, total)
	checkSeqs(t, got, plant.devices, last, false)
	press := got["press-00"]
	wantP := float64(beyondRaw) * 0.01
	if p := press[1].Fields["pressure"]; p.Kind() != devices.KindFloat64 || p.Float64() < wantP-1e-9 || p.Float64() > wantP+1e-9 {
		t.Fatalf("press-00 seq 1: pressure %v, want %.2f", p, wantP)
	}
	meter := got["power-meter-00"]
	for i := 1; i < len(meter); i++ {
		if gap := meter[i].Time.Sub(meter[i-1].Time); gap < silence {
			t.Fatalf("power-meter-00: seq %d %s after seq %d, want at least max_silence %s (nothing changed)", meter[i].Seq, gap, meter[i-1].Seq, silence)
		}
	}
	t.Logf("press-00: %d samples sent, %d suppressed; power-meter-00: %d sent, %d suppressed",
		len(press), health("press-00").Suppressed, len(meter), health("power-meter-00").Suppressed)
}
