package devices

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// regField returns a holding-register field of type t in order o.
func regField(t Type, o Order) Field {
	return Field{Name: "x", Table: HoldingRegisters, Type: t, Order: o, Scale: 1}
}

// decodeCases are known register images of one value in every type and
// allowed order, as a device would send them.
var decodeCases = []struct {
	name  string
	field Field
	regs  []uint16
	want  Value
}{
	{"int16/ABCD", regField(TypeInt16, OrderABCD), []uint16{0xFFFE}, Int64Value(-2)},
	{"int16/BADC", regField(TypeInt16, OrderBADC), []uint16{0xFEFF}, Int64Value(-2)},
	{"uint16/ABCD", regField(TypeUint16, OrderABCD), []uint16{0x1234}, Uint64Value(0x1234)},
	{"uint16/BADC", regField(TypeUint16, OrderBADC), []uint16{0x3412}, Uint64Value(0x1234)},

	{"int32/ABCD", regField(TypeInt32, OrderABCD), []uint16{0xF8A4, 0x32EB}, Int64Value(-123456789)},
	{"int32/CDAB", regField(TypeInt32, OrderCDAB), []uint16{0x32EB, 0xF8A4}, Int64Value(-123456789)},
	{"int32/BADC", regField(TypeInt32, OrderBADC), []uint16{0xA4F8, 0xEB32}, Int64Value(-123456789)},
	{"int32/DCBA", regField(TypeInt32, OrderDCBA), []uint16{0xEB32, 0xA4F8}, Int64Value(-123456789)},
	{"uint32/ABCD", regField(TypeUint32, OrderABCD), []uint16{0x0102, 0x0304}, Uint64Value(0x01020304)},
	{"uint32/CDAB", regField(TypeUint32, OrderCDAB), []uint16{0x0304, 0x0102}, Uint64Value(0x01020304)},
	{"uint32/BADC", regField(TypeUint32, OrderBADC), []uint16{0x0201, 0x0403}, Uint64Value(0x01020304)},
	{"uint32/DCBA", regField(TypeUint32, OrderDCBA), []uint16{0x0403, 0x0201}, Uint64Value(0x01020304)},
	{"float32/ABCD", regField(TypeFloat32, OrderABCD), []uint16{0x42F6, 0xE979}, Float64Value(123.456)},
	{"float32/CDAB", regField(TypeFloat32, OrderCDAB), []uint16{0xE979, 0x42F6}, Float64Value(123.456)},
	{"float32/BADC", regField(TypeFloat32, OrderBADC), []uint16{0xF642, 0x79E9}, Float64Value(123.456)},
	{"float32/DCBA", regField(TypeFloat32, OrderDCBA), []uint16{0x79E9, 0xF642}, Float64Value(123.456)},

	{"int64/ABCD", regField(TypeInt64, OrderABCD), []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE}, Int64Value(-2)},
	{"int64/CDAB", regField(TypeInt64, OrderCDAB), []uint16{0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF}, Int64Value(-2)},
	{"int64/BADC", regField(TypeInt64, OrderBADC), []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF}, Int64Value(-2)},
	{"int64/DCBA", regField(TypeInt64, OrderDCBA), []uint16{0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF}, Int64Value(-2)},
	{"uint64/ABCD", regField(TypeUint64, OrderABCD), []uint16{0x0102, 0x0304, 0x0506, 0x0708}, Uint64Value(0x0102030405060708)},
	{"uint64/CDAB", regField(TypeUint64, OrderCDAB), []uint16{0x0708, 0x0506, 0x0304, 0x0102}, Uint64Value(0x0102030405060708)},
	{"uint64/BADC", regField(TypeUint64, OrderBADC), []uint16{0x0201, 0x0403, 0x0605, 0x0807}, Uint64Value(0x0102030405060708)},
	{"uint64/DCBA", regField(TypeUint64, OrderDCBA), []uint16{0x0807, 0x0605, 0x0403, 0x0201}, Uint64Value(0x0102030405060708)},
	{"uint64/max", regField(TypeUint64, OrderABCD), []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, Uint64Value(math.MaxUint64)},
	{"float64/ABCD", regField(TypeFloat64, OrderABCD), []uint16{0x405E, 0xDD2F, 0x1A9F, 0xBE77}, Float64Value(123.456)},
	{"float64/CDAB", regField(TypeFloat64, OrderCDAB), []uint16{0xBE77, 0x1A9F, 0xDD2F, 0x405E}, Float64Value(123.456)},
	{"float64/BADC", regField(TypeFloat64, OrderBADC), []uint16{0x5E40, 0x2FDD, 0x9F1A, 0x77BE}, Float64Value(123.456)},
	{"float64/DCBA", regField(TypeFloat64, OrderDCBA), []uint16{0x77BE, 0x9F1A, 0x2FDD, 0x5E40}, Float64Value(123.456)},

	{"bool/bit3/set", Field{Name: "x", Table: HoldingRegisters, Type: TypeBool, Bit: 3}, []uint16{0x0008}, BoolValue(true)},
	{"bool/bit3/clear", Field{Name: "x", Table: HoldingRegisters, Type: TypeBool, Bit: 3}, []uint16{0xFFF7}, BoolValue(false)},
	{"bool/bit15", Field{Name: "x", Table: InputRegisters, Type: TypeBool, Bit: 15}, []uint16{0x8000}, BoolValue(true)},
	{"string/ABCD", Field{Name: "x", Table: HoldingRegisters, Type: TypeString, Length: 3}, []uint16{0x4142, 0x2D31, 0x3200}, StringValue("AB-12")},
	{"string/BADC", Field{Name: "x", Table: HoldingRegisters, Type: TypeString, Length: 3, Order: OrderBADC}, []uint16{0x4241, 0x312D, 0x0032}, StringValue("AB-12")},

	{"int16/scale0.1", Field{Name: "x", Table: InputRegisters, Type: TypeInt16, Scale: 0.1}, []uint16{0x04D2}, Float64Value(123.4)},
	{"int16/negative/scale0.1", Field{Name: "x", Table: InputRegisters, Type: TypeInt16, Scale: 0.1}, []uint16{0xFB2E}, Float64Value(-123.4)},
	{"uint16/scale0.5/offset10", Field{Name: "x", Table: InputRegisters, Type: TypeUint16, Scale: 0.5, Offset: 10}, []uint16{7}, Float64Value(13.5)},
	{"uint16/offset", Field{Name: "x", Table: InputRegisters, Type: TypeUint16, Scale: 1, Offset: -40}, []uint16{100}, Float64Value(60)},
	{"int32/scale100", Field{Name: "x", Table: InputRegisters, Type: TypeInt32, Scale: 100}, []uint16{0, 12}, Float64Value(1200)},
	{"float32/scale0.001", Field{Name: "x", Table: InputRegisters, Type: TypeFloat32, Scale: 0.001}, []uint16{0x42F6, 0xE979}, Float64Value(0.123456)},
	{"uint16/zero-scale-is-one", Field{Name: "x", Table: InputRegisters, Type: TypeUint16}, []uint16{7}, Uint64Value(7)},
}

func TestDecodeRegisters(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.field.DecodeRegisters(tc.regs)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind() != tc.want.Kind() || !got.Equal(tc.want) {
				t.Fatalf("decoded %v (%s), want %v (%s)", got, got.Kind(), tc.want, tc.want.Kind())
			}
		})
	}
}

func TestEncodeRegistersGivesKnownImages(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]uint16, len(tc.regs))
			if tc.field.Type == TypeBool {
				copy(got, tc.regs) // a bool writes only its bit
				got[0] ^= 1 << tc.field.Bit
			}
			if err := tc.field.EncodeRegisters(tc.want, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.regs) {
				t.Fatalf("encoded %#04x, want %#04x", got, tc.regs)
			}
		})
	}
}

func TestDecodeRegistersNotFinite(t *testing.T) {
	cases := []struct {
		name  string
		field Field
		regs  []uint16
	}{
		{"float32/NaN", regField(TypeFloat32, OrderABCD), []uint16{0x7FC0, 0x0000}},
		{"float32/+Inf", regField(TypeFloat32, OrderABCD), []uint16{0x7F80, 0x0000}},
		{"float32/-Inf/CDAB", regField(TypeFloat32, OrderCDAB), []uint16{0x0000, 0xFF80}},
		{"float64/NaN", regField(TypeFloat64, OrderABCD), []uint16{0x7FF8, 0, 0, 1}},
		{"float64/overflow-by-scale", Field{Name: "x", Table: InputRegisters, Type: TypeFloat64, Scale: 10}, []uint16{0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.field.DecodeRegisters(tc.regs)
			if !errors.Is(err, ErrNotFinite) {
				t.Fatalf("got %v, %v; want ErrNotFinite", v, err)
			}
		})
	}
}

func TestDecodeString(t *testing.T) {
	cases := []struct {
		name  string
		order Order
		regs  []uint16
		want  string
	}{
		{"trailing-spaces", OrderABCD, []uint16{0x5859, 0x2020}, "XY"},
		{"ends-at-nul", OrderABCD, []uint16{0x5800, 0x5959}, "X"},
		{"empty", OrderABCD, []uint16{0, 0}, ""},
		{"invalid-utf8", OrderABCD, []uint16{0x41FF}, "A\uFFFD"},
		{"utf8-kept", OrderABCD, []uint16{0xC3A9}, "é"},
		{"odd-length-BADC", OrderBADC, []uint16{0x4241, 0x0043}, "ABC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := Field{Name: "s", Table: HoldingRegisters, Type: TypeString, Length: len(tc.regs), Order: tc.order}
			v, err := f.DecodeRegisters(tc.regs)
			if err != nil {
				t.Fatal(err)
			}
			if v.String() != tc.want {
				t.Fatalf("got %q, want %q", v.String(), tc.want)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip encodes values into every type and allowed
// order, with and without scaling, and decodes them back.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	values := map[Type][]Value{
		TypeInt16:   {Int64Value(0), Int64Value(-32768), Int64Value(32767), Uint64Value(5), Float64Value(-3)},
		TypeUint16:  {Uint64Value(0), Uint64Value(65535), Int64Value(1)},
		TypeInt32:   {Int64Value(math.MinInt32), Int64Value(math.MaxInt32), Int64Value(-1)},
		TypeUint32:  {Uint64Value(math.MaxUint32), Uint64Value(1 << 31)},
		TypeInt64:   {Int64Value(math.MinInt64), Int64Value(math.MaxInt64), Int64Value(-1)},
		TypeUint64:  {Uint64Value(math.MaxUint64), Uint64Value(1<<53 + 1), Uint64Value(0)},
		TypeFloat32: {Float64Value(123.456), Float64Value(-0.001), Float64Value(3.4e38), Float64Value(3.4028235e38), Float64Value(-3.4028235e38), Float64Value(1e-45), Int64Value(7)},
		TypeFloat64: {Float64Value(math.Pi), Float64Value(-1e300), Float64Value(5e-324), Uint64Value(1 << 60)},
		TypeString:  {StringValue(""), StringValue("PLC-1200"), StringValue("abcdefghij")},
		TypeBool:    {BoolValue(true), BoolValue(false)},
	}
	for typ, vs := range values {
		for _, order := range []Order{OrderABCD, OrderCDAB, OrderBADC, OrderDCBA} {
			if (typ.Registers() == 1 || typ == TypeString) && order != OrderABCD && order != OrderBADC || typ == TypeBool && order != OrderABCD {
				continue
			}
			f := Field{Name: "x", Table: InputRegisters, Type: typ, Order: order, Bit: 9, Length: 5}
			for _, v := range vs {
				t.Run(typ.String()+"/"+order.String()+"/"+v.String(), func(t *testing.T) {
					regs := make([]uint16, f.Size())
					if err := f.EncodeRegisters(v, regs); err != nil {
						t.Fatal(err)
					}
					got, err := f.DecodeRegisters(regs)
					if err != nil {
						t.Fatal(err)
					}
					if !got.Equal(v) && !(typ != TypeString && typ != TypeBool && toFloat(got) == toFloat(v)) {
						t.Fatalf("round trip of %v (%s) gave %v (%s), registers %#04x", v, v.Kind(), got, got.Kind(), regs)
					}
				})
			}
		}
	}
}

func toFloat(v Value) float64 {
	switch v.Kind() {
	case KindInt64:
		return float64(v.Int64())
	case KindUint64:
		return float64(v.Uint64())
	}
	return v.Float64()
}

func TestEncodeDecodeScaledRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		field Field
		value float64
	}{
		{"int16/0.1", Field{Type: TypeInt16, Scale: 0.1}, -123.4},
		{"int16/0.01/offset", Field{Type: TypeInt16, Scale: 0.01, Offset: 20}, 1.23},
		{"uint16/0.1/kelvin", Field{Type: TypeUint16, Scale: 0.1, Offset: -273.15}, 21.45},
		{"int32/0.001", Field{Type: TypeInt32, Scale: 0.001, Order: OrderCDAB}, 12345.678},
		{"uint32/0.01", Field{Type: TypeUint32, Scale: 0.01, Order: OrderDCBA}, 42949672.95},
		{"int64/10", Field{Type: TypeInt64, Scale: 10, Order: OrderBADC}, -1230},
		{"uint64/0.5", Field{Type: TypeUint64, Scale: 0.5}, 1e15},
		{"float32/0.1", Field{Type: TypeFloat32, Scale: 0.1}, 12.5},
		{"float64/3/offset", Field{Type: TypeFloat64, Scale: 3, Offset: 1, Order: OrderDCBA}, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.field
			f.Name, f.Table = "x", HoldingRegisters
			regs := make([]uint16, f.Size())
			if err := f.EncodeRegisters(Float64Value(tc.value), regs); err != nil {
				t.Fatal(err)
			}
			got, err := f.DecodeRegisters(regs)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.Float64()-tc.value) > 1e-9*math.Max(1, math.Abs(tc.value)) {
				t.Fatalf("round trip of %v gave %v", tc.value, got)
			}
		})
	}
}

func TestEncodeSharedStatusRegister(t *testing.T) {
	running := Field{Name: "running", Table: HoldingRegisters, Type: TypeBool, Bit: 0}
	fault := Field{Name: "fault", Table: HoldingRegisters, Type: TypeBool, Bit: 3}
	reg := []uint16{0x8000}
	for _, step := range []struct {
		f    Field
		v    bool
		want uint16
	}{
		{running, true, 0x8001},
		{fault, true, 0x8009},
		{running, false, 0x8008},
	} {
		if err := step.f.EncodeRegisters(BoolValue(step.v), reg); err != nil {
			t.Fatal(err)
		}
		if reg[0] != step.want {
			t.Fatalf("after %s=%v register is %#04x, want %#04x", step.f.Name, step.v, reg[0], step.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name  string
		field Field
		value Value
		want  error
	}{
		{"int16/too-big", regField(TypeInt16, OrderABCD), Int64Value(40000), ErrRange},
		{"int16/uint-too-big", regField(TypeInt16, OrderABCD), Uint64Value(math.MaxUint64), ErrRange},
		{"uint16/negative", regField(TypeUint16, OrderABCD), Int64Value(-1), ErrRange},
		{"uint32/too-big", regField(TypeUint32, OrderABCD), Uint64Value(1 << 32), ErrRange},
		{"int64/uint-too-big", regField(TypeInt64, OrderABCD), Uint64Value(1 << 63), ErrRange},
		{"uint64/negative", regField(TypeUint64, OrderABCD), Int64Value(-5), ErrRange},
		{"int16/scaled-too-big", Field{Name: "x", Table: HoldingRegisters, Type: TypeInt16, Scale: 0.1}, Float64Value(3276.8), ErrRange},
		{"int32/NaN", regField(TypeInt32, OrderABCD), Float64Value(math.NaN()), ErrRange},
		{"uint64/float-2^64", regField(TypeUint64, OrderABCD), Float64Value(math.Ldexp(1, 64)), ErrRange},
		{"float32/too-big", regField(TypeFloat32, OrderABCD), Float64Value(1e39), ErrRange},
		{"int16/string", regField(TypeInt16, OrderABCD), StringValue("5"), ErrKind},
		{"int16/bool", regField(TypeInt16, OrderABCD), BoolValue(true), ErrKind},
		{"int16/invalid", regField(TypeInt16, OrderABCD), Value{}, ErrKind},
		{"bool/number", Field{Name: "x", Table: HoldingRegisters, Type: TypeBool}, Int64Value(1), ErrKind},
		{"string/number", Field{Name: "x", Table: HoldingRegisters, Type: TypeString, Length: 2}, Int64Value(1), ErrKind},
		{"string/too-long", Field{Name: "x", Table: HoldingRegisters, Type: TypeString, Length: 2}, StringValue("12345"), ErrRange},
		{"string/nul", Field{Name: "x", Table: HoldingRegisters, Type: TypeString, Length: 2}, StringValue("a\x00b"), ErrRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			regs := make([]uint16, tc.field.Size())
			err := tc.field.EncodeRegisters(tc.value, regs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeFloatSpecialsForSimulation(t *testing.T) {
	// A simulator serves NaN and infinities to test how pollers cope.
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, typ := range []Type{TypeFloat32, TypeFloat64} {
			f := regField(typ, OrderCDAB)
			regs := make([]uint16, f.Size())
			if err := f.EncodeRegisters(Float64Value(x), regs); err != nil {
				t.Fatalf("%s %v: %v", typ, x, err)
			}
			if _, err := f.DecodeRegisters(regs); !errors.Is(err, ErrNotFinite) {
				t.Fatalf("%s %v: decode gave %v, want ErrNotFinite", typ, x, err)
			}
		}
	}
}

func TestRegisterCountAndTableChecks(t *testing.T) {
	f := regField(TypeFloat32, OrderABCD)
	if _, err := f.DecodeRegisters([]uint16{1}); err == nil {
		t.Error("DecodeRegisters accepted 1 register for a float32")
	}
	if err := f.EncodeRegisters(Float64Value(1), make([]uint16, 3)); err == nil {
		t.Error("EncodeRegisters accepted 3 registers for a float32")
	}
	coil := Field{Name: "c", Table: Coils, Type: TypeBool}
	if _, err := coil.DecodeRegisters([]uint16{1}); err == nil {
		t.Error("DecodeRegisters accepted a coil")
	}
	if on, err := coil.EncodeBit(BoolValue(true)); err != nil || !on {
		t.Errorf("EncodeBit(true) = %v, %v", on, err)
	}
	if _, err := coil.EncodeBit(Int64Value(1)); !errors.Is(err, ErrKind) {
		t.Errorf("EncodeBit(1) gave %v, want ErrKind", err)
	}
	if _, err := f.EncodeBit(BoolValue(true)); err == nil {
		t.Error("EncodeBit accepted a register field")
	}
}
