package simulator

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Sizes of the Modbus TCP application data unit (ADU): a 7-byte MBAP
// header (transaction id, protocol id, length, unit id) and a PDU of at
// most 253 bytes (function code and data). The length field counts the
// unit id and the PDU, so it lies in 2..254 and an ADU is at most 260 bytes.
const (
	headerLen = 7
	maxADU    = 260
	minLength = 2
	maxLength = maxADU - 6
	maxPDU    = maxLength - 1
)

// frame is one decoded ADU. pdu starts with the function code and is never
// empty; it aliases the frameReader's buffer until the next call to next.
type frame struct {
	txid uint16
	unit uint8
	pdu  []byte
}

// parseHeader validates an MBAP header (at least headerLen bytes) and
// returns the size of the whole ADU it announces.
func parseHeader(h []byte) (size int, err error) {
	if p := binary.BigEndian.Uint16(h[2:]); p != 0 {
		return 0, fmt.Errorf("%w: got %d", errProtocolID, p)
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	if n < minLength || n > maxLength {
		return 0, fmt.Errorf("%w: got %d", errLength, n)
	}
	return 6 + n, nil
}

// appendFrame appends the ADU carrying pdu to dst. pdu must hold 1 to
// maxPDU bytes.
func appendFrame(dst []byte, txid uint16, unit uint8, pdu []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, txid)
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(1+len(pdu)))
	dst = append(dst, unit)
	return append(dst, pdu...)
}

// deadliner is the part of net.Conn a frameReader needs; nil when reading
// from memory (the fuzz test).
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// frameReader reads ADUs from an untrusted stream. It waits for the first
// byte of a frame without a deadline (an idle client is fine) and gives the
// rest of the frame timeout to arrive, so a client that stops mid-frame
// cannot hold a connection forever.
type frameReader struct {
	br      *bufio.Reader // at least maxADU bytes of buffer
	conn    deadliner
	timeout time.Duration
	buf     [maxADU]byte
}

// next returns the next frame. It returns io.EOF when the stream ends
// cleanly between frames, an error wrapping errProtocolID or errLength for
// a bad header, and one wrapping errTruncated when the stream ends, or the
// timeout passes, in the middle of a frame.
func (r *frameReader) next() (frame, error) {
	if _, err := r.br.Peek(1); err != nil {
		return frame{}, err
	}
	armed := false
	arm := func(need int) error {
		if armed || r.conn == nil || r.timeout <= 0 || r.br.Buffered() >= need {
			return nil
		}
		armed = true
		return r.conn.SetReadDeadline(time.Now().Add(r.timeout))
	}
	if err := arm(headerLen); err != nil {
		return frame{}, err
	}
	h, err := r.br.Peek(headerLen)
	if err != nil {
		return frame{}, truncated(err, len(h), headerLen)
	}
	size, err := parseHeader(h)
	if err != nil {
		return frame{}, err
	}
	if err := arm(size); err != nil {
		return frame{}, err
	}
	b, err := r.br.Peek(size)
	if err != nil {
		return frame{}, truncated(err, len(b), size)
	}
	n := copy(r.buf[:], b)
	r.br.Discard(n)
	if armed {
		if err := r.conn.SetReadDeadline(time.Time{}); err != nil {
			return frame{}, err
		}
	}
	return frame{
		txid: binary.BigEndian.Uint16(r.buf[0:]),
		unit: r.buf[6],
		pdu:  r.buf[headerLen:n],
	}, nil
}

// truncated explains a read that ended inside a frame. Errors other than
// end of stream and timeout (a reset connection, say) pass through.
func truncated(err error, got, want int) error {
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: stream ended after %d of %d bytes", errTruncated, got, want)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: only %d of %d bytes arrived within the frame timeout", errTruncated, got, want)
	}
	return err
}
