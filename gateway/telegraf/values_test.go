package telegraf

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/gateway"
)

// This file checks that the imported register maps read the values
// Telegraf reads. A simulator serves random registers; the gateway's own
// poll code (modbus.Probe) reads them through the imported register maps;
// an oracle computes what Telegraf v1.37.2 makes of the same registers
// from the Telegraf config. The oracle is written from Telegraf's
// documentation and source (configuration_*.go, type_conversions*.go),
// independently of the importer: it decodes the TOML into structs shaped
// as Telegraf's and applies Telegraf's conversion rules. Values must agree
// exactly, or differ only as gateway/telegraf's documentation says (and
// the import reports): bits are bools, fractions Telegraf cuts are kept,
// negative values Telegraf wraps into UINT64 keep their sign, strings end
// at their first NUL, floats agree to float32 or float64 precision.

// Telegraf's config structs, as its plugins/inputs/modbus declares them.
type (
	tgFile struct {
		Inputs struct {
			Modbus []tgInput `toml:"modbus"`
		} `toml:"inputs"`
	}
	tgInput struct {
		Name              string            `toml:"name"`
		SlaveID           int               `toml:"slave_id"`
		ConfigurationType string            `toml:"configuration_type"`
		DiscreteInputs    []tgRegisterField `toml:"discrete_inputs"`
		Coils             []tgRegisterField `toml:"coils"`
		HoldingRegisters  []tgRegisterField `toml:"holding_registers"`
		InputRegisters    []tgRegisterField `toml:"input_registers"`
		Requests          []tgRequest       `toml:"request"`
		Metrics           []tgMetric        `toml:"metric"`
		NameOverride      string            `toml:"name_override"`
		NamePrefix        string            `toml:"name_prefix"`
		NameSuffix        string            `toml:"name_suffix"`
		Tags              map[string]string `toml:"tags"`
	}
	tgRegisterField struct {
		Measurement string  `toml:"measurement"`
		Name        string  `toml:"name"`
		ByteOrder   string  `toml:"byte_order"`
		DataType    string  `toml:"data_type"`
		Scale       float64 `toml:"scale"`
		Address     []int   `toml:"address"`
		Bit         int     `toml:"bit"`
	}
	tgRequest struct {
		Measurement string            `toml:"measurement"`
		Tags        map[string]string `toml:"tags"`
		SlaveID     int               `toml:"slave_id"`
		ByteOrder   string            `toml:"byte_order"`
		Register    string            `toml:"register"`
		Fields      []tgRequestField  `toml:"fields"`
	}
	tgRequestField struct {
		Address     int     `toml:"address"`
		Name        string  `toml:"name"`
		Type        string  `toml:"type"`
		Length      int     `toml:"length"`
		Scale       float64 `toml:"scale"`
		Output      string  `toml:"output"`
		Omit        bool    `toml:"omit"`
		Bit         int     `toml:"bit"`
		Register    string  `toml:"register"` // metric style
		Measurement string  `toml:"measurement"`
	}
	tgMetric struct {
		Measurement string            `toml:"measurement"`
		Tags        map[string]string `toml:"tags"`
		SlaveID     int               `toml:"slave_id"`
		ByteOrder   string            `toml:"byte_order"`
		Fields      []tgRequestField  `toml:"fields"`
	}
)

// tgField is one Telegraf field resolved to what its conversion needs.
type tgField struct {
	name    string
	slave   int
	table   devices.Table
	address int
	regs    int    // registers it spans (1 for a coil)
	in      string // INT16 ... FLOAT64, STRING, BIT, or COIL
	out     string // native, INT64, UINT64, FLOAT64, STRING; UINT16 or BOOL for coils
	order   string // ABCD, BADC, CDAB, DCBA
	scale   float64
	bit     int
	// series is the Telegraf series the field is written in: measurement,
	// slave_id and the tags of the input and its request or metric.
	series string
}

// seriesKey names a Telegraf series as the differential test reads it
// back: measurement, slave_id and the tags but name and type.
func seriesKey(measurement string, slave int, tags map[string]string) string {
	var kv []string
	for k, v := range tags {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return fmt.Sprintf("%s slave=%d %s", measurement, slave, strings.Join(kv, ","))
}

// metricName is the measurement of a Telegraf input's field.
func (in tgInput) metricName(m string) string {
	if m == "" {
		m = "modbus"
	}
	if in.NameOverride != "" {
		m = in.NameOverride
	}
	return in.NamePrefix + m + in.NameSuffix
}

func mergeTags(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

var tgTables = map[string]devices.Table{"": devices.HoldingRegisters, "holding": devices.HoldingRegisters,
	"input": devices.InputRegisters, "coil": devices.Coils, "discrete": devices.DiscreteInputs}

// tgOrder normalizes a byte order as Telegraf does.
func tgOrder(o string) string {
	switch o {
	case "", "AB", "ABCD", "ABCDEFGH", "MSW-BE":
		return "ABCD"
	case "BA", "DCBA", "HGFEDCBA", "LSW-LE":
		return "DCBA"
	case "BADC", "BADCFEHG", "MSW-LE":
		return "BADC"
	case "CDAB", "GHEFCDAB", "LSW-BE":
		return "CDAB"
	}
	return "?"
}

func tgSize(typ string, length int) int {
	switch typ {
	case "INT32", "UINT32", "FLOAT32":
		return 2
	case "INT64", "UINT64", "FLOAT64":
		return 4
	case "STRING":
		return length
	}
	return 1
}

// tgFields lists the Telegraf fields of a config, as Telegraf would read
// them (legacyFloat32: the register style's FLOAT32 as before v1.37).
func tgFields(t *testing.T, src []byte, legacyFloat32 bool) []tgField {
	var f tgFile
	if _, err := toml.Decode(string(src), &f); err != nil {
		t.Fatal(err)
	}
	var out []tgField
	for _, in := range f.Inputs.Modbus {
		switch in.ConfigurationType {
		case "", "register":
			for _, tab := range []struct {
				defs  []tgRegisterField
				table devices.Table
			}{{in.DiscreteInputs, devices.DiscreteInputs}, {in.Coils, devices.Coils}, {in.HoldingRegisters, devices.HoldingRegisters}, {in.InputRegisters, devices.InputRegisters}} {
				for _, d := range tab.defs {
					n := len(d.Address)
					tf := tgField{name: d.Name, slave: in.SlaveID, table: tab.table, address: d.Address[0], regs: n, order: tgOrder(d.ByteOrder), scale: d.Scale, bit: d.Bit,
						series: seriesKey(in.metricName(d.Measurement), in.SlaveID, in.Tags)}
					if tab.table.Bits() {
						tf.in, tf.out = "COIL", "UINT16"
						if d.DataType == "BOOL" {
							tf.out = "BOOL"
						}
						out = append(out, tf)
						continue
					}
					sized := map[int]string{1: "16", 2: "32", 4: "64"}[n]
					tf.out = "native"
					switch d.DataType {
					case "FIXED":
						tf.in, tf.out = "INT"+sized, "FLOAT64"
					case "UFIXED":
						tf.in, tf.out = "UINT"+sized, "FLOAT64"
					case "FLOAT32":
						tf.in, tf.out = "FLOAT32", "FLOAT64"
						if legacyFloat32 {
							tf.in = "UINT" + sized
						}
					case "FLOAT32-IEEE":
						tf.in = "FLOAT32"
					case "FLOAT64-IEEE":
						tf.in = "FLOAT64"
					default:
						tf.in = d.DataType // INT16 ... UINT64, BIT, STRING
					}
					if tf.in == "STRING" || tf.in == "BIT" {
						tf.scale = 0 // not used
					}
					out = append(out, tf)
				}
			}
		case "request":
			for _, r := range in.Requests {
				for _, d := range r.Fields {
					if !d.Omit {
						tf := tgTyped(d, r.SlaveID, tgTables[r.Register], r.ByteOrder)
						m := r.Measurement
						if d.Measurement != "" {
							m = d.Measurement
						}
						tf.series = seriesKey(in.metricName(m), r.SlaveID, mergeTags(in.Tags, r.Tags))
						out = append(out, tf)
					}
				}
			}
		case "metric":
			for _, m := range in.Metrics {
				for _, d := range m.Fields {
					tf := tgTyped(d, m.SlaveID, tgTables[d.Register], m.ByteOrder)
					tf.series = seriesKey(in.metricName(m.Measurement), m.SlaveID, mergeTags(in.Tags, m.Tags))
					out = append(out, tf)
				}
			}
		}
	}
	return out
}

// tgTyped resolves a field of the request or metric style.
func tgTyped(d tgRequestField, slave int, table devices.Table, order string) tgField {
	tf := tgField{name: d.Name, slave: slave, table: table, address: d.Address, order: tgOrder(order), scale: d.Scale, bit: d.Bit}
	if table.Bits() {
		tf.in, tf.out, tf.regs, tf.scale = "COIL", "UINT16", 1, 0
		if d.Output == "BOOL" {
			tf.out = "BOOL"
		}
		return tf
	}
	tf.in, tf.regs, tf.out = d.Type, tgSize(d.Type, d.Length), d.Output
	if tf.out == "" {
		switch {
		case d.Type == "STRING":
			tf.out = "STRING"
		case d.Scale != 0:
			tf.out = "FLOAT64"
		case strings.HasPrefix(d.Type, "INT"):
			tf.out = "INT64"
		case strings.HasPrefix(d.Type, "FLOAT"):
			tf.out = "FLOAT64"
		default: // UINT*, BIT
			tf.out = "UINT64"
		}
	}
	return tf
}

// registers16 reads one register as Telegraf's 16-bit conversion does.
func (f tgField) registers16(b []byte) uint16 {
	if f.order == "BADC" || f.order == "DCBA" {
		return binary.LittleEndian.Uint16(b)
	}
	return binary.BigEndian.Uint16(b)
}

// value is what Telegraf writes for the field, given its wire bytes (or
// for a coil, its bit as 0 or 1 in b[0]): bool, int64, uint64, float64 or
// string, as Telegraf's metric holds it.
func (f tgField) value(b []byte) any {
	switch f.in {
	case "COIL":
		if f.out == "BOOL" {
			return b[0] != 0
		}
		return uint64(b[0])
	case "BIT":
		return uint64(f.registers16(b) >> f.bit & 1)
	case "STRING":
		var s []byte
		for i := 0; i+1 < len(b); i += 2 {
			v := f.registers16(b[i:])
			s = append(s, byte(v>>8), byte(v))
		}
		s, _ = bytes.CutSuffix(s, []byte{0})
		return string(s)
	}
	var u uint64
	switch f.regs {
	case 1:
		u = uint64(f.registers16(b))
	case 2:
		switch f.order {
		case "ABCD":
			u = uint64(binary.BigEndian.Uint32(b))
		case "BADC":
			u = uint64(binary.LittleEndian.Uint16(b))<<16 | uint64(binary.LittleEndian.Uint16(b[2:]))
		case "CDAB":
			u = uint64(binary.BigEndian.Uint16(b[2:]))<<16 | uint64(binary.BigEndian.Uint16(b))
		case "DCBA":
			u = uint64(binary.LittleEndian.Uint32(b))
		}
	case 4:
		switch f.order {
		case "ABCD":
			u = binary.BigEndian.Uint64(b)
		case "BADC":
			for i := 0; i < 8; i += 2 {
				u = u<<16 | uint64(binary.LittleEndian.Uint16(b[i:]))
			}
		case "CDAB":
			for i := 6; i >= 0; i -= 2 {
				u = u<<16 | uint64(binary.BigEndian.Uint16(b[i:]))
			}
		case "DCBA":
			u = binary.LittleEndian.Uint64(b)
		}
	}
	// The raw value as its type, and as a float for scaling.
	var (
		raw   any
		asF   float64
		float bool
	)
	switch f.in {
	case "INT16":
		raw, asF = int64(int16(u)), float64(int16(u))
	case "INT32":
		raw, asF = int64(int32(u)), float64(int32(u))
	case "INT64":
		raw, asF = int64(u), float64(int64(u))
	case "UINT16", "UINT32", "UINT64":
		raw, asF = u, float64(u)
	case "FLOAT32":
		f32 := math.Float32frombits(uint32(u))
		raw, asF, float = float64(f32), float64(f32), true
	case "FLOAT64":
		raw, asF, float = math.Float64frombits(u), math.Float64frombits(u), true
	}
	if f.scale != 0 {
		x := asF * f.scale
		switch f.out {
		case "FLOAT64":
			return x
		case "INT64":
			return int64(x)
		case "UINT64":
			return uint64(x)
		case "native": // the register style: the input's own type
			switch f.in {
			case "INT16":
				return int64(int16(x))
			case "INT32":
				return int64(int32(x))
			case "INT64":
				return int64(x)
			case "UINT16":
				return uint64(uint16(x))
			case "UINT32":
				return uint64(uint32(x))
			case "UINT64":
				return uint64(x)
			case "FLOAT32":
				return float64(float32(float64(float32(asF)) * f.scale))
			case "FLOAT64":
				return x
			}
		}
		panic("oracle: output " + f.out)
	}
	switch f.out {
	case "native":
		return raw
	case "FLOAT64":
		return asF
	case "INT64":
		if float {
			return int64(asF)
		}
		if v, ok := raw.(uint64); ok {
			return int64(v)
		}
		return raw
	case "UINT64":
		if float {
			return uint64(asF)
		}
		if v, ok := raw.(int64); ok {
			return uint64(v)
		}
		return raw
	}
	panic("oracle: output " + f.out)
}

// fill sets random registers and bits under every field of slave, with
// printable text under strings and no NaN or infinity under floats.
func fill(t *testing.T, u *simulator.Unit, fields []tgField, slave int, rng *rand.Rand) {
	t.Helper()
	for _, f := range fields {
		if f.slave != slave {
			continue
		}
		if f.table.Bits() {
			if err := u.SetBits(f.table, uint16(f.address), []bool{rng.IntN(2) == 1}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		regs := make([]uint16, f.regs)
		for i := range regs {
			regs[i] = uint16(rng.Uint32())
		}
		if f.in == "STRING" {
			text := make([]byte, 2*f.regs)
			n := rng.IntN(len(text) + 1)
			for i := 0; i < n; i++ {
				text[i] = byte('A' + rng.IntN(26))
			}
			for i := range regs {
				regs[i] = binary.BigEndian.Uint16(text[2*i:])
			}
		}
		if err := u.SetRegisters(f.table, uint16(f.address), regs); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range fields { // a float must be a number: else 0
		if f.slave != slave || f.table.Bits() || !strings.HasPrefix(f.in, "FLOAT") {
			continue
		}
		if x, ok := f.value(wire(t, u, f)).(float64); ok && (math.IsNaN(x) || math.IsInf(x, 0)) {
			if err := u.SetRegisters(f.table, uint16(f.address), make([]uint16, f.regs)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// wire returns the field's bytes as they travel (each register high byte
// first), or for a coil its bit as one byte.
func wire(t *testing.T, u *simulator.Unit, f tgField) []byte {
	t.Helper()
	if f.table.Bits() {
		bits, err := u.Bits(f.table, uint16(f.address), 1)
		if err != nil {
			t.Fatal(err)
		}
		if bits[0] {
			return []byte{1}
		}
		return []byte{0}
	}
	regs, err := u.Registers(f.table, uint16(f.address), uint16(f.regs))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2*len(regs))
	for i, r := range regs {
		binary.BigEndian.PutUint16(b[2*i:], r)
	}
	return b
}

// matches reports whether Telegraf's field f is the register map's field
// ours of a device of unit unit.
func (f tgField) matches(ours *devices.Field, unit int) bool {
	if f.slave != unit || f.table != ours.Table || f.address != int(ours.Address) {
		return false
	}
	if f.in == "BIT" {
		bit := f.bit
		if f.order == "BADC" || f.order == "DCBA" {
			bit ^= 8
		}
		return ours.Type == devices.TypeBool && ours.Bit == bit
	}
	n := fieldName(f.name)
	return ours.Name == n || strings.HasPrefix(ours.Name, n+"_")
}

// agree reports whether the gateway's value v agrees with Telegraf's tg as
// the package documentation says it should, and why not.
func agree(v devices.Value, tg any, f tgField) (bool, string) {
	switch want := tg.(type) {
	case bool:
		return v.Kind() == devices.KindBool && v.Bool() == want, "bool"
	case string:
		s, _, _ := strings.Cut(want, "\x00")
		s = strings.TrimRight(s, " ")
		return v.Kind() == devices.KindString && v.String() == s, "string up to its first NUL"
	}
	if v.Kind() == devices.KindBool { // a coil or BIT: Telegraf's 0 or 1
		one := uint64(0)
		if v.Bool() {
			one = 1
		}
		return tg == one, "0/1"
	}
	var got float64
	switch v.Kind() {
	case devices.KindInt64:
		got = float64(v.Int64())
		switch want := tg.(type) {
		case int64:
			return v.Int64() == want, "exact"
		case uint64: // output UINT64 of a signed type: Telegraf wraps
			return uint64(v.Int64()) == want, "wrapped to uint64"
		}
	case devices.KindUint64:
		got = float64(v.Uint64())
		switch want := tg.(type) {
		case uint64:
			return v.Uint64() == want, "exact"
		case int64:
			return int64(v.Uint64()) == want, "wrapped to int64"
		}
	case devices.KindFloat64:
		got = v.Float64()
	default:
		return false, "kind " + v.Kind().String()
	}
	switch want := tg.(type) {
	case int64: // Telegraf cut the fraction of a scaled value
		return math.Abs(got-float64(want)) < 1, "Telegraf's integer part"
	case uint64:
		return math.Abs(got-float64(want)) < 1, "Telegraf's integer part"
	case float64:
		tol := 1e-12
		if f.in == "FLOAT32" {
			tol = 1e-6 // float32 precision: the gateway widens to the shortest decimal
		}
		return got == want || math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-300), fmt.Sprintf("relative %g", tol)
	}
	return false, fmt.Sprintf("Telegraf's %T", tg)
}

// valueRig is an import of a testdata config served by a simulator: a
// unit per slave with random registers, and a connection to it.
type valueRig struct {
	tg      []tgField
	cfg     gateway.Config
	classes map[string]*devices.Class
	sim     *simulator.Server
	conn    *modbus.Conn
}

func newValueRig(t *testing.T, c importCase) *valueRig {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", c.conf))
	if err != nil {
		t.Fatal(err)
	}
	r := &valueRig{tg: tgFields(t, src, c.opts.LegacyFloat32)}
	res := importFile(t, c)
	var dir string
	r.cfg, dir = loadImported(t, res)
	if r.classes, err = devices.LoadDir(filepath.Join(dir, "devices")); err != nil {
		t.Fatal(err)
	}
	if r.sim, err = simulator.New(simulator.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.sim.Close() })
	rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
	slaves := map[int]bool{}
	for _, f := range r.tg {
		slaves[f.slave] = true
	}
	for _, slave := range slices.Sorted(maps.Keys(slaves)) {
		u, err := r.sim.AddUnit(uint8(slave), simulator.Sizes{Coils: 65536, DiscreteInputs: 65536, HoldingRegisters: 65536, InputRegisters: 65536})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, u, r.tg, slave, rng)
	}
	// Every device is read over TCP from the simulator, whatever its
	// connection: the test is about the values.
	if r.conn, err = modbus.NewConn(modbus.ConnConfig{Name: "sim", Address: r.sim.Addr().String()}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return r
}

// read polls device d once with the gateway's own poll code.
func (r *valueRig) read(t *testing.T, d gateway.DeviceConfig) devices.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := modbus.Probe(ctx, modbus.Device{ID: d.ID, Class: r.classes[d.Class], Conn: r.conn, Unit: *d.Unit})
	if err != nil {
		t.Fatalf("device %s: %v", d.ID, err)
	}
	return pr.Sample
}

// match returns the Telegraf field a field of device d comes from.
func (r *valueRig) match(t *testing.T, d gateway.DeviceConfig, ours *devices.Field) tgField {
	t.Helper()
	var match []tgField
	for _, f := range r.tg {
		if f.matches(ours, int(*d.Unit)) {
			match = append(match, f)
		}
	}
	if len(match) != 1 {
		t.Fatalf("device %s field %s: %d Telegraf fields match it: %+v", d.ID, ours.Name, len(match), match)
	}
	return match[0]
}

func TestImportedMapsReadAsTelegraf(t *testing.T) {
	for _, c := range importCases {
		t.Run(c.name, func(t *testing.T) {
			r := newValueRig(t, c)
			compared := 0
			for _, d := range r.cfg.Devices {
				sample := r.read(t, d)
				class := r.classes[d.Class]
				for i := range class.Fields {
					ours := &class.Fields[i]
					f := r.match(t, d, ours)
					v, ok := sample.Fields[ours.Name]
					if !ok {
						t.Fatalf("device %s field %s: no value (%s)", d.ID, ours.Name, sample.Errors[ours.Name])
					}
					raw := wire(t, r.sim.Unit(*d.Unit), f)
					want := f.value(raw)
					if ok, how := agree(v, want, f); !ok {
						t.Errorf("device %s field %s (Telegraf %q %s %s order %s scale %v output %s) on % x: gateway %v (%s), Telegraf %v (%T); want %s",
							d.ID, ours.Name, f.name, f.table, f.in, f.order, f.scale, f.out, raw, v, v.Kind(), want, want, how)
					}
					compared++
				}
			}
			if compared == 0 {
				t.Fatal("no field compared")
			}
			t.Logf("%d fields read as Telegraf reads them", compared)
		})
	}
}
