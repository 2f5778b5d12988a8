package modbus

import (
	"encoding/hex"
	"fmt"
	"time"
)

// ASCII framing (transports ascii and ascii_over_tcp): ':' (0x3A), then
// the unit id, the PDU and the LRC as pairs of hexadecimal digits, then
// CR LF. The LRC is the two's complement of the 8-bit sum of the unit id
// and PDU bytes. goburrow's packager writes upper-case digits; replies may
// use either case.
//
//	':'  unit  function  data ...  LRC  CR LF
//	1    2     2         0..2×252  2    2       characters; at most 513

// asciiMaxFrame is the longest ASCII frame: ':', unit, 253-byte PDU and
// LRC in hexadecimal, CR LF.
const asciiMaxFrame = 1 + 2*(1+253+1) + 2

// readASCIIReply reads the ASCII reply to the request frame req: from ':'
// to CR LF, checking each character as it arrives, so that a garbled
// reply fails as soon as it shows. The caller (Send) then discards the
// rest of it before the next request.
func readASCIIReply(t *streamTransport, _ []byte, deadline time.Time) ([]byte, error) {
	var buf [asciiMaxFrame]byte
	n := 0
	for {
		m, err := t.read(buf[n:], deadline)
		n += m
		if err != nil {
			return nil, err
		}
		end, err := asciiFrameEnd(buf[:n])
		switch {
		case err != nil:
			return nil, err
		case end > 0 && end < n:
			// Out of step: more than one frame, or noise after one.
			return nil, fmt.Errorf("ascii frame: %d bytes follow the reply's CR LF", n-end)
		case end > 0:
			if _, err := checkASCIIFrame(buf[:end]); err != nil {
				return nil, err
			}
			return append([]byte(nil), buf[:end]...), nil
		case n == len(buf):
			return nil, fmt.Errorf("ascii frame: no CR LF within %d characters, the longest frame", len(buf))
		}
	}
}

// asciiFrameEnd scans b, the start of an ASCII frame, and returns the
// length of the frame, CR LF included, when b holds a whole one, or 0 when
// the frame goes on past b. Its error names the first character that
// cannot be where it is: a frame starts with ':' and holds only
// hexadecimal digits up to CR LF.
func asciiFrameEnd(b []byte) (int, error) {
	for i, c := range b {
		switch {
		case i == 0:
			if c != ':' {
				return 0, fmt.Errorf("ascii frame: starts with byte 0x%02X, not ':'", c)
			}
		case isHexDigit(c):
		case c == '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return 0, fmt.Errorf("ascii frame: CR at character %d is followed by byte 0x%02X, not LF", i, b[i+1])
			}
		case c == '\n':
			if b[i-1] != '\r' {
				return 0, fmt.Errorf("ascii frame: LF at character %d without CR before it", i)
			}
			return i + 1, nil
		case c == ':':
			return 0, fmt.Errorf("ascii frame: ':' at character %d starts another frame inside this one", i)
		default:
			return 0, fmt.Errorf("ascii frame: byte 0x%02X at character %d is not a hexadecimal digit", c, i)
		}
	}
	return 0, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f'
}

// checkASCIIFrame checks a whole frame as asciiFrameEnd delimits it (':',
// hexadecimal digits, CR LF): an even number of digits, at least unit,
// function and LRC, and the LRC. It returns the frame's bytes: unit, PDU,
// LRC.
func checkASCIIFrame(frame []byte) ([]byte, error) {
	digits := frame[1 : len(frame)-2]
	if len(digits)%2 != 0 {
		return nil, fmt.Errorf("ascii frame: odd number (%d) of hexadecimal digits", len(digits))
	}
	if len(digits) < 6 {
		return nil, fmt.Errorf("ascii frame: %d hexadecimal digits, fewer than unit, function and LRC take (6)", len(digits))
	}
	raw := make([]byte, len(digits)/2)
	if _, err := hex.Decode(raw, digits); err != nil {
		return nil, fmt.Errorf("ascii frame: %w", err)
	}
	if want := lrc(raw[:len(raw)-1]); raw[len(raw)-1] != want {
		return nil, fmt.Errorf("ascii frame: LRC %02X does not match the frame's bytes, whose LRC is %02X", raw[len(raw)-1], want)
	}
	return raw, nil
}

// lrc is the Modbus ASCII longitudinal redundancy check of b.
func lrc(b []byte) byte {
	var sum byte
	for _, x := range b {
		sum += x
	}
	return -sum
}
