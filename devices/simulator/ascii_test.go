package simulator

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// asciiRequest is the ASCII frame of a request or reply.
func asciiRequest(unit uint8, pdu ...byte) []byte { return appendASCII(nil, unit, pdu) }

// serveASCII serves s as Modbus ASCII on one end of a pipe and returns the
// other end, the line as a master sees it.
func serveASCII(t *testing.T, s *Server) net.Conn {
	t.Helper()
	master, slave := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeASCII(ctx, pollingPort{slave}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeASCII: %v", err)
		}
		slave.Close()
		master.Close()
	})
	return master
}

func TestASCIIFrameBytes(t *testing.T) {
	// The example of the Modbus serial line specification, section 2.5.2.1:
	// read holding registers 0x006B..0x006D of unit 0x11.
	got := string(asciiRequest(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03))
	if want := ":1103006B00037E\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestServeASCII: ASCII requests are answered with the unit's registers
// and an LRC; faults apply; a broadcast is executed without a reply;
// malformed frames (bad LRC, noise, a frame cut short by another) are
// dropped and counted, and the frame after them is answered.
func TestServeASCII(t *testing.T) {
	s := newServer(t, Config{NoTCP: true})
	u := addUnit(t, s, 3, sizes100)
	u.SetRegisters(devices.HoldingRegisters, 10, []uint16{0x0102, 0x0304})
	line := serveASCII(t, s)
	read := asciiRequest(3, 0x03, 0, 10, 0, 2)
	regs := asciiRequest(3, 0x03, 4, 1, 2, 3, 4)

	for _, tc := range []struct {
		name   string
		faults []Fault
		req    []byte
		want   []byte // nil: silence
	}{
		{"read holding registers", nil, read, regs},
		{"lower-case hexadecimal", nil, []byte(strings.ToLower(string(read))), regs},
		{"exception fault", []Fault{{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Function: 3}},
			read, asciiRequest(3, 0x83, 6)},
		{"short reply", []Fault{{Kind: FaultShortReply}}, read, asciiRequest(3, 0x03, 2, 1, 2)},
		{"wrong transaction id answers as another unit", []Fault{{Kind: FaultWrongTransactionID}}, read, asciiRequest(0x83, 0x03, 4, 1, 2, 3, 4)},
		{"no reply", []Fault{{Kind: FaultNoReply, Times: 1}}, read, nil},
		{"drop sends nothing", []Fault{{Kind: FaultDrop, Times: 1}}, read, nil},
		{"out of range", nil, asciiRequest(3, 0x03, 0, 99, 0, 2), asciiRequest(3, 0x83, 2)},
		{"write multiple registers", nil, asciiRequest(3, 0x10, 0, 20, 0, 2, 4, 0, 7, 0, 8), asciiRequest(3, 0x10, 0, 20, 0, 2)},
		{"unknown function", nil, asciiRequest(3, 0x2B, 0x0E, 1, 0), asciiRequest(3, 0xAB, 1)},
		{"broadcast write", nil, asciiRequest(0, 0x06, 0, 30, 0, 9), nil},
		{"missing unit", nil, asciiRequest(4, 0x03, 0, 0, 0, 1), asciiRequest(4, 0x83, 0x0B)},
		{"request in pieces", nil, nil, regs}, // written in pieces below
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := u.SetFaults(tc.faults...); err != nil {
				t.Fatal(err)
			}
			defer u.ClearFaults()
			if tc.req == nil {
				for _, piece := range [][]byte{read[:1], read[1:6], read[6:]} {
					writeLine(t, line, piece)
					time.Sleep(2 * rtuPoll) // silence does not end an ASCII frame
				}
				if got := readLine(t, line, len(tc.want)); !bytes.Equal(got, tc.want) {
					t.Fatalf("reply %q, want %q", got, tc.want)
				}
				return
			}
			if got := exchange(t, line, tc.req, len(tc.want)); !bytes.Equal(got, tc.want) {
				t.Fatalf("request %q: reply %q, want %q", tc.req, got, tc.want)
			}
		})
	}
	if r, _ := u.Registers(devices.HoldingRegisters, 20, 2); r[0] != 7 || r[1] != 8 {
		t.Errorf("registers 20, 21 = %v after the write, want [7 8]", r)
	}

	badLRC := append([]byte(nil), read...)
	badLRC[len(badLRC)-3] ^= 1
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"bad LRC", badLRC},
		{"noise before the frame", []byte("\x00\xff")},
		{"frame cut short by another", read[:8]},
		{"not hexadecimal", []byte(":03GG\r\n")},
		{"LF without CR", []byte(":0303000A0002EE\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().BadFrames
			writeLine(t, line, append(append([]byte(nil), tc.in...), read...))
			if got := readLine(t, line, len(regs)); !bytes.Equal(got, regs) {
				t.Fatalf("after %q: reply %q, want %q", tc.in, got, regs)
			}
			if got := s.Stats().BadFrames; got != before+1 {
				t.Errorf("BadFrames = %d, want %d", got, before+1)
			}
		})
	}
}

func writeLine(t *testing.T, line net.Conn, b []byte) {
	t.Helper()
	line.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := line.Write(b); err != nil {
		t.Fatalf("write %q: %v", b, err)
	}
}

func readLine(t *testing.T, line net.Conn, want int) []byte {
	t.Helper()
	reply := make([]byte, want)
	line.SetReadDeadline(time.Now().Add(ioTimeout))
	for n := 0; n < want; {
		m, err := line.Read(reply[n:])
		if err != nil {
			t.Fatalf("read %d of %d bytes (%q): %v", n, want, reply[:n], err)
		}
		n += m
	}
	return reply
}

// TestFramingsOverTCP: with Config.Framing the TCP connections speak RTU
// or ASCII instead of MBAP, each its own line: a read is answered, a
// malformed frame is counted and the next answered, and FaultDrop closes
// the connection.
func TestFramingsOverTCP(t *testing.T) {
	for _, tc := range []struct {
		framing Framing
		frame   func(unit uint8, pdu ...byte) []byte
		garbage []byte
	}{
		{FramingRTU, rtuRequest, []byte{3, 3, 0, 10, 0, 2, 0, 0}}, // bad CRC
		{FramingASCII, asciiRequest, []byte(":030300\r\n")},       // bad LRC
	} {
		t.Run(string(tc.framing), func(t *testing.T) {
			s := newServer(t, Config{Framing: tc.framing})
			u := addUnit(t, s, 3, sizes100)
			u.SetRegisters(devices.HoldingRegisters, 10, []uint16{0x0102, 0x0304})
			read, want := tc.frame(3, 0x03, 0, 10, 0, 2), tc.frame(3, 0x03, 4, 1, 2, 3, 4)
			nc, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if got := exchange(t, nc, read, len(want)); !bytes.Equal(got, want) {
				t.Fatalf("reply % x, want % x", got, want)
			}
			exchange(t, nc, tc.garbage, 0)
			if got := exchange(t, nc, read, len(want)); !bytes.Equal(got, want) {
				t.Fatalf("after garbage: reply % x, want % x", got, want)
			}
			// A reply is counted once written: the client may read it first.
			eventually(t, "the second reply counted", func() bool { return s.Stats().Replies >= 2 })
			if st := s.Stats(); st.BadFrames != 1 || st.Connections != 1 || st.Replies != 2 {
				t.Errorf("stats %+v, want 1 bad frame, 1 connection, 2 replies", st)
			}
			u.SetFaults(Fault{Kind: FaultDrop})
			writeLine(t, nc, read)
			nc.SetReadDeadline(time.Now().Add(ioTimeout))
			var b [1]byte
			if n, err := nc.Read(b[:]); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("after a drop fault: read %d bytes, %v; want the connection closed", n, err)
			}
		})
	}
	if _, err := New(Config{Framing: "modbus"}); !errors.Is(err, ErrConfig) {
		t.Errorf("Framing modbus: %v, want ErrConfig", err)
	}
	s := newServer(t, Config{NoTCP: true})
	if err := s.ServeSerial(context.Background(), SerialConfig{Device: "/dev/null", Framing: FramingMBAP}); !errors.Is(err, ErrConfig) {
		t.Errorf("ServeSerial with MBAP framing: %v, want ErrConfig", err)
	}
}

// FuzzASCIIScan feeds arbitrary bytes to the ASCII frame scanner, the
// first decoder of a line's untrusted input. It must never panic, must
// make progress or wait for more, and every frame it accepts must encode
// back to the bytes it was read from (up to the case of the digits).
func FuzzASCIIScan(f *testing.F) {
	f.Add(asciiRequest(1, 3, 0, 0, 0, 2))
	f.Add(append(asciiRequest(1, 3, 0, 0, 0, 2), asciiRequest(2, 0x10, 0, 1, 0, 1, 2, 0, 9)...))
	f.Add([]byte(":1103006B00037E\r\n"))
	f.Add([]byte(":1103006b00037e\r\n"))
	f.Add([]byte("noise:0103\r\n"))
	f.Add([]byte(":01:0103000000FC\r\n"))
	f.Add([]byte(":0103000000FC\r"))
	f.Add([]byte(":\n"))
	f.Add(append([]byte(":"), bytes.Repeat([]byte("0"), asciiMaxFrame)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		buf := in
		for steps := 0; len(buf) > 0; steps++ {
			if steps > len(in) {
				t.Fatalf("no progress on %q", in)
			}
			used, frame, err := asciiScan(buf, nil)
			if used < 0 || used > len(buf) {
				t.Fatalf("used %d of %d bytes", used, len(buf))
			}
			if used == 0 {
				if err != nil || frame != nil || buf[0] != ':' || len(buf) >= asciiMaxFrame || bytes.IndexByte(buf, '\n') >= 0 {
					t.Fatalf("waits on %q (%v)", buf, err)
				}
				break
			}
			if err == nil {
				if len(frame) < 2 || !strings.EqualFold(string(appendASCII(nil, frame[0], frame[1:])), string(buf[:used])) {
					t.Fatalf("frame % x from %q", frame, buf[:used])
				}
				if _, err := hex.DecodeString(string(buf[1 : used-2])); err != nil {
					t.Fatalf("accepted %q: %v", buf[:used], err)
				}
			} else if frame != nil {
				t.Fatalf("frame % x with error %v", frame, err)
			}
			buf = buf[used:]
		}
	})
}
