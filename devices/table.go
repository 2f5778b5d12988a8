package devices

import "fmt"

// Table is one of the four Modbus data tables a field lives in.
type Table uint8

// The Modbus data tables. Coils and discrete inputs hold single bits;
// input and holding registers hold 16-bit words.
const (
	Coils            Table = iota + 1 // read with function 1, read-write
	DiscreteInputs                    // read with function 2, read-only
	HoldingRegisters                  // read with function 3, read-write
	InputRegisters                    // read with function 4, read-only
)

// MaxReadRegisters and MaxReadBits are the most registers and bits one
// Modbus read request may ask for (the Modbus application protocol
// specification v1.1b3, functions 3/4 and 1/2).
const (
	MaxReadRegisters = 125
	MaxReadBits      = 2000
)

// String returns the table's name as register-map files spell it.
func (t Table) String() string {
	switch t {
	case Coils:
		return "coil"
	case DiscreteInputs:
		return "discrete_input"
	case HoldingRegisters:
		return "holding_register"
	case InputRegisters:
		return "input_register"
	}
	return fmt.Sprintf("table(%d)", uint8(t))
}

// ParseTable is the inverse of String.
func ParseTable(s string) (Table, error) {
	for t := Coils; t <= InputRegisters; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown register table %q (want coil, discrete_input, holding_register or input_register)", s)
}

// Bits reports whether the table holds single bits rather than registers.
func (t Table) Bits() bool { return t == Coils || t == DiscreteInputs }

// ReadFunction is the Modbus function code that reads the table.
func (t Table) ReadFunction() uint8 {
	switch t {
	case Coils:
		return 1
	case DiscreteInputs:
		return 2
	case HoldingRegisters:
		return 3
	case InputRegisters:
		return 4
	}
	return 0
}

// MaxRead is the most items (bits or registers) one read of the table may
// ask for.
func (t Table) MaxRead() int {
	if t.Bits() {
		return MaxReadBits
	}
	return MaxReadRegisters
}
