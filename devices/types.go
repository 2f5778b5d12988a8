package devices

import (
	"fmt"
	"strings"
)

// Type is the data type of a field: how many registers its value occupies
// and how their bytes are read.
type Type uint8

// The field data types. A bool is one coil or discrete input, or one bit of
// a register; a string is a field's Length registers of two bytes each.
const (
	TypeBool Type = iota + 1
	TypeInt16
	TypeUint16
	TypeInt32
	TypeUint32
	TypeInt64
	TypeUint64
	TypeFloat32
	TypeFloat64
	TypeString
)

var typeNames = [...]string{
	TypeBool:    "bool",
	TypeInt16:   "int16",
	TypeUint16:  "uint16",
	TypeInt32:   "int32",
	TypeUint32:  "uint32",
	TypeInt64:   "int64",
	TypeUint64:  "uint64",
	TypeFloat32: "float32",
	TypeFloat64: "float64",
	TypeString:  "string",
}

// String returns the type's name as register-map files spell it.
func (t Type) String() string {
	if t >= TypeBool && t <= TypeString {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of String.
func ParseType(s string) (Type, error) {
	for t := TypeBool; t <= TypeString; t++ {
		if typeNames[t] == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown type %q (want %s)", s, wantList(typeNames[TypeBool:]))
}

// Registers returns how many registers a value of the type occupies: 1 for
// bool (one bit of a register), int16 and uint16, 2 for the 32-bit types and
// 4 for the 64-bit types. It returns 0 for string, whose field sets its
// length.
func (t Type) Registers() int {
	switch t {
	case TypeBool, TypeInt16, TypeUint16:
		return 1
	case TypeInt32, TypeUint32, TypeFloat32:
		return 2
	case TypeInt64, TypeUint64, TypeFloat64:
		return 4
	}
	return 0
}

// numeric reports whether values of the type are numbers, which a field
// may scale and offset.
func (t Type) numeric() bool { return t >= TypeInt16 && t <= TypeFloat64 }

// Order is the byte order of a value that spans registers, named by where
// the value's bytes land on the wire: the value's most significant byte is
// A, and the name lists the bytes in the order the registers carry them.
// Each register travels big-endian (high byte first), as Modbus specifies.
type Order uint8

// The byte orders. OrderABCD is the zero value and the default.
const (
	OrderABCD Order = iota // big-endian: registers in order, each high byte first
	OrderCDAB              // word swap: registers reversed, each high byte first
	OrderBADC              // byte swap: registers in order, each low byte first
	OrderDCBA              // little-endian: registers reversed, each low byte first
)

var orderNames = [...]string{
	OrderABCD: "ABCD",
	OrderCDAB: "CDAB",
	OrderBADC: "BADC",
	OrderDCBA: "DCBA",
}

// String returns the order's name as register-map files spell it.
func (o Order) String() string {
	if int(o) < len(orderNames) {
		return orderNames[o]
	}
	return fmt.Sprintf("order(%d)", uint8(o))
}

// ParseOrder is the inverse of String.
func ParseOrder(s string) (Order, error) {
	for o, name := range orderNames {
		if name == s {
			return Order(o), nil
		}
	}
	return 0, fmt.Errorf("unknown byte order %q (want %s)", s, wantList(orderNames[:]))
}

// swapsWords reports whether the order carries the value's registers least
// significant first.
func (o Order) swapsWords() bool { return o == OrderCDAB || o == OrderDCBA }

// swapsBytes reports whether the order carries each register low byte
// first.
func (o Order) swapsBytes() bool { return o == OrderBADC || o == OrderDCBA }

// wantList spells a list of choices for an error message: "a, b or c".
func wantList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
