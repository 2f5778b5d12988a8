package devices

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
)

// valuesClass has fields out of name order in the file and in the plan,
// in both tables.
const valuesClass = `class: m
fields:
  - {name: level, ref: 40001, type: int16, scale: 0.1}
  - {name: ok, ref: 40002, type: bool, bit: 9}
  - {name: flow, ref: 40003, type: float32, order: CDAB}
  - {name: c9, ref: 00010, type: bool}
  - {name: c0, ref: 00001, type: bool}
  - {name: b_name, ref: 40005, type: uint16}
`

// TestSampleValues runs the same reads, failures and NaNs into a sample
// with maps and one with Values, step by step: the same JSON, and Maps
// gives the maps.
func TestSampleValues(t *testing.T) {
	c, err := Parse("m.yaml", []byte(valuesClass))
	if err != nil {
		t.Fatal(err)
	}
	coils, regs := c.Plan.Reads[0], c.Plan.Reads[1]
	base := Sample{Factory: "plant-a", Device: "tank-1", Class: "m", Units: c.Units}
	m, v := base, base
	v.Values = NewValues(c)
	steps := []struct {
		name string
		do   func(s *Sample) error
	}{
		{"nothing read", func(*Sample) error { return nil }},
		{"registers", func(s *Sample) error {
			return s.DecodeRead(regs, []byte{0xFF, 0x38, 0x02, 0x00, 0xE9, 0x79, 0x42, 0xF6, 0x12, 0x34})
		}},
		{"coils", func(s *Sample) error { return s.DecodeRead(coils, []byte{0x01, 0x02}) }},
		{"a NaN replaces a value", func(s *Sample) error {
			return s.DecodeRead(regs, []byte{0, 1, 0, 0, 0, 0, 0x7F, 0xC0, 0, 7})
		}},
		{"a failed read", func(s *Sample) error { s.FailRead(coils, errors.New("modbus exception 2")); return nil }},
		{"values replace errors", func(s *Sample) error {
			return s.DecodeRead(regs, []byte{0, 2, 0, 0, 0, 0, 0x3F, 0x80, 0, 8})
		}},
		{"a short reply changes nothing", func(s *Sample) error { return s.DecodeRead(coils, []byte{1}) }},
	}
	for _, st := range steps {
		errM, errV := st.do(&m), st.do(&v)
		if wantErr := st.name == "a short reply changes nothing"; (errM != nil) != wantErr || (errV != nil) != wantErr {
			t.Fatalf("%s: maps %v, Values %v", st.name, errM, errV)
		}
		a, b := m.AppendJSON(nil), v.AppendJSON(nil)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: JSON differs:\n maps   %s\n Values %s", st.name, a, b)
		}
		fields, errs := v.Values.Maps()
		if !maps.EqualFunc(fields, m.Fields, Value.Equal) || !maps.Equal(errs, m.Errors) {
			t.Fatalf("%s: Maps %v %v, want %v %v", st.name, fields, errs, m.Fields, m.Errors)
		}
		if v.Fields != nil || v.Errors != nil {
			t.Fatalf("%s: a sample with Values got maps too", st.name)
		}
	}
	if got := string(v.AppendJSON(nil)); !strings.Contains(got, `"fields":{"b_name":8,"flow":1.0,"level":0.2,"ok":false},"errors":{"c0":`) {
		t.Fatalf("fields not in name order: %s", got)
	}
	if _, err := DecodeSample(v.AppendJSON(nil)); err != nil {
		t.Fatalf("a sample with Values does not decode: %v", err)
	}

	// Reset, as a poller reuses Values: no value or error of the last
	// sample is left, and the next reads fill it as a new one.
	v.Values.Reset()
	fresh := base
	fresh.Values = NewValues(c)
	if a, b := v.AppendJSON(nil), fresh.AppendJSON(nil); !bytes.Equal(a, b) {
		t.Fatalf("after Reset:\n %s\nwant\n %s", a, b)
	}
	if fields, errs := v.Values.Maps(); len(fields) != 0 || errs != nil {
		t.Fatalf("after Reset: Maps %v %v", fields, errs)
	}
	data := []byte{0, 3, 0, 0, 0, 0, 0x3F, 0x80, 0, 9}
	if err := v.DecodeRead(regs, data); err != nil {
		t.Fatal(err)
	}
	if err := fresh.DecodeRead(regs, data); err != nil {
		t.Fatal(err)
	}
	if a, b := v.AppendJSON(nil), fresh.AppendJSON(nil); !bytes.Equal(a, b) {
		t.Fatalf("reads after Reset:\n %s\nwant\n %s", a, b)
	}
}

// TestValuesOtherPlans checks reads compiled from another copy of the
// class (fields found by name), from a class built without Parse, and a
// read of a field the class lacks (refused, nothing changed).
func TestValuesOtherPlans(t *testing.T) {
	c, err := Parse("m.yaml", []byte(valuesClass))
	if err != nil {
		t.Fatal(err)
	}
	other, err := Parse("m.yaml", []byte(valuesClass))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{0, 1, 0, 0, 0, 0, 0x3F, 0x80, 0, 9}
	m := Sample{Class: "m"}
	if err := m.DecodeRead(c.Plan.Reads[1], data); err != nil {
		t.Fatal(err)
	}
	v := Sample{Class: "m", Values: NewValues(c)}
	if err := v.DecodeRead(other.Plan.Reads[1], data); err != nil {
		t.Fatal(err)
	}
	if a, b := m.AppendJSON(nil), v.AppendJSON(nil); !bytes.Equal(a, b) {
		t.Fatalf("a plan of another copy of the class:\n%s\n%s", a, b)
	}

	// A class literal: no order recorded by Parse.
	lit := &Class{Name: "lit", Fields: []Field{
		{Name: "z", Table: HoldingRegisters, Address: 0, Type: TypeUint16},
		{Name: "a", Table: HoldingRegisters, Address: 1, Type: TypeUint16},
	}}
	r := Read{Table: HoldingRegisters, Address: 0, Quantity: 2, Fields: []Slot{{Field: &lit.Fields[0], Index: 0}, {Field: &lit.Fields[1], Offset: 1, Index: 1}}}
	lv := Sample{Values: NewValues(lit)}
	if err := lv.DecodeRead(r, []byte{0, 1, 0, 2}); err != nil {
		t.Fatal(err)
	}
	if got := string(lv.AppendJSON(nil)); !strings.Contains(got, `"fields":{"a":2,"z":1}}`) {
		t.Fatalf("class literal: %s", got)
	}

	// A field the class lacks.
	foreign := Field{Name: "x", Table: HoldingRegisters, Address: 0, Type: TypeUint16}
	fr := Read{Table: HoldingRegisters, Address: 0, Quantity: 1, Fields: []Slot{{Field: &foreign}}}
	before := v.AppendJSON(nil)
	if err := v.DecodeRead(fr, []byte{0, 1}); err == nil || !strings.Contains(err.Error(), `field "x" of the read`) {
		t.Fatalf("a foreign field: %v", err)
	}
	v.FailRead(fr, errors.New("timeout"))
	if after := v.AppendJSON(nil); !bytes.Equal(before, after) {
		t.Fatalf("a foreign field changed the sample:\n%s\n%s", before, after)
	}
}

// BenchmarkSampleDecodeRead decodes a poll of the press class (17 fields,
// four reads) and encodes it, into maps and into Values.
func BenchmarkSampleDecodeRead(b *testing.B) {
	c, err := Load("../configs/devices/press.yaml")
	if err != nil {
		b.Fatal(err)
	}
	data := make([][]byte, len(c.Plan.Reads))
	for i, r := range c.Plan.Reads {
		data[i] = make([]byte, r.ByteCount())
		for j := range data[i] {
			data[i][j] = byte(7*j + 1)
		}
	}
	for _, form := range []string{"maps", "values"} {
		b.Run(form, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				s := Sample{Factory: "plant-a", Device: "press-01", Class: c.Name, Units: c.Units}
				if form == "values" {
					s.Values = NewValues(c)
				} else {
					s.Fields = make(map[string]Value, len(c.Fields))
				}
				for i, r := range c.Plan.Reads {
					if err := s.DecodeRead(r, data[i]); err != nil {
						b.Fatal(err)
					}
				}
				buf = s.AppendJSON(buf[:0])
			}
		})
	}
}
