package telegraf

import (
	"fmt"
	"math"
	"strings"

	"github.com/factorywire/factorywire/devices"
)

// field is a register-map field in the making, with where it came from.
type field struct {
	devices.Field
	tname string // the name Telegraf gives it
	line  int
	where string
	src   string // what Telegraf declared, for the comment above it in the register map
	// zeroOne: Telegraf writes this bool as 0 or 1.
	zeroOne bool
	// floatKept: Telegraf writes this integer as a float (scale = 1.0 or
	// output = "FLOAT64"); the gateway keeps the integer.
	floatKept bool
}

// registerTables are the four arrays of the register style, in the order
// Telegraf reads them.
var registerTables = []struct {
	key   string
	table devices.Table
}{
	{"discrete_inputs", devices.DiscreteInputs},
	{"coils", devices.Coils},
	{"holding_registers", devices.HoldingRegisters},
	{"input_registers", devices.InputRegisters},
}

// Byte orders as Telegraf names them. The register style names 16-bit
// orders with two letters and 64-bit ones with eight; the request and
// metric styles name every order with four and also accept the
// MSW/LSW names.
var (
	registerOrders = map[string]devices.Order{
		"AB": devices.OrderABCD, "ABCD": devices.OrderABCD, "ABCDEFGH": devices.OrderABCD,
		"BA": devices.OrderDCBA, "DCBA": devices.OrderDCBA, "HGFEDCBA": devices.OrderDCBA,
		"BADC": devices.OrderBADC, "BADCFEHG": devices.OrderBADC,
		"CDAB": devices.OrderCDAB, "GHEFCDAB": devices.OrderCDAB,
	}
	requestOrders = map[string]devices.Order{
		"": devices.OrderABCD, "ABCD": devices.OrderABCD, "MSW-BE": devices.OrderABCD,
		"BADC": devices.OrderBADC, "MSW-LE": devices.OrderBADC,
		"CDAB": devices.OrderCDAB, "LSW-BE": devices.OrderCDAB,
		"DCBA": devices.OrderDCBA, "LSW-LE": devices.OrderDCBA,
	}
)

// lowByteFirst reports whether Telegraf reads each register of order o
// low byte first, which is how it reads 16-bit values, bits of a register
// and strings: ABCD and CDAB high byte first, BADC and DCBA low byte first.
func lowByteFirst(o devices.Order) bool { return o == devices.OrderBADC || o == devices.OrderDCBA }

// orderFor is the order of a factorywire field of type t that reads as
// Telegraf's order o: the same for 32- and 64-bit types, which agree on
// every name; for one register and strings only the byte swap counts.
func orderFor(o devices.Order, t devices.Type) devices.Order {
	if t.Registers() == 1 || t == devices.TypeString {
		if lowByteFirst(o) {
			return devices.OrderBADC
		}
		return devices.OrderABCD
	}
	return o
}

// Integer types by Telegraf name, and the FIXED/UFIXED types by register
// count.
var (
	intTypes = map[string]devices.Type{
		"INT16": devices.TypeInt16, "UINT16": devices.TypeUint16,
		"INT32": devices.TypeInt32, "UINT32": devices.TypeUint32,
		"INT64": devices.TypeInt64, "UINT64": devices.TypeUint64,
	}
	fixedTypes  = map[int]devices.Type{1: devices.TypeInt16, 2: devices.TypeInt32, 4: devices.TypeInt64}
	ufixedTypes = map[int]devices.Type{1: devices.TypeUint16, 2: devices.TypeUint32, 4: devices.TypeUint64}
	unsupported = map[string]string{
		"INT8L": "8-bit", "INT8H": "8-bit", "UINT8L": "8-bit", "UINT8H": "8-bit",
		"FLOAT16": "half-precision float", "FLOAT16-IEEE": "half-precision float",
	}
)

func signed(t devices.Type) bool {
	return t == devices.TypeInt16 || t == devices.TypeInt32 || t == devices.TypeInt64
}

func isFloat(t devices.Type) bool { return t == devices.TypeFloat32 || t == devices.TypeFloat64 }

// newField starts a field with its Telegraf name, line and place in the
// report; false when it has no name.
func newField(d *table, nameKey string) (*field, bool) {
	n, _ := d.str(nameKey)
	f := &field{tname: n, line: d.line(""), where: d.where, Field: devices.Field{Scale: 1}}
	if n == "" {
		d.issue("", Warning, Dropped, "a field without a name (Telegraf refuses it too)")
		return nil, false
	}
	return f, true
}

// registerStyle imports configuration_type = "register": one slave, four
// arrays of fields.
func (im *importer) registerStyle(t *table, in *instance) {
	slave := 0
	if v, ok := t.integer("slave_id", 0, 255); ok {
		slave = int(v)
	} else if !t.has("slave_id") {
		t.issue("", Note, Mapped, "no slave_id: unit 0, as Telegraf (many Modbus TCP devices answer unit 0; serial lines need their unit)")
	}
	for _, rt := range registerTables {
		defs := t.list(rt.key, func(_ int, m map[string]any) string {
			n, _ := m["name"].(string)
			return fmt.Sprintf("%s %s %s", t.where, rt.key, name(n))
		})
		for _, d := range defs {
			measurement, _ := d.str("measurement")
			f := im.registerField(d, rt.table, in)
			d.unknown("not a field option of the register style")
			if f != nil {
				g := in.group(slave, measurement, nil, d.line(""))
				g.fields = append(g.fields, f)
			}
		}
	}
}

// addresses reads the register style's address array.
func addresses(d *table) ([]int, bool) {
	v, ok := d.take("address")
	if !ok {
		d.issue("", Warning, Dropped, "no address (Telegraf refuses it too)")
		return nil, false
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		d.bad("address", v, "an array of addresses ([0] or [4, 5])")
		return nil, false
	}
	out := make([]int, len(list))
	for i, e := range list {
		a, ok := e.(int64)
		if !ok || a < 0 || a > math.MaxUint16 {
			d.bad("address", v, "an array of addresses 0 to 65535")
			return nil, false
		}
		out[i] = int(a)
		if i > 0 && out[i] != out[i-1]+1 {
			d.issue("address", Warning, Dropped, "addresses %v are not consecutive (Telegraf refuses them too)", out)
			return nil, false
		}
	}
	return out, true
}

// registerField imports one field of the register style.
func (im *importer) registerField(d *table, table devices.Table, in *instance) *field {
	f, ok := newField(d, "name")
	addrs, aok := addresses(d)
	if !ok || !aok {
		d.ignore(Note, "part of a field not carried over", "data_type", "byte_order", "scale", "bit")
		return nil
	}
	f.Table, f.Address = table, uint16(addrs[0])
	dataType, _ := d.str("data_type")
	n := len(addrs)
	f.src = fmt.Sprintf("%s %s", strings.TrimPrefix(d.where, in.t.where+" "), fmt.Sprint(addrs))
	if table.Bits() {
		f.Type = devices.TypeBool
		d.ignore(Note, "not used for coils and discrete inputs (Telegraf ignores it too)", "byte_order", "scale", "bit")
		if n != 1 {
			d.issue("address", Warning, Dropped, "%d addresses for one bit (Telegraf refuses it too)", n)
			return nil
		}
		return bitOutput(d, f, dataType, "data_type", in)
	}
	bo, _ := d.str("byte_order")
	f.src += " " + dataType + " " + bo
	order, ok := registerOrders[bo]
	if !ok {
		d.issue("byte_order", Warning, Dropped, "%q is not a byte order of the register style (AB, BA, ABCD, CDAB, BADC, DCBA, ABCDEFGH, HGFEDCBA, BADCFEHG, GHEFCDAB; Telegraf refuses it too)", bo)
		d.ignore(Note, "part of a field not carried over", "scale", "bit")
		return nil
	}
	scale, scaleSet := d.float("scale")
	if scaleSet {
		f.src += fmt.Sprintf(" scale=%v", scale)
	}
	bit, bitSet := d.integer("bit", 0, 255)
	switch dataType {
	case "BIT":
		if n != 1 {
			d.issue("address", Warning, Dropped, "BIT reads one register, not %d (Telegraf refuses it too)", n)
			return nil
		}
		if scaleSet {
			d.issue("scale", Note, Dropped, "not used for BIT (Telegraf ignores it too)")
		}
		return bitOfRegister(d, f, order, int(bit), in)
	case "STRING":
		if scaleSet {
			d.issue("scale", Note, Dropped, "not used for STRING (Telegraf ignores it too)")
		}
		return stringField(d, f, order, n, in)
	}
	if bitSet && bit != 0 {
		d.issue("bit", Note, Dropped, "used by BIT only (Telegraf ignores it too)")
	}
	if why, ok := unsupported[dataType]; ok {
		d.issue("data_type", Warning, Dropped, "%s: %s values are not supported (types: bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string); "+
			"read the register as uint16 and convert downstream", dataType, why)
		return nil
	}
	if len(bo) != 2*n {
		d.issue("byte_order", Warning, Dropped, "%q does not fit %d registers (Telegraf refuses it too: %d letters wanted)", bo, n, 2*n)
		return nil
	}
	if !scaleSet || scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		d.issue("scale", Warning, Dropped, "the register style needs a finite, non-zero scale for %s (Telegraf refuses it too); scale = 1.0 reads the raw value", dataType)
		return nil
	}
	// truncates: Telegraf's output is the input's own integer type, so
	// raw × scale is cut to an integer; float32: rounded to float32.
	var truncates, float32Out bool
	switch dataType {
	case "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64":
		f.Type = intTypes[dataType]
		if f.Type.Registers() != n {
			d.issue("address", Warning, Dropped, "%s takes %d registers, not %d (Telegraf refuses it too)", dataType, f.Type.Registers(), n)
			return nil
		}
		truncates = true
	case "FIXED", "UFIXED":
		types := fixedTypes
		if dataType == "UFIXED" {
			types = ufixedTypes
		}
		if f.Type, ok = types[n]; !ok {
			d.issue("address", Warning, Dropped, "%s takes 1, 2 or 4 registers, not %d (Telegraf refuses it too)", dataType, n)
			return nil
		}
	case "FLOAT32":
		if im.opts.LegacyFloat32 {
			if f.Type, ok = ufixedTypes[n]; !ok {
				d.issue("address", Warning, Dropped, "FLOAT32 (UFIXED before Telegraf v1.37) takes 1, 2 or 4 registers, not %d", n)
				return nil
			}
			d.issue("data_type", Warning, Changed, "FLOAT32 read as Telegraf before v1.37 did (--legacy-float32): UFIXED, an unsigned integer × scale (%s); Telegraf v1.37 reads an IEEE 754 float", f.Type)
			break
		}
		if n != 2 {
			d.issue("data_type", Warning, Dropped, "Telegraf v1.37 reads FLOAT32 as an IEEE 754 float of 2 registers and fails on %d; "+
				"before v1.37 it meant UFIXED: write UFIXED (or run the import with --legacy-float32)", n)
			return nil
		}
		f.Type = devices.TypeFloat32
		d.issue("data_type", Warning, Changed, "read as Telegraf v1.37 does: an IEEE 754 float (float32); Telegraf before v1.37 read FLOAT32 as UFIXED, "+
			"an unsigned integer × scale: if your Telegraf is older, run the import with --legacy-float32 (or write UFIXED)")
	case "FLOAT32-IEEE":
		f.Type, float32Out = devices.TypeFloat32, true
	case "FLOAT64-IEEE":
		f.Type = devices.TypeFloat64
	default:
		d.issue("data_type", Warning, Dropped, "unknown data_type %q (Telegraf refuses it too)", dataType)
		return nil
	}
	if isFloat(f.Type) && f.Type.Registers() != n {
		d.issue("address", Warning, Dropped, "%s takes %d registers, not %d (Telegraf refuses it too)", dataType, f.Type.Registers(), n)
		return nil
	}
	f.Order = orderFor(order, f.Type)
	if scale != 1 {
		f.Scale = scale
		switch {
		case truncates:
			d.issue("scale", Warning, Changed, "Telegraf cuts raw × %v to an integer (the register style outputs %s as an integer: 12.34 becomes 12); the gateway keeps the fraction", scale, dataType)
		case float32Out:
			d.issue("scale", Note, Changed, "Telegraf rounds raw × %v to float32 precision; the gateway computes it in float64", scale)
		}
	} else if !truncates && !isFloat(f.Type) {
		f.floatKept = true // Telegraf: FIXED/UFIXED × 1.0 is a float
	}
	return f
}

// bitOutput finishes a coil or discrete input by its output type.
func bitOutput(d *table, f *field, out, key string, in *instance) *field {
	switch out {
	case "", "UINT16":
		f.zeroOne = true
	case "BOOL":
	default:
		d.issue(key, Warning, Dropped, "%q is not an output of a coil or discrete input (UINT16 or BOOL; Telegraf refuses it too)", out)
		return nil
	}
	f.Type = devices.TypeBool
	return f
}

// bitOfRegister finishes a BIT field: a bool of one bit of a register.
// Telegraf numbers the bits of the register as its byte order reads it,
// so with a low-byte-first order its bit 0 is the wire's bit 8.
func bitOfRegister(d *table, f *field, order devices.Order, bit int, in *instance) *field {
	if bit > 15 {
		d.issue("bit", Warning, Dropped, "bit %d of a 16-bit register (Telegraf always reads 0 there)", bit)
		return nil
	}
	f.Type, f.Bit = devices.TypeBool, bit
	if lowByteFirst(order) {
		f.Bit = bit ^ 8
		d.issue("bit", Note, Mapped, "bit %d of the register read low byte first is bit %d as it travels (high byte first)", bit, f.Bit)
	}
	f.zeroOne = true
	return f
}

// stringField finishes a STRING field of n registers.
func stringField(d *table, f *field, order devices.Order, n int, in *instance) *field {
	if in.stringLocation != "" {
		d.issue("", Warning, Dropped, "string_register_location = %q: one byte per register is not supported", in.stringLocation)
		return nil
	}
	if n < 1 || n > devices.MaxReadRegisters {
		d.issue("", Warning, Dropped, "a string of %d registers: the gateway reads 1 to %d", n, devices.MaxReadRegisters)
		return nil
	}
	f.Type, f.Length, f.Order = devices.TypeString, n, orderFor(order, devices.TypeString)
	return f
}

// requestStyle imports configuration_type = "request".
func (im *importer) requestStyle(t *table, in *instance) {
	reqs := t.list("request", func(i int, _ map[string]any) string { return fmt.Sprintf("%s request %d", t.where, i+1) })
	if len(reqs) == 0 {
		t.issue("configuration_type", Warning, Dropped, "the request style without [[inputs.modbus.request]] sections: nothing to import")
	}
	for _, r := range reqs {
		slave := im.slave(r)
		bo, _ := r.str("byte_order")
		reg, _ := r.str("register")
		measurement, _ := r.str("measurement")
		opt, _ := r.str("optimization")
		fill, fillSet := r.integer("optimization_max_register_fill", 0, math.MaxUint16)
		tags := r.strings("tags")
		fields := r.list("fields", func(i int, m map[string]any) string {
			n, _ := m["name"].(string)
			return fmt.Sprintf("%s field %s", r.where, name(n))
		})
		order, ok := requestOrders[bo]
		if !ok {
			r.issue("byte_order", Warning, Dropped, "%q is not a byte order (ABCD, DCBA, BADC, CDAB, MSW-BE, MSW-LE, LSW-BE, LSW-LE; Telegraf refuses it too): no field of this request is imported", bo)
		}
		table, tok := registerTypes[reg]
		if !tok {
			r.issue("register", Warning, Dropped, "%q is not a register type (coil, discrete, holding, input; Telegraf refuses it too): no field of this request is imported", reg)
		}
		maxFill := im.optimization(r, opt, fill, fillSet, table, false)
		if len(fields) == 0 {
			r.issue("", Warning, Dropped, "a request without fields (Telegraf refuses it too)")
		}
		for _, fd := range fields {
			if !ok || !tok {
				fd.unknown("part of a request not carried over")
				continue
			}
			if omit, _ := fd.boolean("omit"); omit {
				im.omitted(fd, in, slave, table)
				continue
			}
			fm := measurement
			if m, ok := fd.str("measurement"); ok && m != "" {
				fm = m
			}
			f := im.typedField(fd, table, order, in)
			fd.unknown("not a field option of the request style")
			if f == nil {
				continue
			}
			g := in.group(slave, fm, tags, r.line(""))
			g.fields = append(g.fields, f)
			g.maxFill = max(g.maxFill, maxFill)
		}
		r.unknown("not a request option")
	}
}

// registerTypes are the register option's values, "" the default.
var registerTypes = map[string]devices.Table{
	"": devices.HoldingRegisters, "holding": devices.HoldingRegisters, "input": devices.InputRegisters,
	"coil": devices.Coils, "discrete": devices.DiscreteInputs,
}

// slave reads a request's or metric's slave_id, Telegraf's default 0.
func (im *importer) slave(r *table) int {
	if v, ok := r.integer("slave_id", 0, 255); ok {
		return int(v)
	}
	if !r.has("slave_id") {
		r.issue("", Note, Mapped, "no slave_id: unit 0, as Telegraf")
	}
	return 0
}

// optimization maps Telegraf's request optimization to a gap the
// register map's max_gap may span (-1: none).
func (im *importer) optimization(r *table, opt string, fill int64, fillSet bool, table devices.Table, metric bool) int {
	switch opt {
	case "", "none", "shrink", "rearrange":
		if fillSet {
			r.issue("optimization_max_register_fill", Note, Dropped, "used by max_insert only (Telegraf ignores it too)")
		}
		if opt == "shrink" || opt == "rearrange" {
			r.issue("optimization", Note, Mapped, "the gateway plans its reads itself (max_gap in the register map, see devices/doc.go); fields only, omitted ones span the gaps Telegraf would read")
		}
		return -1
	case "max_insert":
		if !fillSet {
			if !metric {
				r.issue("optimization_max_register_fill", Warning, Changed, "max_insert without a fill (Telegraf refuses it): Telegraf's metric-style default, 50, used")
			}
			fill = 50
		}
		gap := int(fill)
		if table.Bits() {
			gap = (gap + 15) / 16 // max_gap counts registers; a gap of bits costs 16 a register
		}
		gap = min(gap, devices.MaxReadRegisters)
		r.issue("optimization", Note, Mapped, "max_gap: %d (a read may span that many unused registers, as max_insert with fill %d)", gap, fill)
		return gap
	default:
		r.issue("optimization", Warning, Dropped, "unknown optimization %q (Telegraf refuses it too)", opt)
		return -1
	}
}

// omitted records an omit = true field: not carried over, but the gap it
// fills may be read through (max_gap).
func (im *importer) omitted(fd *table, in *instance, slave int, table devices.Table) {
	addr, _ := fd.integer("address", 0, math.MaxUint16)
	size := 1
	if !table.Bits() {
		typ, _ := fd.str("type")
		size = registersOf(typ)
		if typ == "STRING" {
			if l, ok := fd.integer("length", 0, math.MaxUint16); ok {
				size = int(l)
			}
		}
	}
	fd.issue("", Note, Dropped, "omit = true: Telegraf reads it and drops it; the gateway reads gaps as max_gap allows (set to span the omitted fields)")
	for _, k := range fd.rest() {
		fd.take(k)
	}
	if size > 0 {
		in.omitted = append(in.omitted, omittedSpan{slave: slave, span: span{table: table, start: int(addr), end: int(addr) + size}})
	}
}

// registersOf is the size of a Telegraf type of the request and metric
// styles (0 for STRING or an unknown type).
func registersOf(typ string) int {
	switch typ {
	case "BIT", "INT8L", "INT8H", "UINT8L", "UINT8H", "INT16", "UINT16", "FLOAT16":
		return 1
	case "INT32", "UINT32", "FLOAT32":
		return 2
	case "INT64", "UINT64", "FLOAT64":
		return 4
	}
	return 0
}

// typedField imports one field of the request or metric style.
func (im *importer) typedField(fd *table, table devices.Table, order devices.Order, in *instance) *field {
	f, ok := newField(fd, "name")
	addr, aok := fd.integer("address", 0, math.MaxUint16)
	if !aok && !fd.has("address") {
		fd.issue("", Warning, Dropped, "no address (Telegraf refuses it too)")
	}
	if !ok || !aok {
		for _, k := range fd.rest() {
			fd.take(k)
		}
		return nil
	}
	f.Table, f.Address = table, uint16(addr)
	f.src = fmt.Sprintf("%s @%d", table, addr)
	out, _ := fd.str("output")
	if table.Bits() {
		fd.ignore(Note, "not used for coils and discrete inputs (Telegraf ignores it too)", "type", "length", "scale", "bit")
		return bitOutput(fd, f, out, "output", in)
	}
	typ, _ := fd.str("type")
	length, lengthSet := fd.integer("length", 0, math.MaxUint16)
	scale, _ := fd.float("scale")
	bit, bitSet := fd.integer("bit", 0, 255)
	f.src += " " + typ
	if scale != 0 {
		f.src += fmt.Sprintf(" scale=%v", scale)
	}
	if out != "" {
		f.src += " output=" + out
	}
	refuse := func(key, format string, args ...any) *field {
		fd.issue(key, Warning, Dropped, format+" (Telegraf refuses it too)", args...)
		return nil
	}
	if size := registersOf(typ); size > 0 && int(addr)+size > math.MaxUint16 {
		return refuse("address", "%s at %d runs past the last register", typ, addr)
	}
	switch typ {
	case "STRING":
		switch {
		case length < 1:
			return refuse("length", "a STRING needs its length in registers")
		case scale != 0:
			return refuse("scale", "a STRING cannot be scaled")
		case out != "" && out != "STRING":
			return refuse("output", "a STRING outputs STRING")
		case bitSet && bit != 0:
			return refuse("bit", "bit is for BIT")
		case int(addr)+int(length) > math.MaxUint16:
			return refuse("address", "the string runs past the last register")
		}
		return stringField(fd, f, order, int(length), in)
	case "BIT":
		if lengthSet && length != 0 {
			return refuse("length", "length is for STRING")
		}
		if out == "STRING" {
			return refuse("output", "BIT cannot output STRING")
		}
		if scale != 0 || out != "" {
			fd.issue("", Note, Dropped, "scale and output are not used for BIT (Telegraf ignores them too)")
		}
		return bitOfRegister(fd, f, order, int(bit), in)
	case "":
		return refuse("", "a field of a holding or input register needs a type")
	}
	if why, ok := unsupported[typ]; ok {
		fd.issue("type", Warning, Dropped, "%s: %s values are not supported (types: bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string); "+
			"read the register as uint16 and convert downstream", typ, why)
		return nil
	}
	switch {
	case typ == "FLOAT32":
		f.Type = devices.TypeFloat32
	case typ == "FLOAT64":
		f.Type = devices.TypeFloat64
	case intTypes[typ] != 0:
		f.Type = intTypes[typ]
	default:
		return refuse("type", "unknown type %q", typ)
	}
	switch {
	case lengthSet && length != 0:
		return refuse("length", "length is for STRING")
	case bitSet && bit != 0:
		return refuse("bit", "bit is for BIT")
	case math.IsNaN(scale) || math.IsInf(scale, 0):
		return refuse("scale", "scale %v", scale)
	}
	f.Order = orderFor(order, f.Type)
	return numericOutput(fd, f, typ, scale, out)
}

// numericOutput carries over scale and output of a number of the request
// and metric styles: Telegraf computes raw × scale (scale 0 is none) and
// converts it to output, by default FLOAT64 when scaled and the input's
// class (INT64, UINT64, FLOAT64) otherwise. The gateway writes raw × scale
// as a float when scaled and the raw type's class otherwise.
func numericOutput(fd *table, f *field, typ string, scale float64, out string) *field {
	class := "UINT64"
	switch {
	case isFloat(f.Type):
		class = "FLOAT64"
	case signed(f.Type):
		class = "INT64"
	}
	scaled := scale != 0 && scale != 1
	if scaled {
		f.Scale = scale
	}
	switch out {
	case "":
		if scale == 1 && class != "FLOAT64" {
			f.floatKept = true // Telegraf: scaled, so FLOAT64
		}
	case "FLOAT64":
		if !scaled && class != "FLOAT64" {
			f.floatKept = true // Telegraf: output FLOAT64
		}
	case "INT64", "UINT64":
		switch {
		case scaled:
			fd.issue("output", Warning, Changed, "Telegraf cuts raw × %v to an integer (output %s: 12.34 becomes 12); the gateway keeps the fraction", scale, out)
		case class == "FLOAT64":
			fd.issue("output", Warning, Changed, "Telegraf cuts the float to an integer (output %s); the gateway keeps the float", out)
		case out == "UINT64" && class == "INT64":
			fd.issue("output", Warning, Changed, "Telegraf writes a negative %s as a huge unsigned number (output UINT64); the gateway keeps the sign", typ)
		case out == "INT64" && f.Type == devices.TypeUint64:
			fd.issue("output", Note, Changed, "Telegraf writes values from 2^63 up as negative numbers (output INT64); the gateway keeps them")
		}
	default:
		fd.issue("output", Warning, Dropped, "unknown output %q for %s (INT64, UINT64 or FLOAT64; Telegraf refuses it too)", out, typ)
		return nil
	}
	return f
}

// metricStyle imports configuration_type = "metric".
func (im *importer) metricStyle(t *table, in *instance) {
	opt, _ := t.str("optimization")
	fill, fillSet := t.integer("optimization_max_register_fill", 0, math.MaxUint16)
	metrics := t.list("metric", func(i int, _ map[string]any) string { return fmt.Sprintf("%s metric %d", t.where, i+1) })
	if len(metrics) == 0 {
		t.issue("configuration_type", Warning, Dropped, "the metric style without [[inputs.modbus.metric]] sections: nothing to import")
	}
	if opt != "" && opt != "none" && opt != "max_insert" {
		t.issue("optimization", Warning, Dropped, "unknown optimization %q for the metric style (none or max_insert; Telegraf refuses it too)", opt)
		opt = "none"
	}
	maxFill := im.optimization(t, opt, fill, fillSet, devices.HoldingRegisters, true)
	for _, m := range metrics {
		slave := im.slave(m)
		bo, _ := m.str("byte_order")
		measurement, _ := m.str("measurement")
		tags := m.strings("tags")
		fields := m.list("fields", func(i int, fm map[string]any) string {
			n, _ := fm["name"].(string)
			return fmt.Sprintf("%s field %s", m.where, name(n))
		})
		order, ok := requestOrders[bo]
		if !ok {
			m.issue("byte_order", Warning, Dropped, "%q is not a byte order (ABCD, DCBA, BADC, CDAB, MSW-BE, MSW-LE, LSW-BE, LSW-LE; Telegraf refuses it too): no field of this metric is imported", bo)
		}
		if len(fields) == 0 {
			m.issue("", Warning, Dropped, "a metric without fields (Telegraf refuses it too)")
		}
		for _, fd := range fields {
			reg, _ := fd.str("register")
			table, tok := registerTypes[reg]
			if !tok {
				fd.issue("register", Warning, Dropped, "%q is not a register type (coil, discrete, holding, input; Telegraf refuses it too)", reg)
			}
			if !ok || !tok {
				fd.unknown("part of a field not carried over")
				continue
			}
			f := im.typedField(fd, table, order, in)
			fd.unknown("not a field option of the metric style")
			if f == nil {
				continue
			}
			g := in.group(slave, measurement, tags, m.line(""))
			g.fields = append(g.fields, f)
			g.maxFill = max(g.maxFill, maxFill)
		}
		m.unknown("not a metric option")
	}
}
