package simulator

import (
	"encoding/binary"
	"github.com/factorywire/factorywire/devices"
)

// Function codes the simulator implements.
const (
	fcReadCoils              = 0x01
	fcReadDiscreteInputs     = 0x02
	fcReadHoldingRegisters   = 0x03
	fcReadInputRegisters     = 0x04
	fcWriteSingleCoil        = 0x05
	fcWriteSingleRegister    = 0x06
	fcWriteMultipleCoils     = 0x0F
	fcWriteMultipleRegisters = 0x10
)

// Quantity limits of the write functions (specification sections 6.11 and
// 6.12): what fits in one PDU.
const (
	maxWriteBits      = 0x7B0
	maxWriteRegisters = 0x7B
)

// appendException appends the exception reply to function fc.
func appendException(dst []byte, fc uint8, e devices.Exception) []byte {
	return append(dst, fc|0x80, byte(e))
}

// isException reports whether a reply PDU is an exception reply.
func isException(pdu []byte) bool { return len(pdu) == 2 && pdu[0]&0x80 != 0 }

// requestRange returns the addresses a request touches, for matching faults
// that are limited to an address range. ok is false for functions without
// an address and for PDUs too short to hold one.
func requestRange(pdu []byte) (addr, count int, ok bool) {
	if len(pdu) < 5 {
		return 0, 0, false
	}
	a := int(binary.BigEndian.Uint16(pdu[1:]))
	switch pdu[0] {
	case fcReadCoils, fcReadDiscreteInputs, fcReadHoldingRegisters, fcReadInputRegisters,
		fcWriteMultipleCoils, fcWriteMultipleRegisters:
		return a, int(binary.BigEndian.Uint16(pdu[3:])), true
	case fcWriteSingleCoil, fcWriteSingleRegister:
		return a, 1, true
	}
	return 0, 0, false
}

// isRead reports whether fc is one of the four read functions.
func isRead(fc uint8) bool { return fc >= fcReadCoils && fc <= fcReadInputRegisters }

// execute runs one request PDU against the unit's tables and appends the
// reply PDU (normal or exception) to dst. The checks follow the order of
// the specification's state diagrams: function (exception 1), quantity and
// value (exception 3), address range (exception 2). The caller holds u.mu.
func (u *Unit) execute(pdu []byte, dst []byte) []byte {
	fc, data := pdu[0], pdu[1:]
	switch fc {
	case fcReadCoils, fcReadDiscreteInputs:
		if len(data) != 4 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr, qty := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:]))
		if qty < 1 || qty > 2000 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		bank := u.coils
		if fc == fcReadDiscreteInputs {
			bank = u.discrete
		}
		if addr+qty > len(bank) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		n := (qty + 7) / 8
		dst = append(dst, fc, byte(n))
		start := len(dst)
		dst = append(dst, make([]byte, n)...)
		for i, v := range bank[addr : addr+qty] {
			if v {
				dst[start+i/8] |= 1 << (i % 8)
			}
		}
		return dst

	case fcReadHoldingRegisters, fcReadInputRegisters:
		if len(data) != 4 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr, qty := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:]))
		if qty < 1 || qty > 125 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		bank := u.holding
		if fc == fcReadInputRegisters {
			bank = u.input
		}
		if addr+qty > len(bank) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		dst = append(dst, fc, byte(2*qty))
		for _, v := range bank[addr : addr+qty] {
			dst = binary.BigEndian.AppendUint16(dst, v)
		}
		return dst

	case fcWriteSingleCoil:
		if len(data) != 4 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr, v := int(binary.BigEndian.Uint16(data)), binary.BigEndian.Uint16(data[2:])
		if v != 0xFF00 && v != 0x0000 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		if addr >= len(u.coils) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		u.coils[addr] = v == 0xFF00
		return append(dst, pdu...)

	case fcWriteSingleRegister:
		if len(data) != 4 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr := int(binary.BigEndian.Uint16(data))
		if addr >= len(u.holding) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		u.holding[addr] = binary.BigEndian.Uint16(data[2:])
		return append(dst, pdu...)

	case fcWriteMultipleCoils:
		if len(data) < 5 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr, qty, count := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:])), int(data[4])
		if qty < 1 || qty > maxWriteBits || count != (qty+7)/8 || len(data) != 5+count {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		if addr+qty > len(u.coils) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		values := data[5:]
		for i := range qty {
			u.coils[addr+i] = values[i/8]&(1<<(i%8)) != 0
		}
		return append(dst, pdu[:5]...)

	case fcWriteMultipleRegisters:
		if len(data) < 5 {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		addr, qty, count := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:])), int(data[4])
		if qty < 1 || qty > maxWriteRegisters || count != 2*qty || len(data) != 5+count {
			return appendException(dst, fc, devices.ExceptionIllegalDataValue)
		}
		if addr+qty > len(u.holding) {
			return appendException(dst, fc, devices.ExceptionIllegalDataAddress)
		}
		for i := range qty {
			u.holding[addr+i] = binary.BigEndian.Uint16(data[5+2*i:])
		}
		return append(dst, pdu[:5]...)
	}
	return appendException(dst, fc, devices.ExceptionIllegalFunction)
}

// shorten turns a read reply into the short reply of FaultShortReply: the
// byte count and the data one register (two bytes) short, or one byte
// short for the bit reads. It returns the reply unchanged if it is not a
// normal read reply.
func shorten(pdu []byte) []byte {
	if len(pdu) < 3 || !isRead(pdu[0]) {
		return pdu
	}
	cut := 2
	if pdu[0] == fcReadCoils || pdu[0] == fcReadDiscreteInputs {
		cut = 1
	}
	pdu[1] -= byte(cut)
	return pdu[:len(pdu)-cut]
}
