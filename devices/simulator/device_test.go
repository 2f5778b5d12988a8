package simulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/goburrow/modbus"
)

// manualClock is a Config.Clock that tests move by hand.
type manualClock struct{ ns atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *manualClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// loadClasses returns the test class covering every type, order and table,
// and every example register map of configs/devices, so each example can
// be simulated.
func loadClasses(t *testing.T) map[string]*devices.Class {
	t.Helper()
	all, err := devices.Load(filepath.Join("testdata", "all-types.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	classes, err := devices.LoadDir(filepath.Join("..", "..", "configs", "devices"))
	if err != nil {
		t.Fatal(err)
	}
	classes[all.Name] = all
	return classes
}

// readPlan reads every field of the class through the client, following
// the class's read plan, and decodes it.
func readPlan(c modbus.Client, class *devices.Class) (map[string]devices.Value, error) {
	values := map[string]devices.Value{}
	for _, r := range class.Plan.Reads {
		var (
			data []byte
			err  error
		)
		switch r.Table {
		case devices.Coils:
			data, err = c.ReadCoils(r.Address, r.Quantity)
		case devices.DiscreteInputs:
			data, err = c.ReadDiscreteInputs(r.Address, r.Quantity)
		case devices.HoldingRegisters:
			data, err = c.ReadHoldingRegisters(r.Address, r.Quantity)
		case devices.InputRegisters:
			data, err = c.ReadInputRegisters(r.Address, r.Quantity)
		}
		if err != nil {
			return nil, fmt.Errorf("read %v: %w", r, err)
		}
		if len(data) != r.ByteCount() {
			return nil, fmt.Errorf("read %v: %d bytes, want %d", r, len(data), r.ByteCount())
		}
		for _, s := range r.Fields {
			f := s.Field
			if r.Table.Bits() {
				values[f.Name] = devices.BoolValue(data[s.Offset/8]>>(s.Offset%8)&1 == 1)
				continue
			}
			regs := make([]uint16, f.Size())
			for i := range regs {
				regs[i] = binary.BigEndian.Uint16(data[2*(s.Offset+i):])
			}
			v, err := f.DecodeRegisters(regs)
			if err != nil {
				return nil, fmt.Errorf("field %s: decode % x: %w", f.Name, regs, err)
			}
			values[f.Name] = v
		}
	}
	return values, nil
}

func TestDeviceValuesReadBack(t *testing.T) {
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for name, class := range loadClasses(t) {
		t.Run(name, func(t *testing.T) {
			clock := newManualClock(start)
			s := newServer(t, Config{Clock: clock.now})
			d := Device{Class: class, Seed: 7}
			u, err := s.AddDevice(3, d)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := u.Device(); !ok || got.Class != class {
				t.Fatal("Unit.Device does not return the device")
			}
			c, _ := newClient(t, s, 3)
			changed := map[string]bool{}
			var first map[string]devices.Value
			// One tick, the next, and one far later; every loop
			// is bounded by the ticks listed.
			for _, step := range []time.Duration{0, 100 * time.Millisecond, time.Hour} {
				clock.add(step)
				tick := s.Tick()
				got, err := readPlan(c, class)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(class.Fields) {
					t.Fatalf("read %d fields, class has %d", len(got), len(class.Fields))
				}
				for _, f := range class.Fields {
					want, err := d.Value(f.Name, tick)
					if err != nil {
						t.Fatalf("Value(%s, %d): %v", f.Name, tick, err)
					}
					if !got[f.Name].Equal(want) {
						t.Errorf("tick %d field %s: read %v, generator says %v", tick, f.Name, got[f.Name], want)
					}
					if first == nil {
						continue
					}
					if !got[f.Name].Equal(first[f.Name]) {
						changed[f.Name] = true
					}
				}
				if first == nil {
					first = got
				}
			}
			// Over an hour every field but strings (constant) and
			// possibly bools moves.
			for _, f := range class.Fields {
				if f.Type != devices.TypeString && f.Type != devices.TypeBool && !changed[f.Name] {
					t.Errorf("field %s (%s) did not change over an hour: %v", f.Name, f.Type, first[f.Name])
				}
				if f.Type == devices.TypeString && changed[f.Name] {
					t.Errorf("string field %s changed", f.Name)
				}
			}
		})
	}
}

func TestDeviceValuesArePlausible(t *testing.T) {
	class := loadClasses(t)["all-types"]
	seeds := []uint64{1, 2, 3}
	vals := map[uint64]map[string]devices.Value{}
	for _, seed := range seeds {
		d := Device{Class: class, Seed: seed}
		vals[seed] = map[string]devices.Value{}
		for _, f := range class.Fields {
			for tick := int64(17_000_000_000); tick < 17_000_000_000+3000; tick += 7 {
				v, err := d.Value(f.Name, tick)
				if err != nil {
					t.Fatalf("seed %d field %s tick %d: %v", seed, f.Name, tick, err)
				}
				if tick == 17_000_000_000 {
					vals[seed][f.Name] = v
				}
				// Generated raw values: floats 8..1200, walks
				// -1000..1000 (0..1000 unsigned); scale and
				// offset apply on top.
				var lo, hi float64
				switch f.Type {
				case devices.TypeFloat32, devices.TypeFloat64:
					lo, hi = 8, 1200
				case devices.TypeInt16, devices.TypeInt32, devices.TypeInt64:
					lo, hi = -1000, 1000
				case devices.TypeUint16:
					lo, hi = 0, 1000
				default:
					continue
				}
				scale := f.Scale
				if scale == 0 {
					scale = 1
				}
				x := number(v)
				if raw := (x - f.Offset) / scale; raw < lo-1e-6 || raw > hi+1e-6 {
					t.Errorf("seed %d field %s tick %d: %v (raw %v) outside %v..%v", seed, f.Name, tick, v, raw, lo, hi)
				}
			}
		}
	}
	t.Run("same seed, same values", func(t *testing.T) {
		d := Device{Class: class, Seed: 1}
		for _, f := range class.Fields {
			v, _ := d.Value(f.Name, 17_000_000_000)
			if !v.Equal(vals[1][f.Name]) {
				t.Errorf("field %s: %v then %v", f.Name, vals[1][f.Name], v)
			}
		}
	})
	t.Run("other seed, other values", func(t *testing.T) {
		same := 0
		for _, f := range class.Fields {
			if vals[1][f.Name].Equal(vals[2][f.Name]) {
				same++
			}
		}
		if same > len(class.Fields)/2 {
			t.Errorf("seeds 1 and 2 agree on %d of %d fields", same, len(class.Fields))
		}
	})
}

func TestDeviceWrites(t *testing.T) {
	class := loadClasses(t)["all-types"]
	clock := newManualClock(time.Unix(1_700_000_000, 0))
	s := newServer(t, Config{Clock: clock.now, TickPeriod: time.Second})
	d := Device{Class: class, Seed: 9}
	u, err := s.AddDevice(1, d)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Sizes(); got != (Sizes{Coils: 4, DiscreteInputs: 2501, HoldingRegisters: 31, InputRegisters: 301}) {
		t.Errorf("Sizes() = %+v, want the extent of the fields", got)
	}
	c, _ := newClient(t, s, 1)
	// Register 18 is no field's: a write there stays. Register 0
	// (pressure) is overwritten by the generator at the next tick.
	if _, err := c.WriteSingleRegister(18, 0x4242); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteSingleRegister(0, 0x7FFF); err != nil {
		t.Fatal(err)
	}
	read := func(addr uint16) uint16 {
		b, err := c.ReadHoldingRegisters(addr, 1)
		if err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint16(b)
	}
	if r := read(0); r != 0x7FFF {
		t.Errorf("pressure register within the tick = %#x, want the written 0x7fff", r)
	}
	clock.add(time.Second)
	want, _ := d.Value("pressure", s.Tick())
	f := class.Field("pressure")
	got, err := f.DecodeRegisters([]uint16{read(0)})
	if err != nil || !got.Equal(want) {
		t.Errorf("pressure after the tick = %v (%v), want the generated %v", got, err, want)
	}
	if r := read(18); r != 0x4242 {
		t.Errorf("register 18 after the tick = %#x, want 0x4242", r)
	}
	regs, err := u.Registers(devices.HoldingRegisters, 0, 1)
	if err != nil || regs[0] != read(0) {
		t.Errorf("Unit.Registers = %v, %v; want what the client reads", regs, err)
	}
}

func TestAddDeviceErrors(t *testing.T) {
	s := newServer(t, Config{})
	cases := []struct {
		name string
		d    Device
	}{
		{"no class", Device{}},
		{"no fields", Device{Class: &devices.Class{Name: "empty"}}},
		{"unknown table", Device{Class: &devices.Class{Name: "x", Fields: []devices.Field{{Name: "a", Type: devices.TypeUint16}}}}},
		{"past 65535", Device{Class: &devices.Class{Name: "x", Fields: []devices.Field{{Name: "a", Table: devices.HoldingRegisters, Address: 65535, Type: devices.TypeUint32}}}}},
		{"unknown type", Device{Class: &devices.Class{Name: "x", Fields: []devices.Field{{Name: "a", Table: devices.HoldingRegisters, Type: 99}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AddDevice(1, tc.d); !errors.Is(err, ErrDevice) {
				t.Errorf("AddDevice: %v, want ErrDevice", err)
			}
		})
	}
	if s.Unit(1) != nil {
		t.Error("a failed AddDevice left a unit")
	}
	t.Run("Value of an unknown field", func(t *testing.T) {
		d := Device{Class: loadClasses(t)["all-types"]}
		if _, err := d.Value("nope", 0); !errors.Is(err, ErrDevice) {
			t.Errorf("Value: %v, want ErrDevice", err)
		}
	})
}

// number returns a numeric Value as a float64.
func number(v devices.Value) float64 {
	switch v.Kind() {
	case devices.KindInt64:
		return float64(v.Int64())
	case devices.KindUint64:
		return float64(v.Uint64())
	case devices.KindFloat64:
		return v.Float64()
	}
	panic("not a number: " + v.String())
}

// TestDeviceConcurrentReads reads a device from several connections while
// its values change every millisecond, and through the Unit accessors: run
// with -race, it checks that generation and serving share the unit's lock.
func TestDeviceConcurrentReads(t *testing.T) {
	class := loadClasses(t)["all-types"]
	s := newServer(t, Config{TickPeriod: time.Millisecond})
	u, err := s.AddDevice(1, Device{Class: class, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		c, _ := newClient(t, s, 1)
		wg.Go(func() {
			for range 20 {
				if _, err := readPlan(c, class); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			if _, err := u.Registers(devices.InputRegisters, 0, 8); err != nil {
				t.Error(err)
				return
			}
			if _, err := u.Bits(devices.Coils, 0, 4); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}
