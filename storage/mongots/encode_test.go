package mongots

import (
	"encoding/hex"
	"flag"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

var update = flag.Bool("update", false, "rewrite testdata/append-bson.golden")

// pressDoc is a document shaped like the demo's press class: 15 fields
// of every kind, 6 units, one tag, one failed field.
func pressDoc() Doc {
	return Doc{
		Sample: devices.Sample{
			Factory: "plant-a", Device: "press-03", Class: "press",
			Time: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), Seq: 1234,
			Tags:  map[string]string{"line": "line-1"},
			Units: map[string]string{"pressure": "bar", "pressure_setpoint": "bar", "ram_position": "mm", "oil_temperature": "degC", "cycle_time": "s", "motor_power": "kW"},
			Fields: map[string]devices.Value{
				"pressure": devices.Float64Value(12.5), "pressure_setpoint": devices.Float64Value(25), "ram_position": devices.Float64Value(123.4),
				"running": devices.BoolValue(true), "fault": devices.BoolValue(false), "door_open": devices.BoolValue(false),
				"emergency_stop": devices.BoolValue(false), "auto_mode": devices.BoolValue(true), "cycle_count": devices.Uint64Value(100000),
				"cycle_time": devices.Float64Value(4.321), "fault_code": devices.Int64Value(0), "motor_power": devices.Float64Value(17.5),
				"pump_on": devices.BoolValue(true), "valve_advance": devices.BoolValue(true), "model": devices.StringValue("PX-200"),
			},
			Errors: map[string]string{"oil_temperature": "modbus: exception '2' (illegal data address), function '3'"},
		},
		Partition: 3, Offset: 987654,
	}
}

// BenchmarkAppendBSON encodes one document as Write sends it, the sink's
// cost per sample after decoding:
//
//	go test -run '^$' -bench BenchmarkAppendBSON ./storage/mongots/
func BenchmarkAppendBSON(b *testing.B) {
	d := pressDoc()
	buf, err := d.AppendBSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = d.AppendBSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendBSONGolden holds AppendBSON to the bytes it wrote for press
// documents with and without tags, units and errors, with values that
// move under errors, and with no field at all, when they were recorded
// (go test -run TestAppendBSONGolden -update ./storage/mongots/ rewrites
// them, one document in hexadecimal per line).
func TestAppendBSONGolden(t *testing.T) {
	var docs []Doc
	docs = append(docs, pressDoc())
	d := pressDoc()
	d.Sample.Tags, d.Sample.Errors = nil, nil
	docs = append(docs, d)
	d = pressDoc()
	d.Sample.Fields, d.Sample.Units = map[string]devices.Value{"x": devices.Uint64Value(math.MaxUint64)}, nil
	docs = append(docs, d)
	d = pressDoc()
	d.Sample.Fields, d.Sample.Errors = map[string]devices.Value{}, nil
	docs = append(docs, d)
	d = pressDoc()
	d.Sample.Fields["zz"] = devices.Float64Value(math.NaN())
	d.Sample.Fields["aa"] = devices.Float64Value(math.Inf(-1))
	d.Sample.Fields["pp"] = devices.Uint64Value(1 << 63)
	d.Sample.Errors["b"], d.Sample.Errors["zzz"] = "x", "y"
	d.Sample.Tags["a"] = "\u00e9"
	docs = append(docs, d)
	var got strings.Builder
	for _, d := range docs {
		b, err := d.AppendBSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(hex.EncodeToString(b) + "\n")
	}
	const golden = "testdata/append-bson.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Fatalf("AppendBSON wrote\n%s\nwant (%s)\n%s", got.String(), golden, want)
	}
}
