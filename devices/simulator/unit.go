package simulator

import (
	"fmt"
	"sync"

	"github.com/factorywire/factorywire/devices"
)

// Sizes is the number of addresses in each of a unit's four tables. A
// table of size n serves addresses 0..n-1; size 0 means the unit has no
// such table (every access is exception 2, illegal data address). Each
// size is at most 65536.
type Sizes struct {
	Coils            int
	DiscreteInputs   int
	HoldingRegisters int
	InputRegisters   int
}

func (s Sizes) validate() error {
	for _, c := range []struct {
		t devices.Table
		n int
	}{
		{devices.Coils, s.Coils},
		{devices.DiscreteInputs, s.DiscreteInputs},
		{devices.HoldingRegisters, s.HoldingRegisters},
		{devices.InputRegisters, s.InputRegisters},
	} {
		if c.n < 0 || c.n > 65536 {
			return fmt.Errorf("%s size %d: %w", c.t, c.n, ErrSize)
		}
	}
	return nil
}

// Unit is one simulated Modbus device (a slave, addressed by its unit id)
// with its four tables. Its methods are safe for concurrent use with each
// other and with the server serving requests: one mutex guards the tables,
// so every request sees and changes them atomically.
type Unit struct {
	id     uint8
	faults faultSet

	mu       sync.Mutex
	coils    []bool
	discrete []bool
	holding  []uint16
	input    []uint16
	dev      *device // nil unless added with AddDevice
}

func newUnit(id uint8, sizes Sizes) *Unit {
	return &Unit{
		id:       id,
		coils:    make([]bool, sizes.Coils),
		discrete: make([]bool, sizes.DiscreteInputs),
		holding:  make([]uint16, sizes.HoldingRegisters),
		input:    make([]uint16, sizes.InputRegisters),
	}
}

// ID returns the unit id.
func (u *Unit) ID() uint8 { return u.id }

// Sizes returns the sizes of the unit's tables.
func (u *Unit) Sizes() Sizes {
	u.mu.Lock()
	defer u.mu.Unlock()
	return Sizes{len(u.coils), len(u.discrete), len(u.holding), len(u.input)}
}

// SetFaults replaces the unit's faults. They are consulted in order after
// the server's faults (see Server.SetFaults); the first that fires decides
// the reply. With no arguments it clears them. On a validation error the
// previous faults stay in force.
func (u *Unit) SetFaults(faults ...Fault) error {
	if err := u.faults.set(faults); err != nil {
		return fmt.Errorf("unit %d: %w", u.id, err)
	}
	return nil
}

// ClearFaults removes the unit's faults.
func (u *Unit) ClearFaults() { u.faults.set(nil) }

// SetRegisters writes values into the holding or input registers starting
// at addr. For a device unit, a register a field covers is overwritten by
// the field's generator at the next tick.
func (u *Unit) SetRegisters(t devices.Table, addr uint16, values []uint16) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	bank, err := u.registers(t, addr, len(values))
	if err != nil {
		return err
	}
	copy(bank, values)
	return nil
}

// Registers returns n holding or input registers starting at addr, as a
// client reading them now would see them.
func (u *Unit) Registers(t devices.Table, addr, n uint16) ([]uint16, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refresh()
	bank, err := u.registers(t, addr, int(n))
	if err != nil {
		return nil, err
	}
	return append([]uint16(nil), bank...), nil
}

// SetBits writes values into the coils or discrete inputs starting at addr.
// For a device unit, a bit a field covers is overwritten by the field's
// generator at the next tick.
func (u *Unit) SetBits(t devices.Table, addr uint16, values []bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	bank, err := u.bits(t, addr, len(values))
	if err != nil {
		return err
	}
	copy(bank, values)
	return nil
}

// Bits returns n coils or discrete inputs starting at addr, as a client
// reading them now would see them.
func (u *Unit) Bits(t devices.Table, addr, n uint16) ([]bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refresh()
	bank, err := u.bits(t, addr, int(n))
	if err != nil {
		return nil, err
	}
	return append([]bool(nil), bank...), nil
}

// registers returns the slice of the register table t at addr..addr+n-1.
// The caller holds u.mu.
func (u *Unit) registers(t devices.Table, addr uint16, n int) ([]uint16, error) {
	var bank []uint16
	switch t {
	case devices.HoldingRegisters:
		bank = u.holding
	case devices.InputRegisters:
		bank = u.input
	default:
		return nil, fmt.Errorf("unit %d: %s holds bits, not registers: %w", u.id, t, ErrTable)
	}
	if int(addr)+n > len(bank) {
		return nil, u.rangeError(t, addr, n, len(bank))
	}
	return bank[addr : int(addr)+n], nil
}

// bits returns the slice of the bit table t at addr..addr+n-1. The caller
// holds u.mu.
func (u *Unit) bits(t devices.Table, addr uint16, n int) ([]bool, error) {
	var bank []bool
	switch t {
	case devices.Coils:
		bank = u.coils
	case devices.DiscreteInputs:
		bank = u.discrete
	default:
		return nil, fmt.Errorf("unit %d: %s holds registers, not bits: %w", u.id, t, ErrTable)
	}
	if int(addr)+n > len(bank) {
		return nil, u.rangeError(t, addr, n, len(bank))
	}
	return bank[addr : int(addr)+n], nil
}

func (u *Unit) rangeError(t devices.Table, addr uint16, n, size int) error {
	return fmt.Errorf("unit %d: %s %d..%d: %w (the table holds %d addresses; size it with Sizes)",
		u.id, t, addr, int(addr)+n-1, ErrAddressRange, size)
}
