package simulator

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// pollingPort is one end of a net.Pipe whose reads give up after rtuPoll,
// as a serial port opened with a timeout does.
type pollingPort struct{ net.Conn }

func (p pollingPort) Read(b []byte) (int, error) {
	p.SetReadDeadline(time.Now().Add(rtuPoll))
	return p.Conn.Read(b)
}

// serveRTU serves s on one end of a pipe and returns the other end, the
// line as a master sees it.
func serveRTU(t *testing.T, s *Server) net.Conn {
	t.Helper()
	master, slave := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeRTU(ctx, pollingPort{slave}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeRTU: %v", err)
		}
		slave.Close()
		master.Close()
	})
	return master
}

func rtuRequest(unit uint8, pdu ...byte) []byte {
	b := append([]byte{unit}, pdu...)
	return binary.LittleEndian.AppendUint16(b, crc16(b))
}

// exchange writes req and reads a reply of want bytes; want 0 expects
// silence for 300ms.
func exchange(t *testing.T, line net.Conn, req []byte, want int) []byte {
	t.Helper()
	line.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := line.Write(req); err != nil {
		t.Fatalf("write % x: %v", req, err)
	}
	if want == 0 {
		line.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [1]byte
		if n, err := line.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after % x: read %d bytes, %v; want silence", req, n, err)
		}
		return nil
	}
	reply := make([]byte, want)
	line.SetReadDeadline(time.Now().Add(ioTimeout))
	for n := 0; n < want; {
		m, err := line.Read(reply[n:])
		if err != nil {
			t.Fatalf("after % x: read %d of %d bytes (% x): %v", req, n, want, reply[:n], err)
		}
		n += m
	}
	return reply
}

// TestServeRTU: RTU requests are answered with the unit's registers and a
// CRC; faults apply; a broadcast is executed without a reply; a frame with
// a bad CRC is dropped and counted.
func TestServeRTU(t *testing.T) {
	s := newServer(t, Config{NoTCP: true})
	if s.Addr() != nil {
		t.Fatalf("Addr with NoTCP = %v, want nil", s.Addr())
	}
	u := addUnit(t, s, 3, sizes100)
	u.SetRegisters(devices.HoldingRegisters, 10, []uint16{0x0102, 0x0304})
	line := serveRTU(t, s)

	for _, tc := range []struct {
		name   string
		faults []Fault
		req    []byte
		want   []byte // nil: silence
	}{
		{"read holding registers", nil, rtuRequest(3, 0x03, 0, 10, 0, 2), rtuRequest(3, 0x03, 4, 1, 2, 3, 4)},
		{"exception fault", []Fault{{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Function: 3}},
			rtuRequest(3, 0x03, 0, 10, 0, 2), rtuRequest(3, 0x83, 6)},
		{"short reply", []Fault{{Kind: FaultShortReply}}, rtuRequest(3, 0x03, 0, 10, 0, 2), rtuRequest(3, 0x03, 2, 1, 2)},
		{"wrong transaction id answers as another unit", []Fault{{Kind: FaultWrongTransactionID}},
			rtuRequest(3, 0x03, 0, 10, 0, 2), rtuRequest(0x83, 0x03, 4, 1, 2, 3, 4)},
		{"no reply", []Fault{{Kind: FaultNoReply, Times: 1}}, rtuRequest(3, 0x03, 0, 10, 0, 2), nil},
		{"out of range", nil, rtuRequest(3, 0x03, 0, 99, 0, 2), rtuRequest(3, 0x83, 2)},
		{"write multiple registers", nil, rtuRequest(3, 0x10, 0, 20, 0, 2, 4, 0, 7, 0, 8), rtuRequest(3, 0x10, 0, 20, 0, 2)},
		{"unknown function, framed by silence", nil, rtuRequest(3, 0x2B, 0x0E, 1, 0), rtuRequest(3, 0xAB, 1)},
		{"broadcast write", nil, rtuRequest(0, 0x06, 0, 30, 0, 9), nil},
		{"missing unit", nil, rtuRequest(4, 0x03, 0, 0, 0, 1), rtuRequest(4, 0x83, 0x0B)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := u.SetFaults(tc.faults...); err != nil {
				t.Fatal(err)
			}
			defer u.ClearFaults()
			if got := exchange(t, line, tc.req, len(tc.want)); !bytes.Equal(got, tc.want) {
				t.Fatalf("request % x: reply % x, want % x", tc.req, got, tc.want)
			}
		})
	}
	if r, _ := u.Registers(devices.HoldingRegisters, 20, 2); r[0] != 7 || r[1] != 8 {
		t.Errorf("registers 20, 21 = %v after the write, want [7 8]", r)
	}

	t.Run("bad CRC", func(t *testing.T) {
		bad := rtuRequest(3, 0x03, 0, 10, 0, 2)
		bad[len(bad)-1] ^= 0xFF
		before := s.Stats().BadFrames
		exchange(t, line, bad, 0)
		if got := s.Stats().BadFrames; got != before+1 {
			t.Errorf("BadFrames = %d, want %d", got, before+1)
		}
		want := rtuRequest(3, 0x03, 4, 1, 2, 3, 4)
		if got := exchange(t, line, rtuRequest(3, 0x03, 0, 10, 0, 2), len(want)); !bytes.Equal(got, want) {
			t.Fatalf("after a bad frame: reply % x, want % x", got, want)
		}
	})
}

// TestParseFault: the text form of a fault, and its errors.
func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		text string
		unit int
		want Fault
	}{
		{"kind=exception,exception=2,unit=3,function=3,address=100,count=10", 3,
			Fault{Kind: FaultException, Exception: devices.ExceptionIllegalDataAddress, Function: 3, Address: 100, Count: 10}},
		{"kind=exception,exception=server-device-busy,times=2", -1, Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 2}},
		{"kind=delay,delay=500ms,every=3", -1, Fault{Kind: FaultDelay, Delay: 500 * time.Millisecond, Every: 3}},
		{"kind=drop, probability=0.01, seed=1", -1, Fault{Kind: FaultDrop, Probability: 0.01, Seed: 1}},
		{"kind=no-reply,unit=0x0B", 11, Fault{Kind: FaultNoReply}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			unit, f, err := ParseFault(tc.text)
			if err != nil || unit != tc.unit || f != tc.want {
				t.Fatalf("ParseFault = %d, %+v, %v; want %d, %+v", unit, f, err, tc.unit, tc.want)
			}
		})
	}
	for _, text := range []string{"", "kind=melt", "unit=3", "kind=delay", "kind=exception", "kind=drop,exception=2",
		"kind=drop,unit=300", "kind=drop,colour=red", "kind=drop,every", "kind=delay,delay=soon", "kind=drop,probability=2"} {
		t.Run("error "+text, func(t *testing.T) {
			if _, _, err := ParseFault(text); !errors.Is(err, ErrFault) {
				t.Fatalf("ParseFault(%q) = %v, want ErrFault", text, err)
			}
		})
	}
}
