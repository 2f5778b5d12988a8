package modbus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// Every transport against the simulator serving its framing: Modbus TCP,
// RTU and ASCII over TCP (a serial device server in raw mode), RTU and
// ASCII on a socat pseudo-terminal pair.

var allTransports = []Transport{TCP, RTUOverTCP, ASCIIOverTCP, RTU, ASCII}

// simFraming is the simulator's framing of a transport.
func simFraming(tr Transport) simulator.Framing {
	switch tr {
	case RTU, RTUOverTCP:
		return simulator.FramingRTU
	case ASCII, ASCIIOverTCP:
		return simulator.FramingASCII
	}
	return simulator.FramingMBAP
}

// simLine starts a simulator serving the framing of tr, on a loopback
// port or on one end of a pseudo-terminal pair, and returns it with the
// ConnConfig that reaches it. Everything stops at the end of the test.
func simLine(t *testing.T, tr Transport, cfg simulator.Config) (*simulator.Server, ConnConfig) {
	t.Helper()
	if !tr.Serial() {
		cfg.Framing = simFraming(tr)
		s := newSim(t, cfg)
		return s, ConnConfig{Transport: tr, Address: s.Addr().String()}
	}
	client, device := ptyPair(t)
	cfg.NoTCP = true
	s := newSim(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeSerial(ctx, simulator.SerialConfig{Device: device, Framing: simFraming(tr), BaudRate: 115200})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSerial: %v", err)
		}
	})
	return s, ConnConfig{Transport: tr, Address: client, BaudRate: 115200}
}

// TestTransports reads known registers and bits through every transport,
// and checks that each fault is reported as its kind and that the Conn
// recovers from it: the next read gets its own registers.
func TestTransports(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			s, cc := simLine(t, tr, simulator.Config{})
			u1 := addUnit(t, s, 1)
			addUnit(t, s, 2)
			cc.Timeout = timeout
			c := newConn(t, cc)
			readOK := func(t *testing.T, u uint8, addr, n int) {
				t.Helper()
				got, err := c.Read(readCtx(t), u, devices.HoldingRegisters, uint16(addr), uint16(n))
				if err != nil || !bytes.Equal(got, wantRegs(u, addr, n)) {
					t.Fatalf("unit %d holding %d+%d: % x, %v; want % x", u, addr, n, got, err, wantRegs(u, addr, n))
				}
			}

			t.Run("reads", func(t *testing.T) {
				readOK(t, 2, 0, 125)
				readPeer(t, c, []uint8{1, 2}) // the peers' layout, the simulator's too: registers, bits, an exception
			})

			dropKind := KindTransport
			if tr.Serial() {
				dropKind = KindTimeout // nothing to close on a serial line: no reply
			}
			for _, fc := range []struct {
				name  string
				fault simulator.Fault
				kind  ErrorKind
			}{
				{"busy once", simulator.Fault{Kind: simulator.FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 1}, KindNone},
				{"short reply", simulator.Fault{Kind: simulator.FaultShortReply, Times: 1}, KindLength},
				{"wrong transaction id or unit", simulator.Fault{Kind: simulator.FaultWrongTransactionID, Times: 1}, KindFraming},
				{"no reply", simulator.Fault{Kind: simulator.FaultNoReply, Times: 1}, KindTimeout},
				// Late by half a timeout after the client gave up: within the
				// Timeout of quiet the client waits for before its next request.
				{"late reply", simulator.Fault{Kind: simulator.FaultDelay, Delay: timeout + timeout/2, Times: 1}, KindTimeout},
				{"drop", simulator.Fault{Kind: simulator.FaultDrop, Times: 1}, dropKind},
			} {
				t.Run(fc.name, func(t *testing.T) {
					if err := u1.SetFaults(fc.fault); err != nil {
						t.Fatal(err)
					}
					defer u1.ClearFaults()
					got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 10, 2)
					if KindOf(err) != fc.kind {
						t.Fatalf("got % x, %v (kind %v), want kind %v", got, err, KindOf(err), fc.kind)
					}
					if err == nil && !bytes.Equal(got, wantRegs(1, 10, 2)) {
						t.Fatalf("got % x, want % x", got, wantRegs(1, 10, 2))
					}
					// A late reply must not answer a later request.
					for _, a := range []int{20, 30, 40} {
						readOK(t, 1, a, 2)
					}
				})
			}

			t.Run("close after scan", func(t *testing.T) {
				cc := cc
				cc.CloseAfterScan = true
				c := newConn(t, cc)
				before := s.Stats().Connections
				for range 2 {
					got, err := c.Read(readCtx(t), 2, devices.HoldingRegisters, 7, 3)
					if err != nil || !bytes.Equal(got, wantRegs(2, 7, 3)) {
						t.Fatalf("read: % x, %v", got, err)
					}
					c.endScan()
				}
				if st := c.Stats(); st.Connects != 2 || st.ScanCloses != 2 || st.Disconnects != 0 {
					t.Errorf("stats %+v: want 2 connects and 2 scan closes", st)
				}
				if got := s.Stats().Connections - before; !tr.Serial() && got != 2 {
					t.Errorf("the simulator accepted %d connections, want 2", got)
				}
			})
		})
	}
}

// TestTransportPauses: pause_after_connect and pause_between_requests hold
// on every transport. Only lower bounds are checked.
func TestTransportPauses(t *testing.T) {
	const pause = 100 * time.Millisecond
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			var log requestLog
			s, cc := simLine(t, tr, simulator.Config{OnRequest: log.add})
			addUnit(t, s, 1)
			cc.PauseAfterConnect, cc.PauseBetweenRequests = pause, pause
			c := newConn(t, cc)
			start := time.Now()
			for _, a := range []int{0, 10, 20} {
				got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, uint16(a), 2)
				if err != nil || !bytes.Equal(got, wantRegs(1, a, 2)) {
					t.Fatalf("read %d: % x, %v", a, got, err)
				}
			}
			reqs := log.get()
			if len(reqs) != 3 {
				t.Fatalf("%d requests arrived, want 3", len(reqs))
			}
			if d := reqs[0].Received.Sub(start); d < pause {
				t.Errorf("first request %v after the read started, want at least pause_after_connect %v", d, pause)
			}
			for i := 1; i < len(reqs); i++ {
				if d := reqs[i].Received.Sub(reqs[i-1].Received); d < pause {
					t.Errorf("request %d arrived %v after the one before, want at least pause_between_requests %v", i, d, pause)
				}
			}
		})
	}
}

// asciiAction is how the fake ASCII device answers one request: with
// reply (nil: the correct reply), written in pieces at the given offsets.
type asciiAction struct {
	reply  []byte
	pieces []int
}

// startFakeASCII serves reads of holding registers (regValue) over TCP in
// ASCII framing until the test ends; next decides each answer. It returns
// the address.
func startFakeASCII(t *testing.T, next func() asciiAction) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					line, err := br.ReadBytes('\n')
					if err != nil {
						return
					}
					raw, err := hex.DecodeString(strings.TrimSpace(string(line[1:])))
					if err != nil || len(raw) != 7 {
						t.Errorf("fake ascii device: request %q", line)
						return
					}
					unit, addr, qty := raw[0], int(raw[2])<<8|int(raw[3]), int(raw[4])<<8|int(raw[5])
					a := next()
					reply := a.reply
					if reply == nil {
						pdu := append([]byte{raw[1], byte(2 * qty)}, wantRegs(unit, addr, qty)...)
						reply = asciiFrame(unit, pdu)
					}
					last := 0
					for _, p := range append(a.pieces, len(reply)) {
						nc.Write(reply[last:p])
						last = p
						time.Sleep(20 * time.Millisecond)
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// asciiFrame is the ASCII frame of pdu from unit, upper-case, with its LRC.
func asciiFrame(unit uint8, pdu []byte) []byte {
	raw := append([]byte{unit}, pdu...)
	raw = append(raw, lrc(raw))
	return []byte(":" + strings.ToUpper(hex.EncodeToString(raw)) + "\r\n")
}

// TestASCIIGarbledReplies: every way an ASCII reply can be garbled is a
// framing error naming what was wrong; the Conn drops the connection,
// discards what is left of the reply and reads the next one correctly.
func TestASCIIGarbledReplies(t *testing.T) {
	good := string(asciiFrame(1, append([]byte{3, 4}, wantRegs(1, 5, 2)...))) // the reply to holding 5+2 of unit 1
	badLRC := []byte(good)
	badLRC[len(badLRC)-3] ^= 1
	var mu sync.Mutex
	var action asciiAction
	addr := startFakeASCII(t, func() asciiAction {
		mu.Lock()
		defer mu.Unlock()
		a := action
		action = asciiAction{}
		return a
	})
	c := newConn(t, ConnConfig{Transport: ASCIIOverTCP, Address: addr, Timeout: 500 * time.Millisecond})
	for _, tc := range []struct {
		name   string
		action asciiAction
		kind   ErrorKind
		msg    string
	}{
		{"in pieces", asciiAction{pieces: []int{1, 4, 9}}, KindNone, ""},
		{"lower case", asciiAction{reply: []byte(strings.ToLower(good))}, KindNone, ""},
		{"bad LRC", asciiAction{reply: badLRC}, KindFraming, "ascii frame: LRC"},
		{"no colon", asciiAction{reply: []byte("\x00" + good)}, KindFraming, "starts with byte 0x00, not ':'"},
		{"not hexadecimal", asciiAction{reply: []byte(":01030G" + good[7:])}, KindFraming, "byte 0x47 at character 6 is not a hexadecimal digit"},
		{"CR without LF", asciiAction{reply: []byte(good[:len(good)-1] + "X")}, KindFraming, "is followed by byte 0x58, not LF"},
		{"LF without CR", asciiAction{reply: []byte(good[:len(good)-2] + "\n")}, KindFraming, "without CR before it"},
		{"two frames", asciiAction{reply: []byte(good + good)}, KindFraming, "bytes follow the reply's CR LF"},
		{"a frame inside a frame", asciiAction{reply: []byte(good[:5] + good)}, KindFraming, "':' at character 5 starts another frame"},
		{"odd number of digits", asciiAction{reply: []byte(":010\r\n")}, KindFraming, "odd number (3)"},
		{"too short", asciiAction{reply: []byte(":01FF\r\n")}, KindFraming, "fewer than unit, function and LRC"},
		{"endless", asciiAction{reply: []byte(":" + strings.Repeat("0", 600))}, KindFraming, "no CR LF within 513 characters"},
		{"cut short", asciiAction{reply: []byte(good[:10])}, KindTimeout, "no complete reply"},
		{"another unit", asciiAction{reply: asciiFrame(2, append([]byte{3, 4}, wantRegs(2, 5, 2)...))}, KindFraming, "slave id"},
		{"short", asciiAction{reply: asciiFrame(1, append([]byte{3, 2}, wantRegs(1, 5, 1)...))}, KindLength, "want 4"},
		{"exception", asciiAction{reply: asciiFrame(1, []byte{0x83, 2})}, KindException, "exception 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			action = tc.action
			mu.Unlock()
			got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 5, 2)
			if KindOf(err) != tc.kind || err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got % x, %v (kind %v); want kind %v, an error containing %q", got, err, KindOf(err), tc.kind, tc.msg)
			}
			if err == nil && !bytes.Equal(got, wantRegs(1, 5, 2)) {
				t.Fatalf("got % x, want % x", got, wantRegs(1, 5, 2))
			}
			got, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 50, 3)
			if err != nil || !bytes.Equal(got, wantRegs(1, 50, 3)) {
				t.Fatalf("next read: % x, %v", got, err)
			}
		})
	}
}

// TestASCIIFrame checks the ASCII frame checks against the example of the
// Modbus serial line specification (section 2.5.2.1) and goburrow's
// packager.
func TestASCIIFrame(t *testing.T) {
	frame := []byte(":1103006B00037E\r\n")
	if n, err := asciiFrameEnd(frame); n != len(frame) || err != nil {
		t.Fatalf("asciiFrameEnd = %d, %v", n, err)
	}
	raw, err := checkASCIIFrame(frame)
	if err != nil || !bytes.Equal(raw, []byte{0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x7E}) {
		t.Fatalf("checkASCIIFrame = % x, %v", raw, err)
	}
	if n, err := asciiFrameEnd(frame[:9]); n != 0 || err != nil {
		t.Fatalf("a frame's start: %d, %v; want 0, nil", n, err)
	}
	c := newStreamTransport(ConnConfig{Transport: ASCIIOverTCP, Address: "h:1"})
	adu, err := c.encode(0x11, []byte{3, 0x00, 0x6B, 0x00, 0x03})
	if err != nil || !bytes.Equal(adu, frame) {
		t.Fatalf("goburrow encodes %q, %v; want %q", adu, err, frame)
	}
}

func ExampleTransport() {
	for _, tr := range allTransports {
		fmt.Println(tr, tr.Serial(), tr.Bus())
	}
	// Output:
	// tcp false false
	// rtu_over_tcp false true
	// ascii_over_tcp false true
	// rtu true true
	// ascii true true
}
