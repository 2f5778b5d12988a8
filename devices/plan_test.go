package devices

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// reg and bit build fields for plan tests.
func reg(name string, addr uint16, t Type) Field {
	return Field{Name: name, Table: HoldingRegisters, Address: addr, Type: t, Length: 1}
}

func bit(name string, table Table, addr uint16) Field {
	return Field{Name: name, Table: table, Address: addr, Type: TypeBool}
}

// summary prints a plan compactly: "table address+quantity[name@offset ...]".
func summary(p Plan) string {
	var reads []string
	for _, r := range p.Reads {
		var fields []string
		for _, s := range r.Fields {
			fields = append(fields, fmt.Sprintf("%s@%d", s.Field.Name, s.Offset))
		}
		reads = append(reads, fmt.Sprintf("%s %d+%d[%s]", r.Table, r.Address, r.Quantity, strings.Join(fields, " ")))
	}
	return strings.Join(reads, "; ")
}

func TestCompile(t *testing.T) {
	str125 := reg("s", 0, TypeString)
	str125.Length = 125
	str100 := reg("s", 0, TypeString)
	str100.Length = 100
	cases := []struct {
		name   string
		gap    int
		opts   PlanOptions
		fields []Field
		want   string
	}{
		{"adjacent fields merge", 0, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 1, TypeFloat32), reg("c", 3, TypeUint64)},
			"holding_register 0+7[a@0 b@1 c@3]"},
		{"sorted by address", 0, PlanOptions{},
			[]Field{reg("c", 3, TypeUint16), reg("a", 0, TypeFloat32), reg("b", 2, TypeUint16)},
			"holding_register 0+4[a@0 b@2 c@3]"},
		{"gap equal to max_gap merges", 5, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 6, TypeUint16)},
			"holding_register 0+7[a@0 b@6]"},
		{"gap above max_gap splits", 5, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 7, TypeUint16)},
			"holding_register 0+1[a@0]; holding_register 7+1[b@0]"},
		{"max_gap 0 splits any gap", 0, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 2, TypeUint16)},
			"holding_register 0+1[a@0]; holding_register 2+1[b@0]"},
		{"125 registers fit one read", 125, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 124, TypeUint16)},
			"holding_register 0+125[a@0 b@124]"},
		{"126 registers split", 125, PlanOptions{},
			[]Field{reg("a", 0, TypeUint16), reg("b", 124, TypeUint32)},
			"holding_register 0+1[a@0]; holding_register 124+2[b@0]"},
		{"string of 125 registers", 0, PlanOptions{},
			[]Field{str125},
			"holding_register 0+125[s@0]"},
		{"limit splits a run of fields", 0, PlanOptions{},
			runOf(70, TypeFloat32),
			"holding_register 0+124[" + names(0, 62) + "]; holding_register 124+16[" + names(62, 70) + "]"},
		{"per-connection limit 64", 0, PlanOptions{MaxRegisters: 64},
			runOf(40, TypeFloat32),
			"holding_register 0+64[" + names(0, 32) + "]; holding_register 64+16[" + names(32, 40) + "]"},
		{"bools share a register", 0, PlanOptions{},
			[]Field{{Name: "b3", Table: HoldingRegisters, Address: 4, Type: TypeBool, Bit: 3}, {Name: "b0", Table: HoldingRegisters, Address: 4, Type: TypeBool}, reg("n", 5, TypeUint16)},
			"holding_register 4+2[b0@0 b3@0 n@1]"},
		{"bit gap is 16 bits per register of max_gap", 1, PlanOptions{},
			[]Field{bit("a", Coils, 0), bit("b", Coils, 17), bit("c", Coils, 35)},
			"coil 0+18[a@0 b@17]; coil 35+1[c@0]"},
		{"2000 bits fit one read", 125, PlanOptions{},
			[]Field{bit("a", DiscreteInputs, 0), bit("b", DiscreteInputs, 1999)},
			"discrete_input 0+2000[a@0 b@1999]"},
		{"2001 bits split", 125, PlanOptions{},
			[]Field{bit("a", DiscreteInputs, 0), bit("b", DiscreteInputs, 2000)},
			"discrete_input 0+1[a@0]; discrete_input 2000+1[b@0]"},
		{"per-connection bit limit", 10, PlanOptions{MaxBits: 8},
			[]Field{bit("a", Coils, 0), bit("b", Coils, 7), bit("c", Coils, 8)},
			"coil 0+8[a@0 b@7]; coil 8+1[c@0]"},
		{"tables in order, never mixed", 10, PlanOptions{},
			[]Field{
				{Name: "ir", Table: InputRegisters, Address: 0, Type: TypeInt16},
				reg("hr", 0, TypeInt16),
				bit("di", DiscreteInputs, 0),
				bit("co", Coils, 0),
			},
			"coil 0+1[co@0]; discrete_input 0+1[di@0]; holding_register 0+1[hr@0]; input_register 0+1[ir@0]"},
		{"last address", 0, PlanOptions{},
			[]Field{reg("a", 65532, TypeUint64)},
			"holding_register 65532+4[a@0]"},
		{"string too long for the connection", 0, PlanOptions{MaxRegisters: 64},
			[]Field{str100},
			`error: devices: class "c": field "s" occupies 100 registers, more than the 64 one read may ask for`},
		{"registers limit out of range", 0, PlanOptions{MaxRegisters: 126},
			[]Field{reg("a", 0, TypeUint16)},
			"error: devices: max registers per read 126 out of range 1..125"},
		{"bits limit out of range", 0, PlanOptions{MaxBits: -1},
			[]Field{reg("a", 0, TypeUint16)},
			"error: devices: max bits per read -1 out of range 1..2000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Class{Name: "c", MaxGap: tc.gap, Fields: tc.fields}
			p, err := c.Compile(tc.opts)
			got := summary(p)
			if err != nil {
				got = "error: " + err.Error()
			}
			if got != tc.want {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, tc.want)
			}
			if err == nil {
				checkPlan(t, c, p, tc.opts)
			}
		})
	}
}

// checkPlan checks the invariants of a plan: every field served once,
// inside its read, and reads within the limits.
func checkPlan(t *testing.T, c *Class, p Plan, opts PlanOptions) {
	t.Helper()
	served := make(map[*Field]int)
	for _, r := range p.Reads {
		if r.Quantity == 0 || int(r.Quantity) > opts.limit(r.Table) || int(r.Address)+int(r.Quantity) > 65536 {
			t.Errorf("read %v breaks the limits", r)
		}
		for _, s := range r.Fields {
			served[s.Field]++
			if s.Field.Table != r.Table || s.Offset < 0 || s.Offset+s.Field.Size() > int(r.Quantity) || int(r.Address)+s.Offset != int(s.Field.Address) {
				t.Errorf("field %s at offset %d lies outside read %v", s.Field.Name, s.Offset, r)
			}
		}
	}
	for i := range c.Fields {
		if n := served[&c.Fields[i]]; n != 1 {
			t.Errorf("field %s served by %d reads", c.Fields[i].Name, n)
		}
	}
}

// runOf returns n adjacent fields of type t, named f0, f1, ...
func runOf(n int, t Type) []Field {
	var fields []Field
	for i := range n {
		fields = append(fields, reg(fmt.Sprintf("f%d", i), uint16(i*t.Registers()), t))
	}
	return fields
}

// names lists the summary entries of fields i..j-1 of a run of float32s,
// with offsets counted from the run's field i.
func names(i, j int) string {
	var s []string
	for k := i; k < j; k++ {
		s = append(s, fmt.Sprintf("f%d@%d", k, 2*(k-i)))
	}
	return strings.Join(s, " ")
}

func TestPlanString(t *testing.T) {
	c := &Class{Name: "press", MaxGap: 10, Fields: []Field{
		reg("pressure", 0, TypeInt16),
		{Name: "running", Table: HoldingRegisters, Address: 5, Type: TypeBool, Bit: 3},
		reg("cycles", 10, TypeUint32),
		bit("pump", Coils, 7),
	}}
	p, err := c.Compile(PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "coil 7 (1 bit): pump@7\nholding_register 0-11 (12 registers): pressure@0 running@5.3 cycles@10"
	if got := p.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestByteCount(t *testing.T) {
	cases := []struct {
		table    Table
		quantity uint16
		want     int
	}{
		{HoldingRegisters, 1, 2},
		{InputRegisters, 125, 250},
		{Coils, 1, 1},
		{Coils, 8, 1},
		{DiscreteInputs, 9, 2},
		{DiscreteInputs, 2000, 250},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d", tc.table, tc.quantity), func(t *testing.T) {
			if got := (Read{Table: tc.table, Quantity: tc.quantity}).ByteCount(); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestExampleClassesCompile(t *testing.T) {
	classes, err := LoadDir("../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	names := sortedKeys(nil, classes)
	if want := []string{"power-meter", "press", "temperature-controller"}; !slices.Equal(names, want) {
		t.Fatalf("classes %v, want %v", names, want)
	}
	for _, name := range names {
		c := classes[name]
		for _, opts := range []PlanOptions{{}, {MaxRegisters: 16, MaxBits: 16}} {
			p, err := c.Compile(opts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkPlan(t, c, p, opts)
		}
	}
}
