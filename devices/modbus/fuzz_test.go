package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// Fuzz tests of the decoders of device bytes this package writes itself:
// the reply PDU check, the RTU reply framing, and the whole TCP path
// (goburrow's MBAP framing, then the PDU check) behind Conn.Read. Run one
// with, for example:
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
	})
}
