package devices

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// yamlLines joins lines into a file, so tests can count line numbers.
func yamlLines(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func TestParse(t *testing.T) {
	data := yamlLines(
		"class: press", // 1
		"description: hydraulic press",
		"max_gap: 3",
		"fields:",
		"  - name: pressure", // 5
		"    table: holding_register",
		"    address: 0x10",
		"    type: int16",
		"    scale: 0.01",
		"    unit: bar", // 10
		"  - name: running",
		"    ref: 40018",
		"    type: bool",
		"    bit: 15",
		"  - name: energy", // 15
		"    ref: 300001",
		"    type: float64",
		"    order: DCBA",
		"  - name: model",
		"    table: holding_register", // 20
		"    address: 100",
		"    type: string",
		"    length: 4",
		"    order: BADC",
		"  - name: pump", // 25
		"    ref: 00003",
		"    type: bool",
	)
	c, err := Parse("press.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{Name: "pressure", Table: HoldingRegisters, Address: 16, Type: TypeInt16, Scale: 0.01, Unit: "bar"},
		{Name: "running", Table: HoldingRegisters, Address: 17, Type: TypeBool, Bit: 15, Scale: 1},
		{Name: "energy", Table: InputRegisters, Address: 0, Type: TypeFloat64, Order: OrderDCBA, Scale: 1},
		{Name: "model", Table: HoldingRegisters, Address: 100, Type: TypeString, Length: 4, Order: OrderBADC, Scale: 1},
		{Name: "pump", Table: Coils, Address: 2, Type: TypeBool, Scale: 1},
	}
	if c.Name != "press" || c.Description != "hydraulic press" || c.MaxGap != 3 || c.Source != "press.yaml" {
		t.Errorf("class = %q %q gap %d source %q", c.Name, c.Description, c.MaxGap, c.Source)
	}
	if len(c.Fields) != len(want) {
		t.Fatalf("got %d fields, want %d", len(c.Fields), len(want))
	}
	for i := range want {
		if c.Fields[i] != want[i] {
			t.Errorf("field %d = %+v, want %+v", i, c.Fields[i], want[i])
		}
	}
	if got := c.Field("model"); got != &c.Fields[3] {
		t.Errorf("Field(model) = %p, want %p", got, &c.Fields[3])
	}
	if c.Field("nope") != nil {
		t.Error("Field(nope) found a field")
	}
	if want := map[string]string{"pressure": "bar"}; !maps.Equal(c.Units, want) {
		t.Errorf("Units = %v, want %v", c.Units, want)
	}
	wantPlan := "coil 2 (1 bit): pump@2\n" +
		"holding_register 16-17 (2 registers): pressure@16 running@17.15\n" +
		"holding_register 100-103 (4 registers): model@100\n" +
		"input_register 0-3 (4 registers): energy@0"
	if got := c.Plan.String(); got != wantPlan {
		t.Errorf("plan:\n%s\nwant:\n%s", got, wantPlan)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("m.yaml", yamlLines("class: m", "fields:", "  - {name: a, ref: 40001, type: uint16}"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxGap != DefaultMaxGap {
		t.Errorf("MaxGap = %d, want %d", c.MaxGap, DefaultMaxGap)
	}
	f := c.Fields[0]
	if f.Order != OrderABCD || f.Scale != 1 || f.Offset != 0 {
		t.Errorf("defaults: order %v scale %v offset %v", f.Order, f.Scale, f.Offset)
	}
}

func TestParseRef(t *testing.T) {
	cases := []struct {
		ref   string
		table Table
		addr  uint16
	}{
		{"1", Coils, 0},
		{"00001", Coils, 0},
		{"09999", Coils, 9998},
		{"000001", Coils, 0},
		{"065536", Coils, 65535},
		{"10001", DiscreteInputs, 0},
		{"19999", DiscreteInputs, 9998},
		{"100001", DiscreteInputs, 0},
		{"30001", InputRegisters, 0},
		{"30343", InputRegisters, 342},
		{"365536", InputRegisters, 65535},
		{"40001", HoldingRegisters, 0},
		{"49999", HoldingRegisters, 9998},
		{"400001", HoldingRegisters, 0},
		{"410001", HoldingRegisters, 10000},
		{"465536", HoldingRegisters, 65535},
		{`"40001"`, HoldingRegisters, 0},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			typ := "bool"
			if !tc.table.Bits() {
				typ = "uint16"
			}
			c, err := Parse("m.yaml", yamlLines("class: m", "fields:", "  - {name: a, ref: "+tc.ref+", type: "+typ+"}"))
			if err != nil {
				t.Fatal(err)
			}
			if f := c.Fields[0]; f.Table != tc.table || f.Address != tc.addr {
				t.Fatalf("ref %s = %s %d, want %s %d", tc.ref, f.Table, f.Address, tc.table, tc.addr)
			}
		})
	}
}

// TestParseErrors checks each problem's exact message: file, line, field,
// offending value and the fix.
func TestParseErrors(t *testing.T) {
	const head = "class: press\nfields:\n" // lines 1-2; fields start at line 3
	cases := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown type", head + "  - name: pressure\n    table: holding_register\n    address: 0\n    type: flaot32\n",
			`press.yaml:6: field "pressure": unknown type "flaot32" (want bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string)`},
		{"unknown field key", head + "  - name: a\n    ref: 40001\n    type: int16\n    scael: 0.1\n",
			`press.yaml:6: field "a": unknown key "scael" (want name, table, address, ref, type, order, bit, length, scale, offset or unit)`},
		{"unknown class key", "class: press\nmaxgap: 3\nfields:\n  - {name: a, ref: 40001, type: int16}\n",
			`press.yaml:2: unknown key "maxgap" (want class, description, max_gap or fields)`},
		{"repeated key", head + "  - name: a\n    ref: 40001\n    type: int16\n    type: uint16\n",
			`press.yaml:6: field "a": key "type" given twice (first at line 5)`},
		{"duplicate field name", head + "  - {name: a, ref: 40001, type: int16}\n  - {name: a, ref: 40002, type: int16}\n",
			`press.yaml:4: field "a": duplicate name (first defined at line 3): names must be unique in a class`},
		{"bad field name", head + "  - {name: Pressure-1, ref: 40001, type: int16}\n",
			`press.yaml:3: field "Pressure-1": name: invalid field name "Pressure-1": use 1 to 64 lower-case letters, digits and '_', starting with a letter`},
		{"missing name", head + "  - {ref: 40001, type: int16}\n",
			`press.yaml:3: fields item 1: missing key "name"`},
		{"unknown table", head + "  - {name: a, table: holding, address: 0, type: int16}\n",
			`press.yaml:3: field "a": unknown register table "holding" (want coil, discrete_input, holding_register or input_register)`},
		{"float in coil", head + "  - name: a\n    table: coil\n    address: 0\n    type: float32\n",
			`press.yaml:6: field "a": a coil holds a single bit: type must be bool, not float32`},
		{"string in discrete input", head + "  - {name: a, ref: 10001, type: string, length: 2}\n",
			`press.yaml:3: field "a": a discrete_input holds a single bit: type must be bool, not string`},
		{"bit out of range", head + "  - name: a\n    ref: 40001\n    type: bool\n    bit: 16\n",
			`press.yaml:6: field "a": bit: want an integer 0 to 15, got "16"`},
		{"bit missing", head + "  - name: a\n    ref: 40001\n    type: bool\n",
			`press.yaml:5: field "a": a bool in a holding_register needs bit: 0 (least significant) to 15 (use uint16 for the whole register)`},
		{"bit on coil", head + "  - name: a\n    ref: 00001\n    type: bool\n    bit: 1\n",
			`press.yaml:6: field "a": bit applies to bools in registers; a coil is a single bit already`},
		{"bit on number", head + "  - name: a\n    ref: 40001\n    type: uint16\n    bit: 1\n",
			`press.yaml:6: field "a": bit applies to bools only, not uint16`},
		{"address overflow", head + "  - name: a\n    table: input_register\n    address: 65534\n    type: float64\n",
			`press.yaml:5: field "a": float64 at address 65534 needs 4 registers, ending at 65537, past the last address 65535`},
		{"address out of range", head + "  - {name: a, table: coil, address: 65536, type: bool}\n",
			`press.yaml:3: field "a": address: want an integer 0 to 65535, got "65536"`},
		{"address leading zero", head + "  - {name: a, table: coil, address: 010, type: bool}\n",
			`press.yaml:3: field "a": address: 010 has a leading zero, which YAML reads as octal: write it in decimal without the zero, or as 0x hexadecimal`},
		{"address quoted", head + "  - {name: a, table: coil, address: \"1\", type: bool}\n",
			`press.yaml:3: field "a": address: want an integer 0 to 65535, got "1"`},
		{"scale zero", head + "  - name: a\n    ref: 40001\n    type: int16\n    scale: 0\n",
			`press.yaml:6: field "a": scale: 0 would make every value 0; omit scale for 1`},
		{"scale NaN", head + "  - name: a\n    ref: 40001\n    type: int16\n    scale: .nan\n",
			`press.yaml:6: field "a": scale: want a finite number, got ".nan"`},
		{"offset infinite", head + "  - name: a\n    ref: 40001\n    type: int16\n    offset: .inf\n",
			`press.yaml:6: field "a": offset: want a finite number, got ".inf"`},
		{"scale on bool", head + "  - name: a\n    ref: 00001\n    type: bool\n    scale: 2\n",
			`press.yaml:6: field "a": scale applies to numbers only, not bool`},
		{"unit on string", head + "  - name: a\n    ref: 40001\n    type: string\n    length: 2\n    unit: V\n",
			`press.yaml:7: field "a": unit applies to numbers only, not string`},
		{"unit too long", head + "  - name: a\n    ref: 40001\n    type: int16\n    unit: " + strings.Repeat("m", 65) + "\n",
			`press.yaml:6: field "a": unit is 65 bytes long, at most 64`},
		{"length missing", head + "  - name: a\n    ref: 40001\n    type: string\n",
			`press.yaml:5: field "a": a string needs length: its registers, 2 bytes each, 1 to 125`},
		{"length too big", head + "  - name: a\n    ref: 40001\n    type: string\n    length: 126\n",
			`press.yaml:6: field "a": length: want an integer 1 to 125, got "126"`},
		{"length on number", head + "  - name: a\n    ref: 40001\n    type: int32\n    length: 2\n",
			`press.yaml:6: field "a": length applies to strings only, not int32`},
		{"order on 16-bit", head + "  - name: a\n    ref: 40001\n    type: int16\n    order: CDAB\n",
			`press.yaml:6: field "a": order CDAB needs two registers or more; a int16 takes ABCD (high byte first) or BADC (low byte first)`},
		{"order on string", head + "  - name: a\n    ref: 40001\n    type: string\n    length: 2\n    order: DCBA\n",
			`press.yaml:7: field "a": order DCBA needs two registers or more; a string takes ABCD (high byte first) or BADC (low byte first)`},
		{"order on bool", head + "  - name: a\n    ref: 00001\n    type: bool\n    order: ABCD\n",
			`press.yaml:6: field "a": order: a bool has no byte order; remove the key`},
		{"unknown order", head + "  - name: a\n    ref: 40001\n    type: int32\n    order: big\n",
			`press.yaml:6: field "a": unknown byte order "big" (want ABCD, CDAB, BADC or DCBA)`},
		{"type missing", head + "  - {name: a, ref: 40001}\n",
			`press.yaml:3: field "a": missing key "type" (want bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string)`},
		{"location missing", head + "  - {name: a, type: int16}\n",
			`press.yaml:3: field "a": missing location: give table and address (e.g. table: holding_register, address: 0) or ref (e.g. ref: 40001)`},
		{"ref and address", head + "  - {name: a, ref: 40001, address: 0, type: int16}\n",
			`press.yaml:3: field "a": ref: give either ref or table and address, not both`},
		{"table without address", head + "  - {name: a, table: coil, type: bool}\n",
			`press.yaml:3: field "a": missing key "address" beside table (0-based, 0 to 65535)`},
		{"ref table digit", head + "  - {name: a, ref: 20001, type: int16}\n",
			`press.yaml:3: field "a": ref: 20001: leading digit 2 names no table (0 coils, 1 discrete inputs, 3 input registers, 4 holding registers)`},
		{"ref zero", head + "  - {name: a, ref: 40000, type: int16}\n",
			`press.yaml:3: field "a": ref: 40000: number 0 out of range 1 to 9999 (numbers start at 1: 40001 is holding_register address 0)`},
		{"ref 6 digits too big", head + "  - {name: a, ref: 465537, type: int16}\n",
			`press.yaml:3: field "a": ref: 465537: number 65537 out of range 1 to 65536 (numbers start at 1: 400001 is holding_register address 0)`},
		{"ref not digits", head + "  - {name: a, ref: 4x0001, type: int16}\n",
			`press.yaml:3: field "a": ref: "4x0001" is not a Modicon reference: want 5 digits (00001-09999 coils, 10001-19999 discrete inputs, 30001-39999 input registers, 40001-49999 holding registers) or 6 digits (400001-465536 and so on)`},
		{"overlap", head + "  - {name: a, ref: 40010, type: uint32}\n  - {name: b, ref: 40011, type: uint16}\n",
			`press.yaml:4: field "b": holding_register 10 overlaps field "a" (holding_register 9-10, line 3); only bools on different bits may share a register`},
		{"bool overlaps number", head + "  - {name: a, ref: 40001, type: uint16}\n  - {name: b, ref: 40001, type: bool, bit: 2}\n",
			`press.yaml:4: field "b": holding_register 0 bit 2 overlaps field "a" (holding_register 0, line 3); only bools on different bits may share a register`},
		{"same bit", head + "  - {name: a, ref: 40001, type: bool, bit: 2}\n  - {name: b, ref: 40001, type: bool, bit: 2}\n",
			`press.yaml:4: field "b": holding_register 0 bit 2 is also field "a" (line 3)`},
		{"same coil", head + "  - {name: a, ref: 00001, type: bool}\n  - {name: b, table: coil, address: 0, type: bool}\n",
			`press.yaml:4: field "b": coil 0 overlaps field "a" (coil 0, line 3); only bools on different bits may share a register`},
		{"class name", "class: Power_Meter\nfields:\n  - {name: a, ref: 40001, type: int16}\n",
			`press.yaml:1: class: invalid name "Power_Meter": use 1 to 64 lower-case letters, digits and '-', not starting or ending with '-'`},
		{"class missing", "fields:\n  - {name: a, ref: 40001, type: int16}\n",
			`press.yaml:1: missing key "class": name the device class, e.g. class: power-meter`},
		{"fields missing", "class: press\n",
			`press.yaml:1: missing key "fields": list the device's fields`},
		{"fields empty", "class: press\nfields: []\n",
			`press.yaml:2: fields: want a list of one or more fields`},
		{"field not a mapping", head + "  - pressure\n",
			`press.yaml:3: fields item 1: want a mapping with the keys name, table, address, ref, type, order, bit, length, scale, offset or unit`},
		{"max_gap too big", "class: press\nmax_gap: 200\nfields:\n  - {name: a, ref: 40001, type: int16}\n",
			`press.yaml:2: max_gap: want an integer 0 to 125, got "200"`},
		{"not a mapping", "- a\n- b\n",
			`press.yaml:1: want a mapping with the keys class, description, max_gap or fields`},
		{"empty", "",
			`press.yaml: empty register map: want the keys class and fields`},
		{"two documents", "class: a\nfields: []\n---\nclass: b\n",
			`press.yaml:3: holds more than one YAML document: put one class in each file`},
		{"syntax", "class: press\nfields:\n  - name: a\n   type: x\n",
			`press.yaml:2: did not find expected '-' indicator`},
		{"several problems at once", head + "  - {name: a, ref: 40001, type: flaot}\n  - {name: b, ref: 40002, type: int16, order: XY}\n",
			`press.yaml:3: field "a": unknown type "flaot" (want bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or string)` + "\n" +
				`press.yaml:4: field "b": unknown byte order "XY" (want ABCD, CDAB, BADC or DCBA)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("press.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("parsed into %+v, want error %s", c, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			var me *MapError
			if !errors.As(err, &me) || me.File != "press.yaml" {
				t.Fatalf("error %T is not a *MapError for press.yaml", err)
			}
		})
	}
}

func TestParseAllowsBoolsOnDifferentBits(t *testing.T) {
	data := yamlLines(
		"class: press",
		"fields:",
		"  - {name: running, ref: 40011, type: bool, bit: 0}",
		"  - {name: fault, ref: 40011, type: bool, bit: 1}",
		"  - {name: door_open, ref: 40011, type: bool, bit: 15}",
		"  - {name: counter, ref: 40012, type: uint16}",
	)
	c, err := Parse("press.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plan.Reads) != 1 || c.Plan.Reads[0].Quantity != 2 {
		t.Fatalf("plan %v, want one read of 2 registers", c.Plan)
	}
}

func TestParseAliases(t *testing.T) {
	data := yamlLines(
		"class: meter",
		"fields:",
		"  - &v {name: v1, ref: 30001, type: float32, order: CDAB, unit: V}",
		"  - {name: v2, ref: 30003, type: float32, order: CDAB, unit: V}",
		"  - *v",
	)
	_, err := Parse("meter.yaml", data)
	want := `meter.yaml:5: field "v1": duplicate name (first defined at line 3): names must be unique in a class`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %s", err, want)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "class: press\nfields:\n  - {name: a, ref: 40001, type: int16}\n")
	write("b.yaml", "class: meter\nfields:\n  - {name: a, ref: 30001, type: float32}\n")
	write("notes.txt", "not a register map")
	classes, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(classes) != 2 || classes["press"] == nil || classes["meter"] == nil {
		t.Fatalf("got %v", classes)
	}

	write("c.yaml", "\nclass: press\nfields:\n  - {name: b, ref: 40001, type: int16}\n")
	_, err = LoadDir(dir)
	want := filepath.Join(dir, "c.yaml") + `:2: class "press" is already defined in ` + filepath.Join(dir, "a.yaml") + ": give each class one file"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}

	write("d.yaml", "class: x\nfields: []\n")
	_, err = LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "d.yaml:2: fields: want a list") || !strings.Contains(err.Error(), "already defined") {
		t.Fatalf("LoadDir did not report every file's problem: %v", err)
	}

	if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no register maps") {
		t.Fatalf("empty directory: got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
}
