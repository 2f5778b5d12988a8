package modbus

import (
	"fmt"
	"time"
)

// RTU framing (transports rtu and rtu_over_tcp): the unit id, the PDU and
// the CRC-16, low byte first, with no length field. A reply is framed from
// its first three bytes: unit, function and the byte count of a read
// reply, or the exception code of an exception reply.

// rtuMaxFrame is the longest RTU frame: unit, 253-byte PDU, CRC.
const rtuMaxFrame = 256

// readRTUReply reads the RTU reply to the request frame req.
func readRTUReply(t *streamTransport, req []byte, deadline time.Time) ([]byte, error) {
	var buf [rtuMaxFrame]byte
	// Unit, function and, for a read reply, the byte count.
	if err := t.readFull(buf[:3], deadline); err != nil {
		return nil, err
	}
	n, err := rtuFrameLength(req[1], buf[:3])
	if err != nil {
		return nil, err
	}
	if err := t.readFull(buf[3:n], deadline); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[:n]...), nil
}

// rtuFrameLength returns the length of the reply frame to a request with
// function fc, from the reply's first three bytes (unit, function, byte
// count or exception code).
func rtuFrameLength(fc byte, head []byte) (int, error) {
	switch {
	case fc < 1 || fc > 4:
		return 0, fmt.Errorf("cannot frame the reply to function %d", fc)
	case head[1] == fc|0x80:
		return 5, nil // unit, function, code, CRC
	case head[1] != fc:
		return 0, fmt.Errorf("reply has function code %d, want %d", head[1], fc)
	}
	n := 3 + int(head[2]) + 2 // unit, function, count, data, CRC
	if n > rtuMaxFrame {
		return 0, fmt.Errorf("reply byte count %d makes a frame of %d bytes, more than %d", head[2], n, rtuMaxFrame)
	}
	return n, nil
}
