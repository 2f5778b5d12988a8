package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// benchDeadbands are the deadbands of BenchmarkReportByException's
// "deadband" rows, as a plant engineer would set them: about the
// resolution people look at, and counters reported every few units.
var benchDeadbands = map[string]ExceptionConfig{
	"press": {Deadband: map[string]Deadband{
		"pressure": {Absolute: 0.5}, "pressure_setpoint": {Absolute: 0.5}, "ram_position": {Absolute: 1},
		"oil_temperature": {Absolute: 0.5}, "cycle_count": {Absolute: 10}, "cycle_time": {Absolute: 0.05},
		"motor_power": {Percent: 2},
	}},
	"power-meter": {Deadband: map[string]Deadband{
		"voltage_l1": {Percent: 1}, "voltage_l2": {Percent: 1}, "voltage_l3": {Percent: 1},
		"current_l1": {Percent: 2}, "current_l2": {Percent: 2}, "current_l3": {Percent: 2},
		"active_power": {Percent: 2}, "power_factor": {Percent: 1}, "frequency": {Percent: 0.5},
		"energy_import": {Percent: 1}, "energy_export": {Percent: 1}, "operating_hours": {Absolute: 1},
	}},
	"temperature-controller": {Deadband: map[string]Deadband{
		"process_value": {Absolute: 0.5}, "setpoint": {Absolute: 0.5}, "output_power": {Absolute: 2},
		"heater_current": {Absolute: 0.1}, "uptime": {Absolute: 60}, "cold_junction_temperature": {Absolute: 0.5},
	}},
}

// BenchmarkReportByException measures what report by exception saves on
// a simulated plant: 3 presses, 3 power meters and 2 temperature
// controllers polled once a second for an hour, their values from the
// simulator's generators (devices/simulator: the values a poll would
// read), run through the gateway's filter (the poller's Device.Report) as
// the poller calls it. It reports samples sent per sample polled and JSON
// bytes sent (the spool record, and the Kafka record value, before
// compression) per byte polled, against "off" (every poll sent) in the same
// run. "slow": the simulator's tick is 10 s, so the values move every 10th
// poll; "busy": they move at every poll (counters count, floats carry
// noise). "exact": report_by_exception without deadbands (any change
// counts); "deadband": benchDeadbands. Every row keeps the default
// max_silence (1m).
//
//	go test -run '^$' -bench BenchmarkReportByException -benchtime 1x ./gateway/
func BenchmarkReportByException(b *testing.B) {
	classes, err := devices.LoadDir("../configs/devices")
	if err != nil {
		b.Fatal(err)
	}
	type plantDevice struct {
		id  string
		sim simulator.Device
	}
	var plant []plantDevice
	seed := uint64(1)
	for _, pc := range []struct {
		class string
		n     int
	}{{"press", 3}, {"power-meter", 3}, {"temperature-controller", 2}} {
		for i := range pc.n {
			plant = append(plant, plantDevice{id: fmt.Sprintf("%s-%02d", pc.class, i), sim: simulator.Device{Class: classes[pc.class], Seed: seed}})
			seed++
		}
	}
	const (
		poll  = time.Second
		polls = 3600 // an hour
	)
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	// run polls the plant; with rbe nil every poll is sent.
	run := func(b *testing.B, pollsPerTick int, rbe func(class string) *ExceptionConfig) (polled, sent, bytesPolled, bytesSent int) {
		var buf []byte
		for _, d := range plant {
			var report func(*devices.Sample) bool
			if rbe != nil {
				report = exceptionFor(rbe(d.sim.Class.Name), nil).report
			}
			seq := uint64(0)
			for i := range polls {
				s := devices.Sample{Factory: "plant-a", Device: d.id, Class: d.sim.Class.Name, Time: start.Add(time.Duration(i) * poll), Seq: seq, Units: d.sim.Class.Units,
					Fields: make(map[string]devices.Value, len(d.sim.Class.Fields))}
				tick := int64(i / pollsPerTick)
				for _, f := range d.sim.Class.Fields {
					v, err := d.sim.Value(f.Name, tick)
					if err != nil {
						b.Fatal(err)
					}
					s.Fields[f.Name] = v
				}
				buf = s.AppendJSON(buf[:0])
				polled++
				bytesPolled += len(buf)
				if report != nil && !report(&s) {
					continue
				}
				sent++
				bytesSent += len(buf)
				seq++
			}
		}
		return polled, sent, bytesPolled, bytesSent
	}
	modes := []struct {
		name string
		rbe  func(class string) *ExceptionConfig
	}{
		{"off", nil},
		{"exact", func(string) *ExceptionConfig { return &ExceptionConfig{} }},
		{"deadband", func(class string) *ExceptionConfig { e := benchDeadbands[class]; return &e }},
	}
	for _, sc := range []struct {
		name         string
		pollsPerTick int
	}{{"slow", 10}, {"busy", 1}} {
		for _, m := range modes {
			b.Run(sc.name+"/"+m.name, func(b *testing.B) {
				var polled, sent, bp, bs int
				for b.Loop() {
					polled, sent, bp, bs = run(b, sc.pollsPerTick, m.rbe)
				}
				b.ReportMetric(float64(polled), "polled")
				b.ReportMetric(float64(sent), "sent")
				b.ReportMetric(float64(sent)/float64(polled), "sent/polled")
				b.ReportMetric(float64(bs), "bytes-sent")
				b.ReportMetric(float64(bs)/float64(bp), "bytes-sent/polled")
			})
		}
	}
}
