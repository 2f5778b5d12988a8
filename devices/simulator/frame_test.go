package simulator

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func readAll(b []byte) ([]frame, int, error) {
	r := frameReader{br: bufio.NewReaderSize(bytes.NewReader(b), 4096)}
	var frames []frame
	n := 0
	for {
		f, err := r.next()
		if err != nil {
			return frames, n, err
		}
		f.pdu = append([]byte(nil), f.pdu...)
		frames = append(frames, f)
		n += headerLen + len(f.pdu)
	}
}

func TestReadFrame(t *testing.T) {
	long := adu(1, 2, make([]byte, maxPDU)...)
	cases := []struct {
		name   string
		in     []byte
		frames int
		err    error
	}{
		{"empty stream", nil, 0, io.EOF},
		{"one frame", adu(1, 1, 3, 0, 0, 0, 1), 1, io.EOF},
		{"two frames", append(adu(1, 1, 3, 0, 0, 0, 1), adu(2, 255, 0x2B)...), 2, io.EOF},
		{"largest frame (260 bytes)", long, 1, io.EOF},
		{"length 255", append([]byte{0, 1, 0, 0, 0, 255, 1}, make([]byte, 254)...), 0, errLength},
		{"length 1", []byte{0, 1, 0, 0, 0, 1, 1}, 0, errLength},
		{"protocol id 0x0100", []byte{0, 1, 1, 0, 0, 2, 1, 3}, 0, errProtocolID},
		{"header cut", []byte{0, 1, 0, 0, 0}, 0, errTruncated},
		{"body cut after a good frame", append(adu(1, 1, 3), 0, 2, 0, 0, 0, 3, 1, 3), 1, errTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frames, _, err := readAll(tc.in)
			if len(frames) != tc.frames || !errors.Is(err, tc.err) {
				t.Errorf("got %d frames, error %v; want %d frames, error %v", len(frames), err, tc.frames, tc.err)
			}
		})
	}
	if len(long) != maxADU {
		t.Errorf("largest ADU is %d bytes, want %d", len(long), maxADU)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader, the first
// decoder of untrusted input. It must never panic; it must end with io.EOF
// or one of the frame errors; every frame it returns must encode back to
// the bytes it was read from; and the server's answer to each frame must
// be a well-formed PDU.
func FuzzReadFrame(f *testing.F) {
	seeds := [][]byte{
		nil,
		adu(1, 1, req(3, 0, 10)...),
		append(adu(1, 1, req(1, 0, 2000)...), adu(2, 2, append(req(16, 0, 2), 4, 0, 1, 0, 2)...)...),
		adu(0xFFFF, 255, append(req(15, 0, 9), 2, 0xFF, 0x01)...),
		adu(7, 1, req(5, 3, 0xFF00)...),
		adu(7, 1, req(6, 3, 0x1234)...),
		adu(1, 1, req(4, 65535, 125)...),
		adu(1, 1, 0x2B, 0x0E, 0x01, 0x00),
		adu(1, 1, make([]byte, maxPDU)...),
		{0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1},
		{0, 1, 0, 0, 0, 1, 1},
		{0, 1, 0, 0, 0xFF, 0xFF, 1},
		{0, 1, 0, 0, 0, 6, 1, 3, 0},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	u := newUnit(1, Sizes{Coils: 64, DiscreteInputs: 2000, HoldingRegisters: 125, InputRegisters: 65536})
	f.Fuzz(func(t *testing.T, in []byte) {
		frames, n, err := readAll(in)
		switch {
		case errors.Is(err, io.EOF):
			if n != len(in) {
				t.Fatalf("io.EOF after %d of %d bytes", n, len(in))
			}
		case errors.Is(err, errProtocolID), errors.Is(err, errLength), errors.Is(err, errTruncated):
		default:
			t.Fatalf("unexpected error %v", err)
		}
		off := 0
		for i, fr := range frames {
			if len(fr.pdu) < 1 || len(fr.pdu) > maxPDU {
				t.Fatalf("frame %d: PDU of %d bytes", i, len(fr.pdu))
			}
			enc := appendFrame(nil, fr.txid, fr.unit, fr.pdu)
			if !bytes.Equal(enc, in[off:off+len(enc)]) {
				t.Fatalf("frame %d does not round-trip:\n got % x\nwant % x", i, enc, in[off:off+len(enc)])
			}
			off += len(enc)
			reply := u.serve(fr.pdu, nil)
			checkReply(t, fr.pdu, reply)
			if short := shorten(reply); len(short) > len(reply) {
				t.Fatalf("shortened reply grew")
			}
		}
	})
}

// checkReply checks the shape of the server's reply PDU to a request PDU.
func checkReply(t *testing.T, request, reply []byte) {
	t.Helper()
	fc := request[0]
	if len(reply) < 2 || len(reply) > maxPDU {
		t.Fatalf("request % x: reply of %d bytes", request, len(reply))
	}
	if reply[0] == fc|0x80 {
		if len(reply) != 2 || reply[1] < 1 || reply[1] > 3 {
			t.Fatalf("request % x: exception reply % x", request, reply)
		}
		return
	}
	if reply[0] != fc {
		t.Fatalf("request % x: reply function %#x", request, reply[0])
	}
	switch {
	case isRead(fc):
		if int(reply[1]) != len(reply)-2 {
			t.Fatalf("request % x: byte count %d, data %d bytes", request, reply[1], len(reply)-2)
		}
	case fc == fcWriteSingleCoil, fc == fcWriteSingleRegister:
		if !bytes.Equal(reply, request) {
			t.Fatalf("request % x: reply % x is not an echo", request, reply)
		}
	case fc == fcWriteMultipleCoils, fc == fcWriteMultipleRegisters:
		if !bytes.Equal(reply, request[:5]) {
			t.Fatalf("request % x: reply % x is not address and quantity", request, reply)
		}
	default:
		t.Fatalf("request % x: normal reply % x to an unsupported function", request, reply)
	}
}

// FuzzRequest feeds arbitrary PDUs straight to the request handler (the
// decoder behind the framing), with every fault kind that alters replies.
// It must never panic and always answer a well-formed PDU.
func FuzzRequest(f *testing.F) {
	for _, s := range [][]byte{
		req(1, 0, 16), req(2, 1990, 10), req(3, 0, 125), req(4, 65535, 1),
		req(5, 63, 0xFF00), req(6, 124, 7),
		append(req(15, 0, 9), 2, 0xFF, 0x01), append(req(16, 120, 2), 4, 0, 1, 0, 2),
		{0x2B, 0x0E, 0x01, 0x00}, {0x83}, {0x10, 0, 0, 0},
	} {
		f.Add(s)
	}
	u := newUnit(1, Sizes{Coils: 64, DiscreteInputs: 2000, HoldingRegisters: 125, InputRegisters: 65536})
	f.Fuzz(func(t *testing.T, pdu []byte) {
		if len(pdu) < 1 || len(pdu) > maxPDU {
			return // the framing never delivers such a PDU
		}
		reply := u.serve(pdu, nil)
		checkReply(t, pdu, reply)
		if addr, n, ok := requestRange(pdu); ok && (addr < 0 || addr > 65535 || n < 0 || n > 65535) {
			t.Fatalf("request % x: range %d+%d", pdu, addr, n)
		}
		short := shorten(append([]byte(nil), reply...))
		if isRead(pdu[0]) && !isException(reply) {
			cut := 2
			if pdu[0] <= fcReadDiscreteInputs {
				cut = 1
			}
			if len(short) != len(reply)-cut || int(short[1]) != len(short)-2 {
				t.Fatalf("request % x: short reply % x of % x", pdu, short, reply)
			}
		}
	})
}
