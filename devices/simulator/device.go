package simulator

import (
	"fmt"
	"math"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// Device is a simulated device of a class: its fields take generated
// values, each a pure function of (Seed, field name, tick). See doc.go for
// the generator of each type.
type Device struct {
	Class *devices.Class // the register map; must not change while served
	Seed  uint64         // distinguishes devices of one class
}

// Value returns the value the named field has at tick: the value a client
// reading the field during that tick decodes (with the field's scale,
// offset and byte order). Tests compare what a poller read with it.
func (d Device) Value(field string, tick int64) (devices.Value, error) {
	if d.Class == nil {
		return devices.Value{}, fmt.Errorf("device value: no class: %w", ErrDevice)
	}
	f := d.Class.Field(field)
	if f == nil {
		return devices.Value{}, fmt.Errorf("device value: class %q has no field %q: %w", d.Class.Name, field, ErrDevice)
	}
	g := newFieldGen(d.Seed, f)
	if f.Table.Bits() {
		return devices.BoolValue(g.bit(tick)), nil
	}
	regs := make([]uint16, f.Size())
	if err := g.registers(tick, regs); err != nil {
		return devices.Value{}, err
	}
	return f.DecodeRegisters(regs)
}

// AddDevice adds a unit simulating d: its tables are sized to hold the
// class's fields, and the fields' values follow the generators, advancing
// once per Config.TickPeriod of Config.Clock. Values are computed when a
// request for the unit (or a Unit accessor) finds the tick changed: no
// goroutine runs, and a test that fixes the clock fixes the values. A
// client may write to the unit; a write to a field's registers lasts until
// the next tick, other addresses keep what was written.
func (s *Server) AddDevice(id uint8, d Device) (*Unit, error) {
	sizes, err := d.sizes()
	if err != nil {
		return nil, fmt.Errorf("add device unit %d: %w", id, err)
	}
	u := newUnit(id, sizes)
	dev := &device{Device: d, clock: s.cfg.Clock, period: s.cfg.TickPeriod, tick: math.MinInt64}
	for i := range d.Class.Fields {
		dev.gens = append(dev.gens, newFieldGen(d.Seed, &d.Class.Fields[i]))
	}
	// Generate once now: a field the generators cannot encode fails here,
	// not at the first request.
	if err := dev.apply(u, dev.now()); err != nil {
		return nil, fmt.Errorf("add device unit %d: class %q: %w: %w", id, d.Class.Name, ErrDevice, err)
	}
	u.dev = dev
	return s.add(u)
}

// Tick returns the current generator tick: Config.Clock's time in
// nanoseconds since the Unix epoch divided by Config.TickPeriod, rounded
// down.
func (s *Server) Tick() int64 { return tickAt(s.cfg.Clock(), s.cfg.TickPeriod) }

// Device returns the device a unit simulates, and false for a unit added
// with AddUnit.
func (u *Unit) Device() (Device, bool) {
	if u.dev == nil {
		return Device{}, false
	}
	return u.dev.Device, true
}

func tickAt(t time.Time, period time.Duration) int64 {
	return floorDiv(t.UnixNano(), int64(period))
}

// sizes checks the class and returns table sizes that hold its fields.
func (d Device) sizes() (Sizes, error) {
	if d.Class == nil {
		return Sizes{}, fmt.Errorf("no class: %w", ErrDevice)
	}
	if len(d.Class.Fields) == 0 {
		return Sizes{}, fmt.Errorf("class %q has no fields: %w", d.Class.Name, ErrDevice)
	}
	var sz Sizes
	for i := range d.Class.Fields {
		f := &d.Class.Fields[i]
		end := int(f.Address) + f.Size()
		if f.Size() < 1 || end > 65536 {
			return Sizes{}, fmt.Errorf("class %q field %q: %s %d..%d is outside 0..65535: %w", d.Class.Name, f.Name, f.Table, f.Address, end-1, ErrDevice)
		}
		var n *int
		switch f.Table {
		case devices.Coils:
			n = &sz.Coils
		case devices.DiscreteInputs:
			n = &sz.DiscreteInputs
		case devices.HoldingRegisters:
			n = &sz.HoldingRegisters
		case devices.InputRegisters:
			n = &sz.InputRegisters
		default:
			return Sizes{}, fmt.Errorf("class %q field %q: unknown table %v: %w", d.Class.Name, f.Name, f.Table, ErrDevice)
		}
		*n = max(*n, end)
	}
	return sz, nil
}

// device is the generator state of a device unit.
type device struct {
	Device
	clock  func() time.Time
	period time.Duration
	tick   int64 // the tick the unit's tables hold; MinInt64 before the first
	gens   []fieldGen
}

func (d *device) now() int64 { return tickAt(d.clock(), d.period) }

// apply writes every field's value at tick into the unit's tables. The
// caller holds u.mu (or owns u exclusively).
func (d *device) apply(u *Unit, tick int64) error {
	for i := range d.gens {
		g := &d.gens[i]
		f := g.f
		if f.Table.Bits() {
			bank, err := u.bits(f.Table, f.Address, 1)
			if err != nil {
				return err
			}
			bank[0] = g.bit(tick)
			continue
		}
		bank, err := u.registers(f.Table, f.Address, f.Size())
		if err != nil {
			return err
		}
		if err := g.registers(tick, bank); err != nil {
			return err
		}
	}
	d.tick = tick
	return nil
}

// refresh brings a device unit's tables up to the current tick. The caller
// holds u.mu.
func (u *Unit) refresh() {
	if u.dev == nil {
		return
	}
	if t := u.dev.now(); t != u.dev.tick {
		// AddDevice generated once with the same fields, so this
		// cannot fail.
		u.dev.apply(u, t)
	}
}

// fieldGen generates one field's values.
type fieldGen struct {
	f   *devices.Field
	raw devices.Field // f without scale and offset: registers get raw values
	h   uint64        // hash of the seed and the field name
}

func newFieldGen(seed uint64, f *devices.Field) fieldGen {
	raw := *f
	raw.Scale, raw.Offset = 1, 0
	return fieldGen{f: f, raw: raw, h: mix(seed ^ fnv64(f.Name))}
}

// bit returns a bool field's state at tick: it toggles every 10 to 100
// ticks, with a phase of its own.
func (g *fieldGen) bit(tick int64) bool {
	period := 10 + int64(g.h%91)
	phase := int64(g.h>>8) % period
	return floorDiv(tick+phase, period)%2 != 0
}

// registers writes the field's value at tick into regs, its registers. A
// bool in a register table sets or clears only its bit.
func (g *fieldGen) registers(tick int64, regs []uint16) error {
	var v devices.Value
	switch g.f.Type {
	case devices.TypeBool:
		v = devices.BoolValue(g.bit(tick))
	case devices.TypeUint32, devices.TypeUint64:
		v = devices.Uint64Value(g.counter(tick))
	case devices.TypeUint16:
		v = devices.Int64Value(g.walk(tick, 0, 1000))
	case devices.TypeInt16, devices.TypeInt32, devices.TypeInt64:
		v = devices.Int64Value(g.walk(tick, -1000, 1000))
	case devices.TypeFloat32, devices.TypeFloat64:
		v = devices.Float64Value(g.wave(tick))
	case devices.TypeString:
		v = devices.StringValue(g.text())
	default:
		return fmt.Errorf("field %q: no generator for type %v", g.f.Name, g.f.Type)
	}
	return g.raw.EncodeRegisters(v, regs)
}

// counter is a 32- or 64-bit unsigned raw value counting up by 1 to 10
// per tick (a total, an uptime), wrapping at the type's width.
func (g *fieldGen) counter(tick int64) uint64 {
	base, step := g.h%1000, 1+(g.h>>16)%10
	c := base + uint64(tick)*step
	if g.f.Type == devices.TypeUint32 {
		c &= 1<<32 - 1
	}
	return c
}

// walk is a raw value in lo..hi that moves in straight lines between
// pseudo-random anchors set every 20 to 99 ticks: a bounded walk that is
// still a pure function of the tick.
func (g *fieldGen) walk(tick, lo, hi int64) int64 {
	width := 20 + int64(g.h>>24)%80
	k := floorDiv(tick, width)
	anchor := func(k int64) float64 { return float64(lo) + float64(hi-lo)*unit(mix(g.h^uint64(k)*0x9e3779b97f4a7c15)) }
	a, b := anchor(k), anchor(k+1)
	frac := float64(tick-k*width) / float64(width)
	return int64(math.Round(a + (b-a)*frac))
}

// wave is a raw value around a centre between 10 and 1000: a sine of
// amplitude centre/5 and period 600 to 2999 ticks, plus noise within
// ±amplitude/50, rounded to 2 decimals (exact in a float32 too).
func (g *fieldGen) wave(tick int64) float64 {
	centre := 10 + float64(g.h%991)
	amp := centre / 5
	period := 600 + int64(g.h>>32)%2400
	phase := int64(g.h>>12) % period
	angle := 2 * math.Pi * float64((tick+phase)%period) / float64(period)
	noise := (unit(mix(g.h^uint64(tick)*0xbf58476d1ce4e5b9)) - 0.5) * amp / 25
	return math.Round((centre+amp*math.Sin(angle)+noise)*100) / 100
}

// text is a string field's constant value, "SIM-" and 8 hex digits of the
// hash, cut to the field's capacity (2 bytes per register).
func (g *fieldGen) text() string {
	s := fmt.Sprintf("SIM-%08X", uint32(g.h>>32))
	return s[:min(len(s), 2*g.f.Length)]
}

// mix is the splitmix64 finaliser: a bijection spreading every input bit
// over the output.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// fnv64 is FNV-1a over s.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// floorDiv divides rounding toward negative infinity, so ticks before the
// epoch (an injected clock at zero) still step evenly.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
