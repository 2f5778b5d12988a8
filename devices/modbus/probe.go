package modbus

import (
	"context"
	"fmt"
	"slices"

	"github.com/factorywire/factorywire/devices"
)

// ProbeRead is one read of a Probe: the request, the reply's data bytes
// and the read's error.
type ProbeRead struct {
	Read devices.Read
	// Data is the reply's data bytes as Conn.Read returns them: 2 per
	// register, high byte first, or the bits packed least significant
	// first. Nil when Err is set.
	Data []byte
	// Err is nil, the read's error (an *ExceptionError, *LengthError,
	// *ConnError...), or, for a read not sent after a connection-level
	// error, "not read: " and that error.
	Err error
}

// Registers returns Data as registers, for a read of a register table.
func (r ProbeRead) Registers() []uint16 {
	if r.Read.Table.Bits() {
		return nil
	}
	regs := make([]uint16, len(r.Data)/2)
	for i := range regs {
		regs[i] = uint16(r.Data[2*i])<<8 | uint16(r.Data[2*i+1])
	}
	return regs
}

// Bits returns Data as Read.Quantity bits, for a read of a bit table.
func (r ProbeRead) Bits() []bool {
	if !r.Read.Table.Bits() || len(r.Data)*8 < int(r.Read.Quantity) {
		return nil
	}
	bits := make([]bool, r.Read.Quantity)
	for i := range bits {
		bits[i] = r.Data[i/8]>>(i%8)&1 == 1
	}
	return bits
}

// ProbeResult is one poll of one device with the raw reply of each read.
type ProbeResult struct {
	// Sample is the poll's sample as the Poller would emit it: every field
	// in Fields or in Errors. Its Seq is the Device's; its Time is zero.
	Sample devices.Sample
	// Reads are the plan's reads in order, each with its reply or error.
	Reads []ProbeRead
}

// ReadError is the first failed read of a Probe, with where it went.
type ReadError struct {
	Conn      string    // ConnConfig.Name
	Transport Transport // ConnConfig.Transport
	Address   string    // ConnConfig.Address
	Unit      uint8
	Read      devices.Read
	Err       error // as in ProbeRead.Err
}

func (e *ReadError) Error() string {
	where := fmt.Sprintf("%s %s", e.Transport, e.Address)
	if e.Conn != e.Address {
		where = fmt.Sprintf("connection %s (%s)", e.Conn, where)
	}
	return fmt.Sprintf("read %s %s (%d %s) of unit %d on %s: %v", e.Read.Table, span(e.Read),
		e.Read.Quantity, noun(e.Read), e.Unit, where, e.Err)
}

// Unwrap returns the read's error.
func (e *ReadError) Unwrap() error { return e.Err }

func span(r devices.Read) string {
	if r.Quantity == 1 {
		return fmt.Sprint(r.Address)
	}
	return fmt.Sprintf("%d-%d", r.Address, int(r.Address)+int(r.Quantity)-1)
}

func noun(r devices.Read) string {
	n := "register"
	if r.Table.Bits() {
		n = "bit"
	}
	if r.Quantity != 1 {
		n += "s"
	}
	return n
}

// Probe reads d's plan (d.Plan, or d.Class.Plan) once through d.Conn, as
// the Poller polls d: the same reads in the same order, the same decoding,
// and after a connection-level error the later reads are not sent. It is
// what `gateway probe` runs. d.ID and d.Factory only label the sample;
// d.Schedule is ignored.
//
// The error is nil when every read succeeded, the first failed read as a
// *ReadError (the result then holds what was read and why the rest was
// not), ctx's error if it ended, or an ErrInvalidConfig for a device
// without class, connection or reads.
func Probe(ctx context.Context, d Device) (ProbeResult, error) {
	if d.Class == nil || d.Conn == nil {
		return ProbeResult{}, fmt.Errorf("%w: probe of device %q: class and connection required", ErrInvalidConfig, d.ID)
	}
	plan := d.Plan
	if len(plan.Reads) == 0 {
		plan = d.Class.Plan
	}
	if len(plan.Reads) == 0 {
		return ProbeResult{}, fmt.Errorf("%w: probe of device %q: class %q has no reads (no fields?)", ErrInvalidConfig, d.ID, d.Class.Name)
	}
	res := ProbeResult{Sample: devices.Sample{
		Factory: d.Factory,
		Device:  d.ID,
		Class:   d.Class.Name,
		Seq:     d.Seq,
		Tags:    d.Tags,
		Units:   d.Class.Units,
		Fields:  make(map[string]devices.Value, len(d.Class.Fields)),
	}}
	var first *ReadError
	readPlan(ctx, d.Conn, d.Unit, plan, &res.Sample, nil, func(r devices.Read, data []byte, err error) {
		pr := ProbeRead{Read: r, Err: err}
		if err == nil {
			pr.Data = slices.Clone(data)
		} else if first == nil {
			cfg := d.Conn.Config()
			first = &ReadError{Conn: cfg.Name, Transport: cfg.Transport, Address: cfg.Address, Unit: d.Unit, Read: r, Err: err}
		}
		res.Reads = append(res.Reads, pr)
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if first != nil {
		return res, first
	}
	return res, nil
}
