package devices

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultMaxGap is the gap, in registers, that a read spans between two
// fields when a register map does not set max_gap. Reading ten unused
// registers costs 20 bytes, far less than a second request's round trip.
const DefaultMaxGap = 10

// Plan is a class's fields compiled into Modbus reads: every field is
// served by exactly one read. Reads are ordered by table (coils, discrete
// inputs, holding registers, input registers), then by address.
type Plan struct {
	Reads []Read
}

// Read is one Modbus read request and the fields its response carries.
type Read struct {
	Table    Table
	Address  uint16 // first register or bit
	Quantity uint16 // registers or bits, 1 to the plan's limit for the table
	Fields   []Slot // the fields served, ordered by address (then bit)
}

// Slot places a field inside a read.
type Slot struct {
	Field  *Field // an element of the Class's Fields
	Offset int    // the field's first register or bit, counted from Read.Address
	// Index is Field's index in the Class's Fields, as Compile sets it;
	// Values checks it and otherwise looks the field up by name.
	Index int
}

// PlanOptions are the per-connection limits a plan obeys. The zero value
// gives Modbus's own limits.
type PlanOptions struct {
	// MaxRegisters is the most registers one read of a holding- or
	// input-register table asks for, 1 to MaxReadRegisters (125); 0 means
	// 125. Some devices accept fewer, 64 being common.
	MaxRegisters int

	// MaxBits is the most bits one read of a coil or discrete-input table
	// asks for, 1 to MaxReadBits (2000); 0 means 2000.
	MaxBits int
}

func (o PlanOptions) limit(t Table) int {
	if t.Bits() {
		if o.MaxBits == 0 {
			return MaxReadBits
		}
		return o.MaxBits
	}
	if o.MaxRegisters == 0 {
		return MaxReadRegisters
	}
	return o.MaxRegisters
}

// ByteCount returns the length of a correct response's data (the bytes
// after the Modbus byte-count octet): 2 per register, or 1 per 8 bits
// rounded up.
func (r Read) ByteCount() int {
	if r.Table.Bits() {
		return (int(r.Quantity) + 7) / 8
	}
	return 2 * int(r.Quantity)
}

// Compile builds the class's read plan under opts. Per table, fields are
// sorted by address, and a field joins the read before it while the gap
// between them is at most MaxGap registers (16×MaxGap bits in a bit table,
// the same response bytes) and the read stays within the table's limit.
// Compile fails if opts are out of range or a field alone exceeds the
// limit (a string longer than MaxRegisters).
func (c *Class) Compile(opts PlanOptions) (Plan, error) {
	if opts.MaxRegisters < 0 || opts.MaxRegisters > MaxReadRegisters {
		return Plan{}, fmt.Errorf("devices: max registers per read %d out of range 1..%d", opts.MaxRegisters, MaxReadRegisters)
	}
	if opts.MaxBits < 0 || opts.MaxBits > MaxReadBits {
		return Plan{}, fmt.Errorf("devices: max bits per read %d out of range 1..%d", opts.MaxBits, MaxReadBits)
	}
	var plan Plan
	for t := Coils; t <= InputRegisters; t++ {
		reads, err := c.compileTable(t, opts.limit(t))
		if err != nil {
			return Plan{}, err
		}
		plan.Reads = append(plan.Reads, reads...)
	}
	return plan, nil
}

// compileTable merges the fields of table t into reads of at most limit
// items.
func (c *Class) compileTable(t Table, limit int) ([]Read, error) {
	fields := c.tableFields(t)
	gap := max(c.MaxGap, 0)
	if t.Bits() {
		gap *= 16
	}
	var reads []Read
	var start, end int // the current read's items: [start, end)
	for _, i := range fields {
		f := &c.Fields[i]
		s, e := int(f.Address), int(f.Address)+f.Size()
		if f.Size() > limit {
			return nil, fmt.Errorf("devices: class %q: field %q occupies %d %s, more than the %d one read may ask for",
				c.Name, f.Name, f.Size(), itemNoun(t, f.Size()), limit)
		}
		if len(reads) > 0 && s-end <= gap && max(end, e)-start <= limit {
			end = max(end, e)
		} else {
			reads = append(reads, Read{Table: t, Address: f.Address})
			start, end = s, e
		}
		r := &reads[len(reads)-1]
		r.Quantity = uint16(end - start)
		r.Fields = append(r.Fields, Slot{Field: f, Offset: s - start, Index: i})
	}
	return reads, nil
}

// tableFields returns the indexes in Fields of the fields of table t, sorted by
// address, then bit, then declaration order.
func (c *Class) tableFields(t Table) []int {
	var fields []int
	for i := range c.Fields {
		if c.Fields[i].Table == t {
			fields = append(fields, i)
		}
	}
	slices.SortStableFunc(fields, func(a, b int) int {
		fa, fb := &c.Fields[a], &c.Fields[b]
		return cmp.Or(cmp.Compare(fa.Address, fb.Address), cmp.Compare(fa.Bit, fb.Bit))
	})
	return fields
}

// addressRange formats n items from address a: "7", "10-11".
func addressRange(a uint16, n int) string {
	if n == 1 {
		return strconv.Itoa(int(a))
	}
	return fmt.Sprintf("%d-%d", a, int(a)+n-1)
}

// itemNoun names n items of table t: "1 register", "16 bits".
func itemNoun(t Table, n int) string {
	noun := "register"
	if t.Bits() {
		noun = "bit"
	}
	if n != 1 {
		noun += "s"
	}
	return noun
}

// String formats the plan for people, one read a line, as `gateway check`
// prints it:
//
//	holding_register 0-11 (12 registers): pressure@0 setpoint@1 running@5.3 cycles@10
func (p Plan) String() string {
	var b strings.Builder
	for i, r := range p.Reads {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// String formats the read for people: table, address range, quantity and
// each field at its address (and bit).
func (r Read) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%d %s):", r.Table, addressRange(r.Address, int(r.Quantity)), r.Quantity, itemNoun(r.Table, int(r.Quantity)))
	for _, s := range r.Fields {
		fmt.Fprintf(&b, " %s@%d", s.Field.Name, s.Field.Address)
		if s.Field.Type == TypeBool && !r.Table.Bits() {
			fmt.Fprintf(&b, ".%d", s.Field.Bit)
		}
	}
	return b.String()
}
