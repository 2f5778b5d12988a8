package devices

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

func exampleSample() Sample {
	return Sample{
		Factory: "plant-a",
		Device:  "press-07",
		Class:   "press",
		Time:    time.Date(2026, 12, 1, 1, 2, 3, 456_789_000, time.UTC),
		Seq:     42,
		Tags:    map[string]string{"line": "line-3", "asset_id": "P-1107", "location": "hall \"B\" – bay 4"},
		Units:   map[string]string{"pressure": "bar", "setpoint": "bar", "temperature": "°C", "ambient_k": "K"},
		Fields: map[string]Value{
			"pressure":  Float64Value(12.5),
			"running":   BoolValue(true),
			"cycles":    Uint64Value(1<<63 + 1),
			"model":     StringValue("PX-200 \"heavy\""),
			"offset":    Int64Value(-5),
			"setpoint":  Float64Value(2),
			"tiny":      Float64Value(1e-7),
			"huge":      Float64Value(1e21),
			"ambient_k": Float64Value(293.15),
		},
		Errors: map[string]string{"temperature": "modbus exception 2 (illegal data address)"},
	}
}

func TestSampleAppendJSON(t *testing.T) {
	s := exampleSample()
	want := `{"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,` +
		`"tags":{"asset_id":"P-1107","line":"line-3","location":"hall \"B\" – bay 4"},` +
		`"units":{"ambient_k":"K","pressure":"bar","setpoint":"bar","temperature":"°C"},` +
		`"fields":{"ambient_k":293.15,"cycles":9223372036854775809,"huge":1e+21,"model":"PX-200 \"heavy\"","offset":-5,` +
		`"pressure":12.5,"running":true,"setpoint":2.0,"tiny":1e-7},` +
		`"errors":{"temperature":"modbus exception 2 (illegal data address)"}}`
	if got := string(s.AppendJSON(nil)); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	s.Errors = nil
	s.Fields = nil
	s.Tags = map[string]string{}
	s.Units = nil
	s.Time = time.Date(2026, 12, 1, 2, 2, 3, 0, time.FixedZone("CET", 3600))
	want = `{"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.000Z","seq":42,"fields":{}}`
	if got := string(s.AppendJSON([]byte("x")))[1:]; got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestSampleRoundTrip(t *testing.T) {
	s := exampleSample()
	got, err := DecodeSample(s.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	s.Time = s.Time.Truncate(time.Millisecond)
	if !sampleEqual(&got, &s) {
		t.Fatalf("round trip gave\n%+v\nwant\n%+v", got, s)
	}
	if got.Fields["cycles"].Uint64() != 1<<63+1 {
		t.Fatalf("uint64 beyond 2^53 lost precision: %v", got.Fields["cycles"])
	}
	if k := got.Fields["setpoint"].Kind(); k != KindFloat64 {
		t.Fatalf("setpoint 2.0 decoded as %s, want float64", k)
	}
}

// sampleEqual compares samples as DecodeSample sees them.
func sampleEqual(a, b *Sample) bool {
	return a.Factory == b.Factory && a.Device == b.Device && a.Class == b.Class &&
		a.Time.Equal(b.Time) && a.Seq == b.Seq &&
		maps.Equal(a.Tags, b.Tags) && maps.Equal(a.Units, b.Units) &&
		maps.EqualFunc(a.Fields, b.Fields, Value.Equal) && maps.Equal(a.Errors, b.Errors)
}

func TestDecodeSampleAccepts(t *testing.T) {
	cases := []struct {
		name  string
		json  string
		check func(t *testing.T, s Sample)
	}{
		{"brief example", `{"v":1,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"fields":{"pressure":12.5,"running":true},"errors":{"temperature":"modbus exception 2 (illegal data address)"}}`,
			func(t *testing.T, s Sample) {
				if s.Seq != 42 || !s.Fields["pressure"].Equal(Float64Value(12.5)) || s.Errors["temperature"] == "" || s.Tags != nil || s.Units != nil {
					t.Errorf("got %+v", s)
				}
			}},
		{"version 2", `{"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"tags":{"line":"line-3","asset_id":"P-1107"},"units":{"pressure":"bar","temperature":"\u00b0C"},"fields":{"pressure":12.5},"errors":{"temperature":"timeout"}}`,
			func(t *testing.T, s Sample) {
				if !maps.Equal(s.Tags, map[string]string{"line": "line-3", "asset_id": "P-1107"}) || !maps.Equal(s.Units, map[string]string{"pressure": "bar", "temperature": "°C"}) {
					t.Errorf("tags %v units %v", s.Tags, s.Units)
				}
			}},
		{"version 2 without tags and units", `{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":0,"fields":{}}`,
			func(t *testing.T, s Sample) {
				if s.Tags != nil || s.Units != nil {
					t.Errorf("tags %v units %v, want nil", s.Tags, s.Units)
				}
			}},
		{"version 2 empty tags and units", `{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":0,"tags":{},"units":{},"fields":{}}`,
			func(t *testing.T, s Sample) {
				if s.Tags != nil || s.Units != nil {
					t.Errorf("tags %v units %v, want nil", s.Tags, s.Units)
				}
			}},
		{"tags at the limits", `{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":0,"tags":{` + manyTags(MaxTags, `"`+strings.Repeat("é", MaxTagValueLen/2)+`"`) + `},"fields":{}}`,
			func(t *testing.T, s Sample) {
				if len(s.Tags) != MaxTags || len(s.Tags["t00"]) != MaxTagValueLen {
					t.Errorf("%d tags, t00 %d bytes", len(s.Tags), len(s.Tags["t00"]))
				}
			}},
		{"errors omitted", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":0,"fields":{}}`,
			func(t *testing.T, s Sample) {
				if s.Errors != nil || s.Fields == nil || len(s.Fields) != 0 {
					t.Errorf("fields %v errors %v", s.Fields, s.Errors)
				}
			}},
		{"errors empty", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":0,"fields":{},"errors":{}}`,
			func(t *testing.T, s Sample) {
				if s.Errors != nil {
					t.Errorf("errors %v, want nil", s.Errors)
				}
			}},
		{"any key order and whitespace", "\n{ \"fields\" : {\"a\" : 1} ,\"seq\":18446744073709551615,\"ts\":\"2026-01-01T00:00:00Z\",\"class\":\"c\",\"device\":\"D_1.x\",\"factory\":\"f\",\"v\":1 }\n",
			func(t *testing.T, s Sample) {
				if s.Seq != math.MaxUint64 || s.Device != "D_1.x" || s.Fields["a"].Int64() != 1 {
					t.Errorf("got %+v", s)
				}
			}},
		{"ts offset and microseconds", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T02:00:00.123999+02:00","seq":1,"fields":{}}`,
			func(t *testing.T, s Sample) {
				want := time.Date(2026, 1, 1, 0, 0, 0, 123_000_000, time.UTC)
				if !s.Time.Equal(want) || s.Time.Location() != time.UTC {
					t.Errorf("time %v, want %v", s.Time, want)
				}
			}},
		{"number kinds", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"i":-9223372036854775808,"u":18446744073709551615,"f":1E3,"g":-0.0}}`,
			func(t *testing.T, s Sample) {
				if s.Fields["i"].Kind() != KindInt64 || s.Fields["u"].Kind() != KindUint64 || s.Fields["f"].Float64() != 1000 || s.Fields["g"].Kind() != KindFloat64 {
					t.Errorf("fields %v", s.Fields)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeSample([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

// manyTags is n tag members t00, t01… with the JSON value v.
func manyTags(n int, v string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"t%02d":%s`, i, v)
	}
	return strings.Join(parts, ",")
}

func TestDecodeSampleRejects(t *testing.T) {
	const tail = `"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":1}`
	const head2 = `{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,`
	cases := []struct {
		name string
		json string
		want string // the whole message
	}{
		{"version 3", `{"v":3,"extra":true}`, "devices: sample schema version 3 not supported"},
		{"version 0", `{"v":0,` + tail + `}`, "devices: sample schema version 0 not supported"},
		{"version missing", `{` + tail + `}`, `devices: malformed sample: key "v": missing: a sample declares its schema version, 1 or 2`},
		{"version as string", `{"v":"1",` + tail + `}`, `devices: malformed sample: key "v": want the integer 1 or 2, got "1"`},
		{"version float", `{"v":1.0,` + tail + `}`, `devices: malformed sample: key "v": want the integer 1 or 2, got 1.0`},
		{"empty", ``, `devices: malformed sample: empty, want a JSON object`},
		{"not an object", `[1]`, `devices: malformed sample: want a JSON object, got [`},
		{"syntax", `{"v":1,`, `devices: malformed sample: unexpected EOF`},
		{"trailing data", `{"v":1,` + tail + `} {}`, `devices: malformed sample: data after the sample object: a record holds exactly one sample`},
		{"unknown key", `{"v":1,` + tail + `,"meta":{}}`, `devices: malformed sample: key "meta": unknown key (want v, factory, device, class, ts, seq, fields or errors)`},
		{"key case", `{"v":1,"Factory":"f",` + tail[14:] + `}`, `devices: malformed sample: key "Factory": unknown key (want v, factory, device, class, ts, seq, fields or errors)`},
		{"version 1 with tags", `{"v":1,` + tail + `,"tags":{"line":"l"}}`, `devices: malformed sample: key "tags": unknown key (want v, factory, device, class, ts, seq, fields or errors)`},
		{"version 1 with units", `{"v":1,` + tail + `,"units":{"a":"V"}}`, `devices: malformed sample: key "units": unknown key (want v, factory, device, class, ts, seq, fields or errors)`},
		{"version 2 unknown key", `{"v":2,` + tail + `,"meta":{}}`, `devices: malformed sample: key "meta": unknown key (want v, factory, device, class, ts, seq, tags, units, fields or errors)`},
		{"version 2 missing fields", head2 + `"tags":{"line":"l"}}`, `devices: malformed sample: key "fields": missing`},
		{"tags null", head2 + `"tags":null,"fields":{}}`, `devices: malformed sample: key "tags": want a JSON object, got null`},
		{"tags array", head2 + `"tags":["line"],"fields":{}}`, `devices: malformed sample: key "tags": want a JSON object, got [`},
		{"tag null", head2 + `"tags":{"line":null},"fields":{}}`, `devices: malformed sample: key "tags.line": want a string, got null`},
		{"tag number", head2 + `"tags":{"line":3},"fields":{}}`, `devices: malformed sample: key "tags.line": want a string, got 3`},
		{"tag object", head2 + `"tags":{"line":{}},"fields":{}}`, `devices: malformed sample: key "tags.line": want a string, got {`},
		{"tag key upper case", head2 + `"tags":{"Line":"l"},"fields":{}}`, `devices: malformed sample: key "tags.Line": invalid tag key "Line": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"tag key with a dot", head2 + `"tags":{"a.b":"l"},"fields":{}}`, `devices: malformed sample: key "tags.a.b": invalid tag key "a.b": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"tag key empty", head2 + `"tags":{"":"l"},"fields":{}}`, `devices: malformed sample: key "tags.": invalid tag key "": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"tag value empty", head2 + `"tags":{"line":""},"fields":{}}`, `devices: malformed sample: key "tags.line": value is empty`},
		{"tag value too long", head2 + `"tags":{"line":"` + strings.Repeat("x", MaxTagValueLen+1) + `"},"fields":{}}`, `devices: malformed sample: key "tags.line": value is 257 bytes long, at most 256`},
		{"tag twice", head2 + `"tags":{"line":"a","line":"b"},"fields":{}}`, `devices: malformed sample: key "tags.line": given twice`},
		{"too many tags", head2 + `"tags":{` + manyTags(MaxTags+1, `"x"`) + `},"fields":{}}`, `devices: malformed sample: key "tags": more than 32 entries`},
		{"tags truncated", head2 + `"tags":{"line":`, `devices: malformed sample: key "tags": unexpected EOF`},
		{"units null", head2 + `"units":null,"fields":{}}`, `devices: malformed sample: key "units": want a JSON object, got null`},
		{"unit not a string", head2 + `"units":{"a":1},"fields":{}}`, `devices: malformed sample: key "units.a": want a string, got 1`},
		{"unit field name", head2 + `"units":{"$a":"V"},"fields":{}}`, `devices: malformed sample: key "units.$a": invalid field name "$a": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"unit empty", head2 + `"units":{"a":""},"fields":{}}`, `devices: malformed sample: key "units.a": unit is empty`},
		{"unit too long", head2 + `"units":{"a":"` + strings.Repeat("m", MaxUnitLen+1) + `"},"fields":{}}`, `devices: malformed sample: key "units.a": unit is 65 bytes long, at most 64`},
		{"unit twice", head2 + `"units":{"a":"V","a":"V"},"fields":{}}`, `devices: malformed sample: key "units.a": given twice`},
		{"repeated key", `{"v":1,"seq":1,` + tail + `}`, `devices: malformed sample: key "seq": given twice`},
		{"missing seq", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","fields":{}}`, `devices: malformed sample: key "seq": missing`},
		{"missing fields", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1}`, `devices: malformed sample: key "fields": missing`},
		{"empty factory", `{"v":1,"factory":"",` + tail[14:] + `}`, `devices: malformed sample: key "factory": invalid name "": use 1 to 64 lower-case letters, digits and '-', not starting or ending with '-'`},
		{"factory not a string", `{"v":1,"factory":7,` + tail[14:] + `}`, `devices: malformed sample: key "factory": want a string, got 7`},
		{"class upper case", `{"v":1,"factory":"f","device":"d","class":"Press","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`, `devices: malformed sample: key "class": invalid name "Press": use 1 to 64 lower-case letters, digits and '-', not starting or ending with '-'`},
		{"device with slash", `{"v":1,"factory":"f","device":"a/b","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`, `devices: malformed sample: key "device": invalid device id "a/b": use 1 to 64 letters, digits, '-', '_' and '.', starting with a letter or digit`},
		{"ts not RFC 3339", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01 00:00:00","seq":1,"fields":{}}`, `devices: malformed sample: key "ts": want an RFC 3339 time such as 2026-12-01T01:02:03.456Z, got "2026-01-01 00:00:00"`},
		{"ts number", `{"v":1,"factory":"f","device":"d","class":"c","ts":1767225600000,"seq":1,"fields":{}}`, `devices: malformed sample: key "ts": want a string, got 1767225600000`},
		{"ts before year 0 in UTC", `{"v":1,"factory":"f","device":"d","class":"c","ts":"0000-01-01T00:00:00+01:00","seq":1,"fields":{}}`, `devices: malformed sample: key "ts": "0000-01-01T00:00:00+01:00" lies outside years 0000 to 9999 in UTC`},
		{"seq negative", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":-1,"fields":{}}`, `devices: malformed sample: key "seq": want an unsigned 64-bit integer, got -1`},
		{"seq float", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1e3,"fields":{}}`, `devices: malformed sample: key "seq": want an unsigned 64-bit integer, got 1e3`},
		{"seq too big", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":18446744073709551616,"fields":{}}`, `devices: malformed sample: key "seq": want an unsigned 64-bit integer, got 18446744073709551616`},
		{"fields array", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":[]}`, `devices: malformed sample: key "fields": want a JSON object, got [`},
		{"field null", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":null}}`, `devices: malformed sample: key "fields.a": null is not a value (a field without a value belongs under errors)`},
		{"field object", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":{"b":1}}}`, `devices: malformed sample: key "fields.a": { opens an object or array, want a bool, number or string`},
		{"field name", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"$set":1}}`, `devices: malformed sample: key "fields.$set": invalid field name "$set": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"field integer too big", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":18446744073709551616}}`, `devices: malformed sample: key "fields.a": integer 18446744073709551616 is out of the int64 and uint64 ranges`},
		{"field float too big", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":1e400}}`, `devices: malformed sample: key "fields.a": number 1e400 is out of the float64 range`},
		{"field twice", `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":1,"a":2}}`, `devices: malformed sample: key "fields.a": given twice`},
		{"error not a string", `{"v":1,` + tail + `,"errors":{"b":5}}`, `devices: malformed sample: key "errors.b": want a string, got 5`},
		{"error empty", `{"v":1,` + tail + `,"errors":{"b":""}}`, `devices: malformed sample: key "errors.b": empty message: say why the field has no value`},
		{"error and value", `{"v":1,` + tail + `,"errors":{"a":"timeout"}}`, `devices: malformed sample: key "errors.a": the field also has a value under fields`},
		{"errors null", `{"v":1,` + tail + `,"errors":null}`, `devices: malformed sample: key "errors": want a JSON object, got null`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeSample([]byte(tc.json))
			if err == nil {
				t.Fatalf("decoded %+v, want error %s", s, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			version := strings.HasPrefix(tc.want, "devices: sample schema version")
			if errors.Is(err, ErrSchemaVersion) != version || errors.Is(err, ErrMalformedSample) == version {
				t.Fatalf("error %v: Is(ErrSchemaVersion) = %v, Is(ErrMalformedSample) = %v", err,
					errors.Is(err, ErrSchemaVersion), errors.Is(err, ErrMalformedSample))
			}
			var ve *VersionError
			var se *SampleError
			if version && !errors.As(err, &ve) || !version && !errors.As(err, &se) {
				t.Fatalf("error %T is not the documented type", err)
			}
		})
	}
}

func TestSampleDecodeRead(t *testing.T) {
	c, err := Parse("m.yaml", yamlLines(
		"class: m",
		"fields:",
		"  - {name: level, ref: 40001, type: int16, scale: 0.1}",
		"  - {name: ok, ref: 40002, type: bool, bit: 9}",
		"  - {name: flow, ref: 40003, type: float32, order: CDAB}",
		"  - {name: c0, ref: 00001, type: bool}",
		"  - {name: c9, ref: 00010, type: bool}",
	))
	if err != nil {
		t.Fatal(err)
	}
	coils, regs := c.Plan.Reads[0], c.Plan.Reads[1]
	var s Sample
	if err := s.DecodeRead(regs, []byte{0xFF, 0x38, 0x02, 0x00, 0xE9, 0x79, 0x42, 0xF6}); err != nil {
		t.Fatal(err)
	}
	if err := s.DecodeRead(coils, []byte{0x01, 0x02}); err != nil {
		t.Fatal(err)
	}
	want := map[string]Value{"level": Float64Value(-20), "ok": BoolValue(true), "flow": Float64Value(123.456), "c0": BoolValue(true), "c9": BoolValue(true)}
	if !maps.EqualFunc(s.Fields, want, Value.Equal) || len(s.Errors) != 0 {
		t.Fatalf("fields %v errors %v, want %v", s.Fields, s.Errors, want)
	}

	// A NaN goes to errors, and replaces the field's earlier value.
	if err := s.DecodeRead(regs, []byte{0, 0, 0, 0, 0, 0, 0x7F, 0xC0}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Fields["flow"]; ok || !strings.Contains(s.Errors["flow"], "not a finite number: NaN") {
		t.Fatalf("NaN: fields %v errors %v", s.Fields, s.Errors)
	}

	// A short or long reply is refused and changes nothing.
	for _, data := range [][]byte{make([]byte, 7), make([]byte, 9), nil} {
		before := maps.Clone(s.Fields)
		err := s.DecodeRead(regs, data)
		var bce *ByteCountError
		if !errors.Is(err, ErrByteCount) || !errors.As(err, &bce) || bce.Want != 8 || bce.Got != len(data) {
			t.Fatalf("%d bytes: got %v", len(data), err)
		}
		if !maps.EqualFunc(before, s.Fields, Value.Equal) {
			t.Fatal("a refused reply changed the fields")
		}
	}
	if err := s.DecodeRead(coils, []byte{1}); err == nil ||
		err.Error() != "devices: response byte count does not match the request: coil read of 10 at address 0: response holds 1 bytes, want 2" {
		t.Fatalf("coils, 1 byte: got %v", err)
	}

	s.FailRead(coils, errors.New("modbus exception 2 (illegal data address)"))
	if _, ok := s.Fields["c0"]; ok || s.Errors["c9"] != "modbus exception 2 (illegal data address)" {
		t.Fatalf("Fail: fields %v errors %v", s.Fields, s.Errors)
	}
	if _, err := DecodeSample(s.AppendJSON(nil)); err == nil {
		t.Fatal("a sample without factory and device decoded")
	}
	s.Factory, s.Device, s.Class = "plant-a", "tank-1", "m"
	if _, err := DecodeSample(s.AppendJSON(nil)); err != nil {
		t.Fatalf("a decoded and failed sample does not survive JSON: %v", err)
	}
}

func TestSampleDecodeRefusesForeignRead(t *testing.T) {
	f := Field{Name: "x", Table: HoldingRegisters, Address: 10, Type: TypeUint32}
	var s Sample
	r := Read{Table: HoldingRegisters, Address: 10, Quantity: 1, Fields: []Slot{{Field: &f}}}
	if err := s.DecodeRead(r, []byte{0, 0}); err == nil || s.Fields != nil {
		t.Fatalf("a read too short for its field decoded: %v, %v", err, s.Fields)
	}
}

func BenchmarkSampleAppendJSON(b *testing.B) {
	s := exampleSample()
	buf := s.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func TestValidateTag(t *testing.T) {
	cases := []struct {
		key, value string
		want       string // "" for valid
	}{
		{"line", "line-3", ""},
		{"asset_id", "P-1107", ""},
		{strings.Repeat("k", MaxNameLen), strings.Repeat("v", MaxTagValueLen), ""},
		{"site", "Zürich – hall \"B\"\n", ""},
		{"Line", "x", `invalid tag key "Line": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"1line", "x", `invalid tag key "1line": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"a-b", "x", `invalid tag key "a-b": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"$set", "x", `invalid tag key "$set": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{strings.Repeat("k", MaxNameLen+1), "x", `invalid tag key "` + strings.Repeat("k", MaxNameLen+1) + `": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"line", "", "value is empty"},
		{"line", strings.Repeat("é", MaxTagValueLen/2) + "x", "value is 257 bytes long, at most 256"},
		{"line", "a\xffb", `value "a\xffb" is not valid UTF-8`},
	}
	for _, tc := range cases {
		err := ValidateTag(tc.key, tc.value)
		if got := fmt.Sprint(err); tc.want == "" && err != nil || tc.want != "" && got != tc.want {
			t.Errorf("ValidateTag(%q, %q) = %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestSeqOf(t *testing.T) {
	s := exampleSample()
	for _, tc := range []struct {
		data string
		seq  uint64
		ok   bool
	}{
		{string(s.AppendJSON(nil)), 42, true},
		{`{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00.000Z","seq":7,"fields":{}}`, 7, true},
		{`{"v":3,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00.000Z","seq":7,"fields":{}}`, 0, false},
		{`{"factory":"f","v":2,"seq":7}`, 0, false},
	} {
		if seq, ok := SeqOf([]byte(tc.data)); seq != tc.seq || ok != tc.ok {
			t.Errorf("SeqOf(%s) = %d, %v; want %d, %v", tc.data, seq, ok, tc.seq, tc.ok)
		}
	}
}
