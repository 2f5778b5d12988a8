package devices

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTime compares appendTime with the layout it replaces, over
// times of every year AppendJSON supports, in UTC and other zones, and
// outside those years (where it falls back to the layout).
func TestAppendTime(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+1800), time.FixedZone("west", -11*3600)}
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 12, 1, 1, 2, 3, 456_789_000, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 1_000_000, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(rng.Int64N(253402300800), rng.Int64N(1e9)))
	}
	for i, tm := range times {
		tm = tm.In(zones[i%len(zones)])
		want := tm.UTC().AppendFormat(nil, timeLayout)
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestAppendJSONManyMembers checks the key order of objects larger than
// the stack space AppendJSON sorts in, against encoding/json's.
func TestAppendJSONManyMembers(t *testing.T) {
	s := exampleSample()
	s.Fields, s.Tags, s.Units = map[string]Value{}, map[string]string{}, map[string]string{}
	for i := range 100 {
		name := fmt.Sprintf("f%d", 7*i%100)
		s.Fields[name] = Int64Value(int64(i))
		s.Tags[name] = fmt.Sprint(i)
		s.Units[name] = "u" + fmt.Sprint(i)
	}
	s.Errors = nil
	var got struct {
		Tags   json.RawMessage `json:"tags"`
		Units  json.RawMessage `json:"units"`
		Fields json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(s.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	wantFields, _ := json.Marshal(s.Fields)
	wantTags, _ := json.Marshal(s.Tags)
	wantUnits, _ := json.Marshal(s.Units)
	if string(got.Fields) != string(wantFields) || string(got.Tags) != string(wantTags) || string(got.Units) != string(wantUnits) {
		t.Fatalf("got fields %s\ntags %s\nunits %s\nwant %s\n%s\n%s", got.Fields, got.Tags, got.Units, wantFields, wantTags, wantUnits)
	}
}

// pressSample is a sample as the gateway polls it from a device of class
// press (configs/devices/press.yaml): 17 fields, 6 of them with a unit,
// and one tag.
func pressSample() Sample {
	return Sample{
		Factory: "plant-a",
		Device:  "press-000-001",
		Class:   "press",
		Time:    time.Date(2026, 12, 1, 1, 2, 3, 456_789_000, time.UTC),
		Seq:     123456,
		Tags:    map[string]string{"line": "line-1"},
		Units: map[string]string{"pressure": "bar", "pressure_setpoint": "bar", "ram_position": "mm",
			"oil_temperature": "degC", "cycle_time": "s", "motor_power": "kW"},
		Fields: map[string]Value{
			"pressure": Float64Value(153.27), "pressure_setpoint": Float64Value(160), "ram_position": Float64Value(-53.4),
			"oil_temperature": Float64Value(48.3), "running": BoolValue(true), "fault": BoolValue(false),
			"door_open": BoolValue(false), "emergency_stop": BoolValue(false), "auto_mode": BoolValue(true),
			"cycle_count": Uint64Value(1234567), "cycle_time": Float64Value(12.345), "fault_code": Uint64Value(0),
			"motor_power": Float64Value(17.4), "pump_on": BoolValue(true), "valve_advance": BoolValue(false),
			"valve_retract": BoolValue(true), "lubrication": BoolValue(false),
		},
	}
}

// BenchmarkSampleAppendJSONPress encodes pressSample, the sample the
// gateway benchmark (cmd/gatewaybench) spools: go test ./devices/ -run '^$'
// -bench AppendJSON.
func BenchmarkSampleAppendJSONPress(b *testing.B) {
	s := pressSample()
	buf := s.AppendJSON(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = s.AppendJSON(buf[:0])
	}
}
