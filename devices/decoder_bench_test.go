package devices_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// demoRecords returns the record values of a realistic mix, as the demo's
// gateway produces them: its press and power-meter classes
// (configs/devices), 4 devices each polled 25 times, interleaved,
// schema version 2 with the class's units and the demo's line tag, the
// simulator's values, and one sample in 5 with its last read failed, so
// that its fields carry an errors object.
func demoRecords(tb testing.TB) [][]byte {
	tb.Helper()
	classes, err := devices.LoadDir("../configs/devices")
	if err != nil {
		tb.Fatal(err)
	}
	tags := map[string]string{"line": "line-1"}
	failure := errors.New("modbus: exception '2' (illegal data address), function '3'")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var recs [][]byte
	for tick := range 25 {
		for _, name := range []string{"press", "power-meter"} {
			c := classes[name]
			for d := range 4 {
				sim := simulator.Device{Class: c, Seed: uint64(d + 1)}
				s := devices.Sample{
					Factory: "plant-a", Device: fmt.Sprintf("%s-%02d", name, d), Class: name,
					Time: t0.Add(time.Duration(tick)*time.Second + time.Duration(d)*time.Millisecond), Seq: uint64(1000 + tick),
					Tags: tags, Units: c.Units, Fields: make(map[string]devices.Value, len(c.Fields)),
				}
				for _, f := range c.Fields {
					v, err := sim.Value(f.Name, int64(tick))
					if err != nil {
						tb.Fatal(err)
					}
					s.Fields[f.Name] = v
				}
				if (tick+d)%5 == 0 {
					s.FailRead(c.Plan.Reads[len(c.Plan.Reads)-1], failure)
				}
				recs = append(recs, s.AppendJSON(nil))
			}
		}
	}
	return recs
}

// BenchmarkDecodeSample decodes the demo's mix of records (demoRecords)
// with the encoding/json reference (std) and with a Decoder (fast), in
// the same run; one op is one sample:
//
//	go test -run '^$' -bench BenchmarkDecodeSample -count 6 ./devices/
func BenchmarkDecodeSample(b *testing.B) {
	recs := demoRecords(b)
	var size int
	for _, r := range recs {
		size += len(r)
	}
	run := func(b *testing.B, decode func([]byte) (devices.Sample, error)) {
		b.ReportAllocs()
		b.SetBytes(int64(size / len(recs)))
		i := 0
		for b.Loop() {
			if _, err := decode(recs[i]); err != nil {
				b.Fatal(err)
			}
			if i++; i == len(recs) {
				i = 0
			}
		}
	}
	b.Run("std", func(b *testing.B) { run(b, devices.DecodeSampleStd) })
	b.Run("fast", func(b *testing.B) {
		var dec devices.Decoder
		run(b, dec.Decode)
	})
	b.Run("fast-oneshot", func(b *testing.B) { run(b, devices.DecodeSample) })
}
