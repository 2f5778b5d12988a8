package modbus

import (
	"encoding/binary"
	"fmt"

	"github.com/factorywire/factorywire/devices"
)

// readRequest is one read as the Conn executes it.
type readRequest struct {
	unit     uint8
	table    devices.Table
	address  uint16
	quantity uint16
}

// function is the request's Modbus function code.
func (r readRequest) function() uint8 { return r.table.ReadFunction() }

// appendPDU appends the request PDU: function, starting address, quantity.
func (r readRequest) appendPDU(dst []byte) []byte {
	dst = append(dst, r.function())
	dst = binary.BigEndian.AppendUint16(dst, r.address)
	return binary.BigEndian.AppendUint16(dst, r.quantity)
}

// check validates the arguments of a read.
func (r readRequest) check(serial bool) error {
	switch {
	case r.table < devices.Coils || r.table > devices.InputRegisters:
		return fmt.Errorf("%w: unknown table %d", ErrInvalidRead, uint8(r.table))
	case r.quantity < 1 || int(r.quantity) > r.table.MaxRead():
		return fmt.Errorf("%w: %s quantity %d must be within 1..%d", ErrInvalidRead, r.table, r.quantity, r.table.MaxRead())
	case int(r.address)+int(r.quantity) > 65536:
		return fmt.Errorf("%w: %s address %d + quantity %d runs past address 65535", ErrInvalidRead, r.table, r.address, r.quantity)
	case serial && (r.unit < 1 || r.unit > 247):
		return fmt.Errorf("%w: unit %d on a serial line must be within 1..247 (0 is broadcast, which is never answered)", ErrInvalidRead, r.unit)
	}
	return nil
}

// checkReply checks the reply PDU (function code fc and the bytes after it)
// to the read r and returns the data bytes (after the byte count). The
// bytes come from the device, so nothing about them is trusted:
//
//	normal reply:    fc, byte count N, N data bytes; N = 2*quantity (registers) or (quantity+7)/8 (bits)
//	exception reply: fc|0x80, exception code
//
// An error is an *ExceptionError (a well-formed exception reply), a
// *LengthError (right function, wrong length) or, with kind KindFraming,
// anything else: another function code, a malformed exception reply, an
// empty reply.
func (r readRequest) checkReply(fc uint8, data []byte) ([]byte, ErrorKind, error) {
	want := r.function()
	switch {
	case fc == want|0x80:
		if len(data) != 1 {
			return nil, KindFraming, fmt.Errorf("exception reply to function %d carries %d bytes after the function code, want 1", want, len(data))
		}
		return nil, KindException, &ExceptionError{Unit: r.unit, Function: want, Code: devices.Exception(data[0])}
	case fc != want:
		return nil, KindFraming, fmt.Errorf("reply has function code %d, want %d", fc, want)
	}
	wantLen := devices.Read{Table: r.table, Quantity: r.quantity}.ByteCount()
	if len(data) == 0 {
		return nil, KindLength, &LengthError{Unit: r.unit, Function: want, Address: r.address, Quantity: r.quantity, Count: 0, Got: 0, Want: wantLen}
	}
	count, got := int(data[0]), len(data)-1
	if count != wantLen || got != wantLen {
		return nil, KindLength, &LengthError{Unit: r.unit, Function: want, Address: r.address, Quantity: r.quantity, Count: count, Got: got, Want: wantLen}
	}
	return data[1:], KindNone, nil
}
