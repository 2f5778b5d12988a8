package simulator

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// asciiMaxFrame is the longest Modbus ASCII frame: ':', the unit id, a
// 253-byte PDU and the LRC in hexadecimal, CR LF.
const asciiMaxFrame = 1 + 2*(1+maxPDU+1) + 2

// errASCIINoise is wrapped by the error of bytes that arrive outside a frame.
var errASCIINoise = errors.New("bytes outside a frame")

// ServeASCII serves the server's units as Modbus ASCII slaves on port until
// ctx ends, Close is called or port fails; port must behave as ServeRTU's.
// The caller closes port.
func (s *Server) ServeASCII(ctx context.Context, port io.ReadWriter) error {
	id := s.stats.connections.Add(1)
	if err := s.newLine(ctx, port, id, s.log.With("transport", "ascii"), false).serveASCII(); err != nil {
		return fmt.Errorf("simulator: ascii: %w", err)
	}
	return nil
}

// serveASCII serves ASCII frames until the line stops. A frame starts at
// ':' and ends at CR LF; silence does not end one (the specification
// allows a second between characters), a new ':' does.
func (l *line) serveASCII() error {
	buf := make([]byte, 0, 2*asciiMaxFrame)
	var chunk [asciiMaxFrame]byte
	var raw [1 + maxPDU + 1]byte
	for !l.stopped() {
		n, _, stop, err := l.read(chunk[:])
		if stop {
			return err
		}
		buf = append(buf, chunk[:n]...)
		for len(buf) > 0 {
			used, frame, err := asciiScan(buf, raw[:0])
			if used == 0 {
				break // the frame goes on
			}
			if err != nil {
				l.s.stats.badFrames.Add(1)
				l.log.Warn("simulator: ascii: discarding a malformed frame", "err", err)
			} else if ok, err := l.answer(frame[0], frame[1:], appendASCII); !ok {
				return err
			}
			buf = buf[:copy(buf, buf[used:])]
		}
	}
	return nil
}

// asciiScan looks for the first ASCII frame in buf. It returns how many
// bytes of buf it is done with and, if they hold a well-formed frame, the
// frame's unit id and PDU (its bytes, LRC checked and dropped, appended to
// dst), or else an error saying what was wrong with them. used is 0 while
// the frame at the start of buf goes on past its end.
func asciiScan(buf, dst []byte) (used int, frame []byte, err error) {
	if len(buf) == 0 {
		return 0, nil, nil
	}
	if buf[0] != ':' {
		i := bytes.IndexByte(buf, ':')
		if i < 0 {
			i = len(buf)
		}
		return i, nil, fmt.Errorf("%w: %d", errASCIINoise, i)
	}
	end := 0
	for j := 1; j < len(buf) && end == 0; j++ {
		switch buf[j] {
		case ':':
			return j, nil, fmt.Errorf("frame cut short after %d characters by the ':' of another", j)
		case '\n':
			end = j + 1
		}
		if j+1 >= asciiMaxFrame && end == 0 {
			return j + 1, nil, fmt.Errorf("no CR LF within %d characters", asciiMaxFrame)
		}
	}
	if end == 0 {
		return 0, nil, nil
	}
	if end < 3 || buf[end-2] != '\r' {
		return end, nil, errors.New("LF without CR before it")
	}
	digits := buf[1 : end-2]
	if len(digits)%2 != 0 || len(digits) < 6 {
		return end, nil, fmt.Errorf("%d hexadecimal digits; want an even number, at least 6 (unit, function, LRC)", len(digits))
	}
	n := len(dst)
	dst = append(dst, make([]byte, len(digits)/2)...)
	if _, err := hex.Decode(dst[n:], digits); err != nil {
		return end, nil, err
	}
	frame = dst[n:]
	body, sum := frame[:len(frame)-1], frame[len(frame)-1]
	if want := lrc(body); sum != want {
		return end, nil, fmt.Errorf("LRC %02X does not match the frame's bytes, whose LRC is %02X", sum, want)
	}
	return end, body, nil
}

// appendASCII appends the ASCII frame of pdu from unit to dst.
func appendASCII(dst []byte, unit uint8, pdu []byte) []byte {
	const digits = "0123456789ABCDEF"
	hexByte := func(b byte) { dst = append(dst, digits[b>>4], digits[b&0x0F]) }
	dst = append(dst, ':')
	hexByte(unit)
	sum := unit
	for _, b := range pdu {
		hexByte(b)
		sum += b
	}
	hexByte(-sum)
	return append(dst, '\r', '\n')
}

// lrc is the Modbus ASCII longitudinal redundancy check: the two's
// complement of the 8-bit sum of b.
func lrc(b []byte) byte {
	var sum byte
	for _, x := range b {
		sum += x
	}
	return -sum
}
