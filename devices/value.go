package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the kind of a Value.
type Kind uint8

// The kinds of Value. The zero Value has KindInvalid.
const (
	KindInvalid Kind = iota
	KindBool
	KindInt64
	KindUint64
	KindFloat64
	KindString
)

var kindNames = [...]string{
	KindInvalid: "invalid",
	KindBool:    "bool",
	KindInt64:   "int64",
	KindUint64:  "uint64",
	KindFloat64: "float64",
	KindString:  "string",
}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is one field's engineering value: exactly one of a bool, an int64, a
// uint64, a float64 or a string. Values are small, immutable and compared
// with Equal. The zero Value is invalid; it encodes as JSON null, which
// DecodeSample rejects.
type Value struct {
	kind Kind
	num  uint64 // the bool (0 or 1), the int64's or float64's bits, or the uint64
	str  string
}

// BoolValue returns a Value holding b.
func BoolValue(b bool) Value {
	if b {
		return Value{kind: KindBool, num: 1}
	}
	return Value{kind: KindBool}
}

// Int64Value returns a Value holding i.
func Int64Value(i int64) Value { return Value{kind: KindInt64, num: uint64(i)} }

// Uint64Value returns a Value holding u.
func Uint64Value(u uint64) Value { return Value{kind: KindUint64, num: u} }

// Float64Value returns a Value holding f. A NaN or infinite f cannot be
// written as JSON: AppendJSON writes null for it and MarshalJSON fails.
// Decoding never produces one.
func Float64Value(f float64) Value { return Value{kind: KindFloat64, num: math.Float64bits(f)} }

// StringValue returns a Value holding s.
func StringValue(s string) Value { return Value{kind: KindString, str: s} }

// Kind returns the kind of value v holds.
func (v Value) Kind() Kind { return v.kind }

// Bool returns v's bool. It panics if v is not a KindBool.
func (v Value) Bool() bool {
	v.must(KindBool)
	return v.num == 1
}

// Int64 returns v's int64. It panics if v is not a KindInt64.
func (v Value) Int64() int64 {
	v.must(KindInt64)
	return int64(v.num)
}

// Uint64 returns v's uint64. It panics if v is not a KindUint64.
func (v Value) Uint64() uint64 {
	v.must(KindUint64)
	return v.num
}

// Float64 returns v's float64. It panics if v is not a KindFloat64.
func (v Value) Float64() float64 {
	v.must(KindFloat64)
	return math.Float64frombits(v.num)
}

// String returns v's string if v is a KindString, and otherwise v's value
// as text: true or false, a number as AppendJSON writes it, NaN, +Inf or
// -Inf, or "<invalid>" for the zero Value.
func (v Value) String() string {
	switch v.kind {
	case KindString:
		return v.str
	case KindInvalid:
		return "<invalid>"
	case KindFloat64:
		if f := v.Float64(); math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return string(v.AppendJSON(nil))
}

// Any returns v's value as a bool, int64, uint64, float64 or string, or nil
// for the zero Value.
func (v Value) Any() any {
	switch v.kind {
	case KindBool:
		return v.Bool()
	case KindInt64:
		return v.Int64()
	case KindUint64:
		return v.Uint64()
	case KindFloat64:
		return v.Float64()
	case KindString:
		return v.str
	}
	return nil
}

func (v Value) must(k Kind) {
	if v.kind != k {
		panic(fmt.Sprintf("devices: Value is %s, not %s", v.kind, k))
	}
}

// Equal reports whether v and w hold the same value. JSON has one integer
// type, so a KindInt64 and a KindUint64 holding the same number are equal;
// floats compare with ==, so a NaN equals nothing.
func (v Value) Equal(w Value) bool {
	switch {
	case v.kind == KindInt64 && w.kind == KindUint64:
		return int64(v.num) >= 0 && v.num == w.num
	case v.kind == KindUint64 && w.kind == KindInt64:
		return int64(w.num) >= 0 && v.num == w.num
	case v.kind != w.kind:
		return false
	case v.kind == KindFloat64:
		return v.Float64() == w.Float64()
	}
	return v.num == w.num && v.str == w.str
}

// AppendJSON appends v as a JSON bool, number or string and returns the
// extended buffer. A float64 always carries a fraction or an exponent (2.0,
// not 2), so a reader keeps its kind; integers are written digit for digit,
// so a uint64 beyond 2^53 stays exact. A string's invalid UTF-8 is written
// as U+FFFD. The zero Value and a NaN or infinite float64 are written as
// null.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case KindBool:
		return strconv.AppendBool(dst, v.Bool())
	case KindInt64:
		return strconv.AppendInt(dst, v.Int64(), 10)
	case KindUint64:
		return strconv.AppendUint(dst, v.num, 10)
	case KindFloat64:
		return appendFloat(dst, v.Float64())
	case KindString:
		return appendString(dst, v.str)
	}
	return append(dst, "null"...)
}

// MarshalJSON implements json.Marshaler like AppendJSON, except that a NaN
// or infinite float64 is an error wrapping ErrNotFinite.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.kind == KindFloat64 {
		if f := v.Float64(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %v", ErrNotFinite, f)
		}
	}
	return v.AppendJSON(nil), nil
}

// UnmarshalJSON implements json.Unmarshaler. It accepts a JSON bool,
// number or string, as DecodeSample reads a field value: an integer becomes
// a KindInt64, or a KindUint64 when it exceeds the int64 range; a number
// with a fraction or an exponent becomes a KindFloat64.
func (v *Value) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	w, err := tokenValue(tok)
	if err != nil {
		return err
	}
	*v = w
	return nil
}

// tokenValue converts one JSON token, as a json.Decoder with UseNumber
// returns it, into a Value.
func tokenValue(tok json.Token) (Value, error) {
	switch t := tok.(type) {
	case bool:
		return BoolValue(t), nil
	case string:
		return StringValue(t), nil
	case json.Number:
		return parseNumber(string(t))
	case nil:
		return Value{}, fmt.Errorf("null is not a value (a field without a value belongs under errors)")
	}
	return Value{}, fmt.Errorf("%v opens an object or array, want a bool, number or string", tok)
}

// parseNumber converts the text of a JSON number into a Value.
func parseNumber(s string) (Value, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, fmt.Errorf("number %s is out of the float64 range", s)
		}
		return Float64Value(f), nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Int64Value(i), nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return Uint64Value(u), nil
	}
	return Value{}, fmt.Errorf("integer %s is out of the int64 and uint64 ranges", s)
}

// appendFloat writes f as encoding/json does (ES6 number formatting: plain
// decimals, an exponent only below 1e-6 or from 1e21), adding ".0" where
// the text would otherwise read as an integer.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	start := len(dst)
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(dst); n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	if !bytes.ContainsAny(dst[start:], ".e") {
		dst = append(dst, ".0"...)
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// plainASCII holds the bytes a JSON string carries as they are: ASCII
// from the space on, but for '"' and '\\'.
var plainASCII = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	i := 0
	for i < len(s) && plainASCII[s[i]] {
		i++
	}
	if i == len(s) { // names and most values: nothing to escape or check
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
