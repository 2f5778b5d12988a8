package devices

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Field is one named value of a device class: where it lives, how its
// registers read, and how its raw value becomes an engineering value. Parse
// fills and validates Fields; a Field built by hand should follow the same
// rules (see the package documentation).
type Field struct {
	Name    string  // unique in its class: [a-z][a-z0-9_]*
	Table   Table   // the Modbus table the field lives in
	Address uint16  // 0-based PDU address of its first register or bit
	Type    Type    // data type
	Order   Order   // byte order of a value spanning registers; ABCD or BADC for 16-bit types and strings
	Bit     int     // for a bool in a register table: the bit, 0 (least significant) to 15
	Length  int     // for a string: registers, 2 bytes each, 1 to MaxReadRegisters
	Scale   float64 // engineering value = raw*Scale + Offset; 0 reads as 1
	Offset  float64 // added after Scale
	Unit    string  // engineering unit, for people and dashboards: "V", "bar"
}

// Size returns how many items the field occupies in its table: bits in a
// coil or discrete-input table, registers otherwise.
func (f *Field) Size() int {
	switch {
	case f.Table.Bits():
		return 1
	case f.Type == TypeString:
		return f.Length
	}
	return f.Type.Registers()
}

// DecodeRegisters decodes the field's value from its registers, regs[0]
// being the register at f.Address. It fails if the field lives in a bit
// table, if len(regs) is not f.Size(), or, for a value that cannot be
// carried, with an error wrapping ErrNotFinite.
func (f *Field) DecodeRegisters(regs []uint16) (Value, error) {
	if err := f.checkRegisters(len(regs)); err != nil {
		return Value{}, err
	}
	var buf [2 * MaxReadRegisters]byte
	b := buf[:2*len(regs)]
	for i, r := range regs {
		b[2*i], b[2*i+1] = byte(r>>8), byte(r)
	}
	return f.decode(b)
}

// EncodeRegisters is the inverse of DecodeRegisters: it writes v, an
// engineering value, into regs, the field's registers. Numbers go through
// the inverse of Scale and Offset, rounded to the nearest integer (half
// away from zero) for integer types; a number the type cannot hold is an
// error wrapping ErrRange, a value of the wrong kind one wrapping ErrKind.
// A bool sets or clears only its bit of regs[0], so bool fields sharing a
// register can be written one after another. A string shorter than the
// field is padded with NUL bytes.
func (f *Field) EncodeRegisters(v Value, regs []uint16) error {
	if err := f.checkRegisters(len(regs)); err != nil {
		return err
	}
	if f.Type == TypeBool {
		if v.kind != KindBool {
			return f.kindError(v)
		}
		mask := uint16(1) << uint(f.Bit)
		if v.Bool() {
			regs[0] |= mask
		} else {
			regs[0] &^= mask
		}
		return nil
	}
	var buf [2 * MaxReadRegisters]byte
	b := buf[:2*len(regs)]
	if f.Type == TypeString {
		if err := f.encodeString(v, b); err != nil {
			return err
		}
	} else {
		u, err := f.raw(v)
		if err != nil {
			return err
		}
		putUint(b, u, f.Order)
	}
	for i := range regs {
		regs[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return nil
}

// EncodeBit returns the coil or discrete-input state that carries v, which
// must be a KindBool. It fails if the field lives in a register table.
func (f *Field) EncodeBit(v Value) (bool, error) {
	if !f.Table.Bits() {
		return false, fmt.Errorf("devices: field %q lives in a %s table: use EncodeRegisters", f.Name, f.Table)
	}
	if v.kind != KindBool {
		return false, f.kindError(v)
	}
	return v.Bool(), nil
}

func (f *Field) checkRegisters(n int) error {
	if f.Table.Bits() {
		return fmt.Errorf("devices: field %q lives in a %s table, not in registers", f.Name, f.Table)
	}
	if size := f.Size(); n != size || size < 1 || size > MaxReadRegisters {
		return fmt.Errorf("devices: field %q (%s) occupies %d registers, got %d", f.Name, f.Type, size, n)
	}
	return nil
}

func (f *Field) kindError(v Value) error {
	return fmt.Errorf("%w: field %q is %s, got a %s", ErrKind, f.Name, f.Type, v.kind)
}

// decode decodes the field from b, its registers as they travel: 2 bytes
// each, high byte first. len(b) must be 2*f.Size().
func (f *Field) decode(b []byte) (Value, error) {
	switch f.Type {
	case TypeBool:
		reg := uint16(b[0])<<8 | uint16(b[1])
		return BoolValue(reg>>uint(f.Bit)&1 == 1), nil
	case TypeString:
		return StringValue(decodeString(b, f.Order)), nil
	}
	u := getUint(b, f.Order)
	switch f.Type {
	case TypeInt16:
		return f.fromInt(int64(int16(u)))
	case TypeInt32:
		return f.fromInt(int64(int32(u)))
	case TypeInt64:
		return f.fromInt(int64(u))
	case TypeUint16, TypeUint32, TypeUint64:
		return f.fromUint(u)
	case TypeFloat32:
		x := float64(math.Float32frombits(uint32(u)))
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Value{}, fmt.Errorf("%w: %v", ErrNotFinite, x)
		}
		return f.fromFloat(widen(float32(x)))
	case TypeFloat64:
		return f.fromFloat(math.Float64frombits(u))
	}
	return Value{}, fmt.Errorf("devices: field %q has no valid type (%v)", f.Name, f.Type)
}

// getUint reads a 16-, 32- or 64-bit value from its registers b in byte
// order o.
func getUint(b []byte, o Order) uint64 {
	var u uint64
	words := len(b) / 2
	for i := 0; i < words; i++ {
		j := i
		if o.swapsWords() {
			j = words - 1 - i
		}
		hi, lo := b[2*j], b[2*j+1]
		if o.swapsBytes() {
			hi, lo = lo, hi
		}
		u = u<<16 | uint64(hi)<<8 | uint64(lo)
	}
	return u
}

// putUint is the inverse of getUint: it writes the low 8*len(b) bits of u.
func putUint(b []byte, u uint64, o Order) {
	words := len(b) / 2
	for i := 0; i < words; i++ {
		word := uint16(u >> (16 * (words - 1 - i)))
		j := i
		if o.swapsWords() {
			j = words - 1 - i
		}
		hi, lo := byte(word>>8), byte(word)
		if o.swapsBytes() {
			hi, lo = lo, hi
		}
		b[2*j], b[2*j+1] = hi, lo
	}
}

// decodeString reads a string from its registers: the bytes in order (BADC
// swaps each register's two), up to the first NUL, trailing spaces
// trimmed, invalid UTF-8 replaced by U+FFFD.
func decodeString(b []byte, o Order) string {
	var buf [2 * MaxReadRegisters]byte
	s := buf[:len(b)]
	copy(s, b)
	if o.swapsBytes() {
		for i := 0; i+1 < len(s); i += 2 {
			s[i], s[i+1] = s[i+1], s[i]
		}
	}
	for i, c := range s {
		if c == 0 {
			s = s[:i]
			break
		}
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	if !utf8.Valid(s) {
		return strings.ToValidUTF8(string(s), "\uFFFD")
	}
	return string(s)
}

func (f *Field) encodeString(v Value, b []byte) error {
	if v.kind != KindString {
		return f.kindError(v)
	}
	s := v.str
	if len(s) > len(b) {
		return fmt.Errorf("%w: field %q holds %d bytes, %q has %d", ErrRange, f.Name, len(b), s, len(s))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: field %q: a NUL byte ends a string, %q holds one", ErrRange, f.Name, s)
	}
	copy(b, s)
	if f.Order.swapsBytes() {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	return nil
}

// widen converts a float32 into the float64 nearest the float32's shortest
// decimal form, so 123.456 read as a float32 is 123.456, not
// 123.45600128173828.
func widen(f float32) float64 {
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)
	x, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return float64(f)
	}
	return x
}

// identity reports whether the field's scale and offset leave values as
// they are, so integers stay integers.
func (f *Field) identity() bool {
	return (f.Scale == 0 || f.Scale == 1) && f.Offset == 0
}

func (f *Field) scale() float64 {
	if f.Scale == 0 {
		return 1
	}
	return f.Scale
}

// divisor returns d when the scale is 1/d for an integer d > 1, so that
// 0.1 divides by 10: 1234 becomes 123.4 exactly as written, where a
// multiplication by 0.1 would give 123.40000000000001.
func (f *Field) divisor() (float64, bool) {
	s := f.scale()
	if math.Abs(s) >= 1 {
		return 0, false
	}
	d := 1 / s
	return d, d == math.Trunc(d)
}

// apply turns a raw number into an engineering value.
func (f *Field) apply(x float64) float64 {
	if d, ok := f.divisor(); ok {
		x /= d
	} else {
		x *= f.scale()
	}
	return x + f.Offset
}

// unapply is the inverse of apply.
func (f *Field) unapply(x float64) float64 {
	x -= f.Offset
	if d, ok := f.divisor(); ok {
		return x * d
	}
	return x / f.scale()
}

func (f *Field) fromInt(i int64) (Value, error) {
	if f.identity() {
		return Int64Value(i), nil
	}
	return finite(f.apply(float64(i)))
}

func (f *Field) fromUint(u uint64) (Value, error) {
	if f.identity() {
		return Uint64Value(u), nil
	}
	return finite(f.apply(float64(u)))
}

func (f *Field) fromFloat(x float64) (Value, error) {
	if f.identity() {
		return finite(x)
	}
	return finite(f.apply(x))
}

func finite(x float64) (Value, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Value{}, fmt.Errorf("%w: %v", ErrNotFinite, x)
	}
	return Float64Value(x), nil
}

// raw converts an engineering value into the bits of the field's raw
// number (an integer in two's complement, or an IEEE 754 float).
func (f *Field) raw(v Value) (uint64, error) {
	bits := 16 * f.Type.Registers()
	signed := f.Type == TypeInt16 || f.Type == TypeInt32 || f.Type == TypeInt64
	if f.Type != TypeFloat32 && f.Type != TypeFloat64 && f.identity() && (v.kind == KindInt64 || v.kind == KindUint64) {
		return f.rawInteger(v, bits, signed)
	}
	var x float64
	switch v.kind {
	case KindInt64:
		x = float64(v.Int64())
	case KindUint64:
		x = float64(v.Uint64())
	case KindFloat64:
		x = v.Float64()
	default:
		return 0, f.kindError(v)
	}
	x = f.unapply(x)
	switch f.Type {
	case TypeFloat32:
		// Beyond MaxFloat32 by less than half a float32 step rounds down to
		// it; further out becomes infinite, which only an infinite value may.
		x32 := float32(x)
		if math.IsInf(float64(x32), 0) && !math.IsInf(x, 0) {
			return 0, f.rangeError(v)
		}
		return uint64(math.Float32bits(x32)), nil
	case TypeFloat64:
		return math.Float64bits(x), nil
	}
	r := math.Round(x)
	if signed {
		limit := math.Ldexp(1, bits-1)
		if !(r >= -limit && r < limit) {
			return 0, f.rangeError(v)
		}
		return uint64(int64(r)), nil
	}
	if !(r >= 0 && r < math.Ldexp(1, bits)) {
		return 0, f.rangeError(v)
	}
	return uint64(r), nil
}

// rawInteger converts an integer Value into an unscaled integer field
// exactly, without passing through float64.
func (f *Field) rawInteger(v Value, bits int, signed bool) (uint64, error) {
	if signed {
		if v.kind == KindUint64 && v.num > math.MaxInt64 {
			return 0, f.rangeError(v)
		}
		i := int64(v.num)
		if bits < 64 && (i < -1<<(bits-1) || i >= 1<<(bits-1)) {
			return 0, f.rangeError(v)
		}
		return uint64(i), nil
	}
	if v.kind == KindInt64 && int64(v.num) < 0 || bits < 64 && v.num >= 1<<bits {
		return 0, f.rangeError(v)
	}
	return v.num, nil
}

func (f *Field) rangeError(v Value) error {
	if f.identity() {
		return fmt.Errorf("%w: field %q (%s) cannot hold %v", ErrRange, f.Name, f.Type, v)
	}
	return fmt.Errorf("%w: field %q (%s, scale %v, offset %v) cannot hold %v", ErrRange, f.Name, f.Type, f.scale(), f.Offset, v)
}
