package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/factorywire/factorywire/devices"
)

// Fuzz tests of the decoders of device bytes this package writes itself:
// the reply PDU check, the RTU reply framing, the ASCII frame checks, the
// whole TCP path (goburrow's MBAP framing, then the PDU check) and the
// whole RTU and ASCII over TCP paths (this package's reply readers, then
// goburrow's packager and the PDU check) behind Conn.Read. Run one with,
// for example:
//
//	go test ./devices/modbus/ -run '^$' -fuzz FuzzCheckReply -fuzztime 1m

func FuzzCheckReply(f *testing.F) {
	f.Add(uint8(3), uint16(2), uint8(3), []byte{4, 0, 1, 0, 2})  // registers
	f.Add(uint8(1), uint16(10), uint8(1), []byte{2, 0x49, 0x02}) // coils
	f.Add(uint8(3), uint16(2), uint8(0x83), []byte{2})           // exception
	f.Add(uint8(3), uint16(2), uint8(0x83), []byte{})            // malformed exception
	f.Add(uint8(4), uint16(3), uint8(4), []byte{4, 0, 1, 0, 2})  // short
	f.Add(uint8(2), uint16(9), uint8(2), []byte{})               // empty
	f.Add(uint8(3), uint16(1), uint8(4), []byte{2, 0, 1})        // other function
	f.Fuzz(func(t *testing.T, table uint8, quantity uint16, fc uint8, data []byte) {
		req := readRequest{unit: 1, table: devices.Table(table), quantity: quantity}
		if req.check(false) != nil {
			return
		}
		out, kind, err := req.checkReply(fc, data)
		want := devices.Read{Table: req.table, Quantity: quantity}.ByteCount()
		switch kind {
		case KindNone:
			if err != nil || fc != req.function() || len(out) != want || !bytes.Equal(out, data[1:]) {
				t.Fatalf("accepted fc %d data % x for quantity %d: % x, %v", fc, data, quantity, out, err)
			}
		case KindException:
			var ee *ExceptionError
			if !errors.As(err, &ee) || fc != req.function()|0x80 || len(data) != 1 || ee.Code != devices.Exception(data[0]) || ee.Function != req.function() {
				t.Fatalf("exception from fc %d data % x: %v", fc, data, err)
			}
		case KindLength:
			var le *LengthError
			if !errors.As(err, &le) || !errors.Is(err, ErrReplyLength) || le.Want != want || fc != req.function() || le.Got == want && le.Count == want {
				t.Fatalf("length error from fc %d data % x: %v", fc, data, err)
			}
		case KindFraming:
			if err == nil || fc == req.function() {
				t.Fatalf("framing error from fc %d data % x: %v", fc, data, err)
			}
		default:
			t.Fatalf("kind %v, err %v", kind, err)
		}
		if kind != KindNone && out != nil {
			t.Fatalf("data % x returned with error %v", out, err)
		}
	})
}

func FuzzRTUFrameLength(f *testing.F) {
	f.Add(uint8(3), []byte{1, 3, 4})
	f.Add(uint8(3), []byte{1, 0x83, 2})
	f.Add(uint8(1), []byte{1, 1, 255})
	f.Add(uint8(6), []byte{1, 6, 0})
	f.Fuzz(func(t *testing.T, fc uint8, head []byte) {
		if len(head) != 3 {
			return
		}
		n, err := rtuFrameLength(fc, head)
		if err != nil {
			return
		}
		if n < 5 || n > rtuMaxFrame {
			t.Fatalf("frame length %d for fc %d head % x", n, fc, head)
		}
		if head[1] == fc && n != 5+int(head[2]) {
			t.Fatalf("frame length %d ignores byte count %d", n, head[2])
		}
	})
}

// FuzzConnTCPReply answers one Conn.Read over TCP with arbitrary bytes
// (their first two, the transaction id, patched to match the request, so
// the fuzzer gets past goburrow's check). Whatever the bytes, Read must
// return in time with correct-length data or an error.
func FuzzConnTCPReply(f *testing.F) {
	mbap := func(pdu ...byte) []byte {
		b := []byte{0, 0, 0, 0, 0, 0, 1}
		binary.BigEndian.PutUint16(b[4:], uint16(len(pdu)+1))
		return append(b, pdu...)
	}
	f.Add(mbap(3, 4, 0, 1, 0, 2))
	f.Add(mbap(0x83, 2))
	f.Add(mbap(3, 2, 0, 1))
	f.Add(mbap(3))
	f.Add(mbap())
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 1, 3})
	f.Add([]byte{0, 0, 0, 1, 0, 6, 1, 3, 4, 0, 1, 0, 2})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	replies := make(chan []byte)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			reply := <-replies
			var req [12]byte
			if _, err := io.ReadFull(nc, req[:]); err == nil {
				if len(reply) >= 2 {
					copy(reply, req[:2])
				}
				nc.Write(reply)
			}
			nc.Close()
		}
	}()

	f.Fuzz(func(t *testing.T, reply []byte) {
		c, err := NewConn(ConnConfig{Address: ln.Addr().String(), Timeout: time.Second, BusyBackoff: time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readFuzzedReply(t, c, replies, reply)
	})
}

// FuzzASCIIFrame checks the ASCII frame checks on arbitrary bytes: they
// never panic, and a frame they accept starts with ':', ends with its
// first CR LF, carries its LRC, and goburrow's packager (which the Conn
// runs after them, and which would panic on some frames they reject)
// verifies and decodes it to the same bytes.
func FuzzASCIIFrame(f *testing.F) {
	f.Add([]byte(":1103006B00037E\r\n"))
	f.Add([]byte(":0103040001000275\r\n"))
	f.Add([]byte(":01830278\r\n"))
	f.Add([]byte(":0183\r\n"))
	f.Add([]byte(":01:0302\r\n"))
	f.Add([]byte(":010\r\n"))
	f.Add([]byte("\x00:01830278\r\n"))
	f.Add([]byte(":01830278\rX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := asciiFrameEnd(b)
		if err != nil || end == 0 {
			if end != 0 {
				t.Fatalf("end %d with error %v", end, err)
			}
			return
		}
		frame := b[:end]
		if frame[0] != ':' || !strings.HasSuffix(string(frame), "\r\n") || strings.Contains(string(frame[:end-2]), "\n") {
			t.Fatalf("frame %q", frame)
		}
		raw, err := checkASCIIFrame(frame)
		if err != nil {
			return
		}
		if len(raw) < 3 || lrc(raw) != 0 {
			t.Fatalf("accepted %q: % x", frame, raw)
		}
		h := gmodbus.NewASCIIClientHandler("")
		req := append([]byte(nil), frame...) // goburrow compares the unit id with the request's
		if err := h.Verify(req, frame); err != nil {
			t.Fatalf("goburrow rejects %q: %v", frame, err)
		}
		p, err := h.Decode(frame)
		if err != nil || p.FunctionCode != raw[1] || !bytes.Equal(p.Data, raw[2:len(raw)-1]) {
			t.Fatalf("goburrow decodes %q to %+v, %v; want % x", frame, p, err, raw)
		}
	})
}

// FuzzConnStreamReply answers one Conn.Read over RTU or ASCII over TCP
// with arbitrary bytes. Whatever the bytes, Read must return in time with
// correct-length data or a classified error.
func FuzzConnStreamReply(f *testing.F) {
	f.Add(false, rtuFrame(1, 3, []byte{4, 0, 1, 0, 2}))
	f.Add(false, rtuFrame(1, 0x83, []byte{2}))
	f.Add(false, rtuFrame(1, 3, []byte{2, 0, 1}))
	f.Add(false, rtuFrame(2, 3, []byte{4, 0, 1, 0, 2}))
	f.Add(false, []byte{1, 3, 255})
	f.Add(true, asciiFrame(1, []byte{3, 4, 0, 1, 0, 2}))
	f.Add(true, asciiFrame(1, []byte{0x83, 2}))
	f.Add(true, asciiFrame(1, []byte{3, 2, 0, 1}))
	f.Add(true, []byte(":0103040001000275\r\n:"))
	f.Add(true, []byte(":01030400010002\r\n"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	replies := make(chan []byte)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			reply := <-replies
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			var req [64]byte
			if _, err := nc.Read(req[:]); err == nil {
				nc.Write(reply)
			}
			nc.Close()
		}
	}()

	f.Fuzz(func(t *testing.T, ascii bool, reply []byte) {
		tr := RTUOverTCP
		if ascii {
			tr = ASCIIOverTCP
		}
		c, err := NewConn(ConnConfig{Transport: tr, Address: ln.Addr().String(), Timeout: 200 * time.Millisecond, BusyBackoff: time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readFuzzedReply(t, c, replies, reply)
	})
}

// readFuzzedReply reads two holding registers of unit 1 through c while the
// fuzz server sends reply (through replies) as the answer, and fails if the
// read hangs, accepts a reply of the wrong size, or fails with an error the
// poller cannot classify.
func readFuzzedReply(t *testing.T, c *Conn, replies chan<- []byte, reply []byte) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		select {
		case replies <- append([]byte(nil), reply...):
		case <-done:
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data, err := c.Read(ctx, 1, devices.HoldingRegisters, 0, 2)
	close(done)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read hung on reply % x", reply)
	}
	if err == nil && len(data) != 4 {
		t.Fatalf("Read accepted % x: % x", reply, data)
	}
	if err != nil && KindOf(err) == KindOther {
		t.Fatalf("unclassified error %v for reply % x", err, reply)
	}
}
