package devices

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeSample checks that DecodeSample never panics and that what it
// accepts survives AppendJSON unchanged: decoding again gives an equal
// sample, and encoding that gives the same bytes.
func FuzzDecodeSample(f *testing.F) {
	for _, seed := range sampleSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSample(data)
		if seq, ok := SeqOf(data); ok && err == nil && seq != s.Seq {
			t.Fatalf("SeqOf says %d, DecodeSample %d", seq, s.Seq)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedSample) && !errors.Is(err, ErrSchemaVersion) {
				t.Fatalf("error %v matches neither ErrMalformedSample nor ErrSchemaVersion", err)
			}
			return
		}
		enc := s.AppendJSON(nil)
		s2, err := DecodeSample(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !sampleEqual(&s, &s2) {
			t.Fatalf("round trip changed the sample:\n%+v\n%+v", s, s2)
		}
		if seq, ok := SeqOf(enc); !ok || seq != s.Seq {
			t.Fatalf("SeqOf(%s) = %d, %v; want %d", enc, seq, ok, s.Seq)
		}
		if enc2 := s2.AppendJSON(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// sampleSeeds are the seeds of FuzzDecodeSample, and of
// FuzzDecodeSampleAgainstStd among others.
func sampleSeeds() [][]byte {
	s := exampleSample()
	return [][]byte{
		s.AppendJSON(nil),
		[]byte(`{"v":1,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"fields":{"pressure":12.5,"running":true},"errors":{"temperature":"modbus exception 2 (illegal data address)"}}`),
		[]byte(`{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T02:00:00.123999+02:00","seq":18446744073709551615,"fields":{"i":-9223372036854775808,"u":18446744073709551615,"f":1E3,"g":-0.0,"s":"\u00e9\ud800"},"errors":{}}`),
		[]byte(`{"v":2}`),
		[]byte(`{"v":1,"factory":"f","device":"d","class":"c","ts":"0000-01-01T00:00:00+01:00","seq":1,"fields":{}}`),
		[]byte(`{"v":1,"factory":"f","device":"d","class":"c","ts":"9999-12-31T23:59:59.9999999-01:00","seq":1,"fields":{}}`),
		[]byte(`{"v":1,"seq":1,"seq":2}`),
		[]byte(`{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{"a":1},"errors":{"a":"x"}}`),
		[]byte(`[`),
		[]byte(`{"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"tags":{"asset_id":"P-1107","line":"line-3"},"units":{"pressure":"bar","temperature":"\u00b0C"},"fields":{"pressure":12.5},"errors":{"temperature":"timeout"}}`),
		[]byte(`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"tags":{},"units":{},"fields":{}}`),
		[]byte(`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"tags":{"a":"\ud800\n"},"units":{"a":"\u0000"},"fields":{}}`),
		[]byte(`{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"tags":{"a":"b"},"fields":{}}`),
		[]byte(`{"v":3}`),
	}
}

// FuzzSampleTags builds version 2 samples with the tags and units given,
// and checks that AppendJSON and DecodeSample agree with ValidateTag and
// the unit grammar: a sample whose tags and units they accept comes back
// equal, byte for byte when encoded again; one they refuse is refused by
// DecodeSample with a *SampleError naming tags or units, never a panic.
func FuzzSampleTags(f *testing.F) {
	f.Add("line", "line-3", "pressure", "bar", uint8(1))
	f.Add("asset_id", "P-1107 \"north\" – bay 4\n", "temperature", "°C", uint8(32))
	f.Add("Line", "x", "a", "V", uint8(2))
	f.Add("line", "", "a", "", uint8(0))
	f.Add("line", "\xff", "a", "\xfe", uint8(3))
	f.Add("l", strings.Repeat("x", MaxTagValueLen+1), "a", strings.Repeat("m", MaxUnitLen), uint8(33))
	f.Fuzz(func(t *testing.T, key, value, field, unit string, n uint8) {
		s := exampleSample()
		s.Time = s.Time.Truncate(time.Millisecond)
		s.Tags = map[string]string{key: value}
		for i := 1; i < int(n%40); i++ {
			s.Tags[fmt.Sprintf("t%02d", i)] = value
		}
		s.Units = map[string]string{field: unit}
		valid := len(s.Tags) <= MaxTags && checkUnit(field, unit) == nil
		for k, v := range s.Tags {
			valid = valid && ValidateTag(k, v) == nil
		}
		enc := s.AppendJSON(nil)
		got, err := DecodeSample(enc)
		if !valid {
			var se *SampleError
			if err == nil {
				if !utf8.ValidString(key + value + field + unit) {
					return // AppendJSON wrote U+FFFD for the invalid bytes
				}
				t.Fatalf("tags %q units %q were refused by the grammar, decoded as %+v", s.Tags, s.Units, got)
			}
			if !errors.As(err, &se) || !strings.HasPrefix(se.Key, "tags") && !strings.HasPrefix(se.Key, "units") {
				t.Fatalf("tags %q units %q: error %v names neither tags nor units", s.Tags, s.Units, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("decoding %s: %v", enc, err)
		}
		if !sampleEqual(&s, &got) {
			t.Fatalf("round trip changed the sample:\n%+v\n%+v", s, got)
		}
		if enc2 := got.AppendJSON(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		if seq, ok := SeqOf(enc); !ok || seq != s.Seq {
			t.Fatalf("SeqOf(%s) = %d, %v; want %d", enc, seq, ok, s.Seq)
		}
	})
}

// fuzzMap has every type in every allowed order, some scaled, spread over
// all four tables with gaps, so its plan has several reads.
const fuzzMap = `
class: fuzz
max_gap: 2
fields:
  - {name: i16, ref: 40001, type: int16}
  - {name: i16s, ref: 40002, type: int16, order: BADC}
  - {name: u16, ref: 40003, type: uint16}
  - {name: u16s, ref: 40004, type: uint16, order: BADC, scale: 0.1, offset: -5, unit: "°C"}
  - {name: b0, ref: 40005, type: bool, bit: 0}
  - {name: b15, ref: 40005, type: bool, bit: 15}
  - {name: i32a, ref: 40006, type: int32}
  - {name: i32b, ref: 40008, type: int32, order: CDAB}
  - {name: u32a, ref: 40010, type: uint32, order: BADC}
  - {name: u32b, ref: 40012, type: uint32, order: DCBA, scale: 0.01}
  - {name: f32a, ref: 40014, type: float32}
  - {name: f32b, ref: 40016, type: float32, order: CDAB}
  - {name: f32c, ref: 40018, type: float32, order: BADC}
  - {name: f32d, ref: 40020, type: float32, order: DCBA, scale: 0.1, unit: m³/h}
  - {name: i64a, ref: 40030, type: int64}
  - {name: i64b, ref: 40034, type: int64, order: DCBA, scale: 3}
  - {name: u64a, ref: 40038, type: uint64, order: CDAB}
  - {name: u64b, ref: 40042, type: uint64, order: BADC}
  - {name: f64a, ref: 30001, type: float64}
  - {name: f64b, ref: 30005, type: float64, order: CDAB}
  - {name: f64c, ref: 30009, type: float64, order: BADC}
  - {name: f64d, ref: 30013, type: float64, order: DCBA, offset: 1.5}
  - {name: s1, ref: 30020, type: string, length: 4}
  - {name: s2, ref: 30024, type: string, length: 3, order: BADC}
  - {name: c0, ref: 00001, type: bool}
  - {name: c9, ref: 00010, type: bool}
  - {name: c40, ref: 00041, type: bool}
  - {name: d0, ref: 10001, type: bool}
  - {name: d7, ref: 10008, type: bool}
`

// FuzzDecodeRead feeds random responses to every read of a plan: decoding
// never panics, a response of the wrong length is refused, every field of
// a well-sized response gets a value or an error, the sample, with tags
// and its class's units, survives JSON unchanged, and unscaled numbers
// re-encode to the registers they came from.
func FuzzDecodeRead(f *testing.F) {
	c, err := Parse("fuzz.yaml", []byte(fuzzMap))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Repeat([]byte{0xFF}, 200), uint8(0))
	f.Add(bytes.Repeat([]byte{0x7F, 0xC0, 0, 0}, 50), uint8(16))
	f.Add([]byte{1, 2, 3}, uint8(8))
	f.Add(bytes.Repeat([]byte{0x41, 0x00, 0xFF, 0x20}, 60), uint8(125))
	f.Fuzz(func(t *testing.T, data []byte, maxRegisters uint8) {
		opts := PlanOptions{MaxRegisters: max(int(maxRegisters)%(MaxReadRegisters+1), 4), MaxBits: max(int(maxRegisters)*16, 1) % (MaxReadBits + 1)}
		plan, err := c.Compile(opts)
		if err != nil {
			t.Fatal(err)
		}
		s := Sample{Factory: "plant-a", Device: "dev-1", Class: c.Name, Seq: uint64(maxRegisters),
			Tags: map[string]string{"line": "line-3"}, Units: c.Units}
		// The same reads into Values, as a poller with modbus.WithValues
		// fills them: the same JSON, byte for byte.
		sv := s
		sv.Values = NewValues(c)
		for _, r := range plan.Reads {
			n := r.ByteCount()
			chunk := data[:min(n, len(data))]
			data = data[len(chunk):]
			err := s.DecodeRead(r, chunk)
			errv := sv.DecodeRead(r, chunk)
			if (err == nil) != (errv == nil) {
				t.Fatalf("read %v: maps %v, Values %v", r, err, errv)
			}
			if len(chunk) != n {
				if !errors.Is(err, ErrByteCount) {
					t.Fatalf("read %v: %d bytes for %d gave %v", r, len(chunk), n, err)
				}
				s.FailRead(r, err)
				sv.FailRead(r, err)
				continue
			}
			if err != nil {
				t.Fatalf("read %v: %v", r, err)
			}
			checkReencode(t, r, chunk, &s)
		}
		if a, b := s.AppendJSON(nil), sv.AppendJSON(nil); !bytes.Equal(a, b) {
			t.Fatalf("JSON of the maps and of Values differ:\n%s\n%s", a, b)
		}
		if fields, errs := sv.Values.Maps(); !maps.EqualFunc(fields, s.Fields, Value.Equal) || !maps.Equal(errs, s.Errors) {
			t.Fatalf("Values.Maps %v %v, the maps %v %v", fields, errs, s.Fields, s.Errors)
		}
		for _, fld := range c.Fields {
			_, hasValue := s.Fields[fld.Name]
			_, hasError := s.Errors[fld.Name]
			if hasValue == hasError {
				t.Fatalf("field %s: value %v, error %v", fld.Name, hasValue, hasError)
			}
		}
		got, err := DecodeSample(s.AppendJSON(nil))
		if err != nil {
			t.Fatalf("decoded fields do not survive JSON: %v", err)
		}
		if !sampleEqual(&s, &got) {
			t.Fatalf("JSON changed the sample:\n%+v\n%+v", s, got)
		}
	})
}

// checkReencode encodes each unscaled number decoded from a read and
// checks it gives back the field's registers.
func checkReencode(t *testing.T, r Read, data []byte, s *Sample) {
	t.Helper()
	if r.Table.Bits() {
		return
	}
	for _, slot := range r.Fields {
		fld := slot.Field
		v, ok := s.Fields[fld.Name]
		if !ok || !fld.Type.numeric() || !fld.identity() {
			continue
		}
		want := data[2*slot.Offset : 2*(slot.Offset+fld.Size())]
		regs := make([]uint16, fld.Size())
		if err := fld.EncodeRegisters(v, regs); err != nil {
			t.Fatalf("field %s: re-encoding %v: %v", fld.Name, v, err)
		}
		got := make([]byte, 0, len(want))
		for _, x := range regs {
			got = append(got, byte(x>>8), byte(x))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("field %s: %x decoded to %v, which encodes to %x", fld.Name, want, v, got)
		}
	}
}

// FuzzParse checks that Parse never panics on any file, and that what it
// accepts has valid names and a plan serving every field once within the
// limits.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("../configs/devices/*.yaml")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(fuzzMap))
	f.Add([]byte("class: a\nfields:\n  - &x {name: a, ref: 40001, type: bool, bit: 1}\n  - *x\n  - <<: *x\n    name: b\n"))
	f.Add([]byte("class: a\nmax_gap: 0x10\nfields:\n  - {name: s, ref: 465500, type: string, length: 37, order: BADC}\n"))
	f.Add([]byte("class: a\nfields:\n  - {name: a, table: coil, address: 65535, type: bool}\n---\n"))
	f.Add([]byte("class: [a]\nfields: {a: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			var me *MapError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MapError: %v", err, err)
			}
			return
		}
		if ValidateName(c.Name) != nil || c.MaxGap < 0 || c.MaxGap > MaxReadRegisters {
			t.Fatalf("accepted class %q, max_gap %d", c.Name, c.MaxGap)
		}
		for _, fld := range c.Fields {
			if validateFieldName(fld.Name) != nil || int(fld.Address)+fld.Size() > 65536 || fld.Size() < 1 || fld.Scale == 0 {
				t.Fatalf("accepted field %+v", fld)
			}
		}
		checkPlan(t, c, c.Plan, PlanOptions{})
		if !slices.EqualFunc(c.Plan.Reads, mustCompile(t, c).Reads, func(a, b Read) bool { return a.String() == b.String() }) {
			t.Fatal("Compile does not reproduce the plan Parse made")
		}
	})
}

func mustCompile(t *testing.T, c *Class) Plan {
	t.Helper()
	p, err := c.Compile(PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
