package simulator

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// faultServer starts a server with unit 1 whose holding registers 0..2
// hold 0x000A, 0x000B, 0x000C and whose coils 0..9 are 1,0,1,0,...
func faultServer(t *testing.T, cfg Config) (*Server, *Unit) {
	t.Helper()
	s := newServer(t, cfg)
	u := addUnit(t, s, 1, sizes100)
	u.SetRegisters(devices.HoldingRegisters, 0, []uint16{0x0A, 0x0B, 0x0C})
	u.SetBits(devices.Coils, 0, []bool{true, false, true, false, true, false, true, false, true, false})
	return s, u
}

func TestFaultReplies(t *testing.T) {
	read3 := adu(0x0101, 1, req(3, 0, 3)...)
	good3 := []byte{0x01, 0x01, 0, 0, 0, 9, 1, 0x03, 0x06, 0, 0x0A, 0, 0x0B, 0, 0x0C}
	cases := []struct {
		name  string
		fault Fault
		send  []byte
		want  []byte // exact reply bytes
	}{
		{"exception", Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceFailure}, read3,
			[]byte{0x01, 0x01, 0, 0, 0, 3, 1, 0x83, 0x04}},
		{"short registers", Fault{Kind: FaultShortReply}, read3,
			// byte count 4 and two registers; MBAP length 7 = unit + 6-byte PDU.
			[]byte{0x01, 0x01, 0, 0, 0, 7, 1, 0x03, 0x04, 0, 0x0A, 0, 0x0B}},
		{"short single register", Fault{Kind: FaultShortReply}, adu(2, 1, req(4, 0, 1)...),
			[]byte{0, 2, 0, 0, 0, 3, 1, 0x04, 0x00}},
		{"short coils", Fault{Kind: FaultShortReply}, adu(3, 1, req(1, 0, 10)...),
			// 10 coils need 2 bytes (0x55, 0x01); short: byte count 1.
			[]byte{0, 3, 0, 0, 0, 4, 1, 0x01, 0x01, 0x55}},
		{"short reply of a failing read stays an exception", Fault{Kind: FaultShortReply}, adu(4, 1, req(3, 99, 2)...),
			[]byte{0, 4, 0, 0, 0, 3, 1, 0x83, 0x02}},
		{"wrong transaction id", Fault{Kind: FaultWrongTransactionID}, read3,
			append([]byte{0x81, 0x01}, good3[2:]...)},
		{"wrong transaction id from 0x8001", Fault{Kind: FaultWrongTransactionID}, adu(0x8001, 1, req(6, 5, 7)...),
			adu(0x0001, 1, req(6, 5, 7)...)},
		{"delay", Fault{Kind: FaultDelay, Delay: 30 * time.Millisecond}, read3, good3},
		{"exception after a delay", Fault{Kind: FaultException, Exception: devices.ExceptionAcknowledge, Delay: 30 * time.Millisecond}, read3,
			[]byte{0x01, 0x01, 0, 0, 0, 3, 1, 0x83, 0x05}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, u := faultServer(t, Config{})
			if err := u.SetFaults(tc.fault); err != nil {
				t.Fatal(err)
			}
			c := dialRaw(t, s)
			start := time.Now()
			c.send(tc.send)
			c.expect(tc.want)
			// A timer never fires early, so this lower bound cannot
			// flake on a slow machine.
			if elapsed := time.Since(start); elapsed < tc.fault.Delay {
				t.Errorf("reply after %v, want at least the %v delay", elapsed, tc.fault.Delay)
			}
			if st := s.Stats(); st.Faults[tc.fault.Kind] != 1 {
				t.Errorf("Stats().Faults = %v, want one %v", st.Faults, tc.fault.Kind)
			}
		})
	}
}

func TestFaultDrop(t *testing.T) {
	var logs logBuffer
	s, u := faultServer(t, Config{Logger: logs.logger()})
	if err := u.SetFaults(Fault{Kind: FaultDrop, Function: 6}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, s)
	// The read before the dropped write is answered; the write is not
	// executed; the read after it is never read.
	c.send(adu(1, 1, req(3, 0, 1)...), adu(2, 1, req(6, 0, 0xFFFF)...), adu(3, 1, req(3, 0, 1)...))
	c.expect(adu(1, 1, 3, 2, 0, 0x0A))
	c.expectClosed()
	if r, _ := u.Registers(devices.HoldingRegisters, 0, 1); r[0] != 0x0A {
		t.Errorf("register 0 = %#x after a dropped write, want it unchanged (0xa)", r[0])
	}
	if st := s.Stats(); st.Faults[FaultDrop] != 1 || st.Requests[3] != 1 {
		t.Errorf("Stats() = %+v, want one drop and one read", st)
	}
	if !strings.Contains(logs.String(), "dropping connection") {
		t.Errorf("log does not mention the drop:\n%s", logs.String())
	}
	t.Run("other connections keep working", func(t *testing.T) {
		c := dialRaw(t, s)
		c.send(adu(4, 1, req(3, 1, 1)...))
		c.expect(adu(4, 1, 3, 2, 0, 0x0B))
	})
}

func TestFaultNoReply(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultNoReply, Times: 1}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, s)
	c.send(adu(1, 1, req(6, 0, 0xFFFF)...))
	c.send(adu(2, 1, req(3, 0, 1)...))
	// The first reply to arrive answers the second request: the write was
	// swallowed, neither executed nor answered.
	c.expect(adu(2, 1, 3, 2, 0, 0x0A))
}

func TestFaultBusyThenNormal(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 3}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, s)
	for i := range uint16(5) {
		c.send(adu(i, 1, req(3, 2, 1)...))
		if i < 3 {
			c.expect(adu(i, 1, 0x83, 0x06))
		} else {
			c.expect(adu(i, 1, 3, 2, 0, 0x0C))
		}
	}
	if st := s.Stats(); st.Exceptions[devices.ExceptionServerDeviceBusy] != 3 || st.Faults[FaultException] != 3 {
		t.Errorf("Stats() = %+v, want three busy exceptions", st)
	}
}

// firePattern sends n reads of register 0 pipelined and returns which were
// answered with the injected exception 4.
func firePattern(t *testing.T, s *Server, n int, pdu []byte) string {
	t.Helper()
	c := dialRaw(t, s)
	var frames [][]byte
	for i := range n {
		frames = append(frames, adu(uint16(i), 1, pdu...))
	}
	c.send(frames...)
	var b strings.Builder
	for range n {
		r := c.recv()
		if bytes.Equal(r[headerLen:], []byte{pdu[0] | 0x80, 4}) {
			b.WriteByte('x')
		} else {
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestFaultTriggers(t *testing.T) {
	fail := func(f Fault) Fault {
		f.Kind, f.Exception = FaultException, devices.ExceptionServerDeviceFailure
		return f
	}
	cases := []struct {
		name  string
		fault Fault
		pdu   []byte
		want  string
	}{
		{"always", fail(Fault{}), req(3, 0, 1), "xxxxxx"},
		{"every 3rd", fail(Fault{Every: 3}), req(3, 0, 1), "..x..x..x"},
		{"every 2nd, 2 times", fail(Fault{Every: 2, Times: 2}), req(3, 0, 1), ".x.x....."},
		{"other function", fail(Fault{Function: 4}), req(3, 0, 1), "...."},
		{"same function", fail(Fault{Function: 3}), req(3, 0, 1), "xxxx"},
		{"address range overlaps the read's end", fail(Fault{Address: 9, Count: 5}), req(3, 0, 10), "xx"},
		{"address range just after the read", fail(Fault{Address: 10, Count: 5}), req(3, 0, 10), ".."},
		{"address range just before the read", fail(Fault{Address: 0, Count: 10}), req(3, 10, 1), ".."},
		{"single write inside the range", fail(Fault{Address: 50, Count: 1}), req(6, 50, 1), "xx"},
		{"function without an address never matches a range", fail(Fault{Count: 65536}), []byte{0x2B, 0x0E}, ".."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, u := faultServer(t, Config{})
			if err := u.SetFaults(tc.fault); err != nil {
				t.Fatal(err)
			}
			if got := firePattern(t, s, len(tc.want), tc.pdu); got != tc.want {
				t.Errorf("fired %s, want %s (x = fault, . = normal)", got, tc.want)
			}
		})
	}
}

func TestFaultProbabilityIsSeeded(t *testing.T) {
	pattern := func(seed uint64) string {
		s, u := faultServer(t, Config{})
		if err := u.SetFaults(Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceFailure, Probability: 0.3, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return firePattern(t, s, 60, req(3, 0, 1))
	}
	a, b, other := pattern(42), pattern(42), pattern(43)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == other {
		t.Errorf("seeds 42 and 43 gave the same faults: %s", a)
	}
	if n := strings.Count(a, "x"); n == 0 || n == len(a) {
		t.Errorf("probability 0.3 fired %d of %d times: %s", n, len(a), a)
	}
}

func TestFaultOrder(t *testing.T) {
	t.Run("server faults come first and cover missing units", func(t *testing.T) {
		s, u := faultServer(t, Config{})
		if err := u.SetFaults(Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceFailure}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetFaults(Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 2}); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, s)
		c.send(adu(1, 9, req(3, 0, 1)...), adu(2, 1, req(3, 0, 1)...), adu(3, 1, req(3, 0, 1)...), adu(4, 9, req(3, 0, 1)...))
		c.expect(adu(1, 9, 0x83, 0x06))
		c.expect(adu(2, 1, 0x83, 0x06))
		c.expect(adu(3, 1, 0x83, 0x04))
		c.expect(adu(4, 9, 0x83, 0x0B))
	})
	t.Run("first fault that fires wins", func(t *testing.T) {
		s, u := faultServer(t, Config{})
		err := u.SetFaults(
			Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Every: 2},
			Fault{Kind: FaultWrongTransactionID},
		)
		if err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, s)
		c.send(adu(1, 1, req(3, 0, 1)...), adu(2, 1, req(3, 0, 1)...))
		c.expect(adu(0x8001, 1, 3, 2, 0, 0x0A))
		c.expect(adu(2, 1, 0x83, 0x06))
	})
	t.Run("ClearFaults", func(t *testing.T) {
		s, u := faultServer(t, Config{})
		u.SetFaults(Fault{Kind: FaultNoReply})
		s.SetFaults(Fault{Kind: FaultNoReply})
		u.ClearFaults()
		s.ClearFaults()
		c := dialRaw(t, s)
		c.send(adu(1, 1, req(3, 0, 1)...))
		c.expect(adu(1, 1, 3, 2, 0, 0x0A))
	})
}

func TestFaultValidation(t *testing.T) {
	cases := []struct {
		name  string
		fault Fault
		want  string
	}{
		{"no kind", Fault{}, "fault kind 0: unknown kind"},
		{"unknown kind", Fault{Kind: 99}, "fault kind 99"},
		{"delay without a delay", Fault{Kind: FaultDelay}, "Delay must be positive"},
		{"negative delay", Fault{Kind: FaultDrop, Delay: -1}, "Delay -1ns is negative"},
		{"exception without a code", Fault{Kind: FaultException}, "Exception must be set"},
		{"code without an exception", Fault{Kind: FaultDrop, Exception: 6}, "only FaultException sends one"},
		{"probability above 1", Fault{Kind: FaultDrop, Probability: 1.5}, "Probability 1.5 is outside 0..1"},
		{"negative every", Fault{Kind: FaultDrop, Every: -1}, "Every -1"},
		{"negative times", Fault{Kind: FaultDrop, Times: -1}, "Times -1"},
		{"range past 65535", Fault{Kind: FaultDrop, Address: 65535, Count: 2}, "Address 65535 + Count 2"},
		{"short reply to a write", Fault{Kind: FaultShortReply, Function: 6}, "Function 6 is not a read"},
	}
	s, u := faultServer(t, Config{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := u.SetFaults(Fault{Kind: FaultNoReply, Function: 99}, tc.fault)
			if !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "unit 1: faults[1]") {
				t.Errorf("error %v, want ErrFault naming unit 1, faults[1] and %q", err, tc.want)
			}
			if err := s.SetFaults(tc.fault); !errors.Is(err, ErrFault) {
				t.Errorf("server: error %v, want ErrFault", err)
			}
		})
	}
	t.Run("faults stay after a bad SetFaults", func(t *testing.T) {
		if err := u.SetFaults(Fault{Kind: FaultException, Exception: 4}); err != nil {
			t.Fatal(err)
		}
		u.SetFaults(Fault{Kind: 0})
		if got := firePattern(t, s, 2, req(3, 0, 1)); got != "xx" {
			t.Errorf("fired %s after a rejected SetFaults, want xx (the old fault)", got)
		}
	})
	for _, k := range []FaultKind{FaultDelay, FaultException, FaultShortReply, FaultWrongTransactionID, FaultDrop, FaultNoReply, 42} {
		if name := k.String(); strings.HasPrefix(name, "Fault") && k <= FaultNoReply {
			t.Errorf("FaultKind(%d).String() = %q", k, name)
		}
	}
	if got := fmt.Sprint(devices.ExceptionGatewayTargetFailedToRespond, "; ", devices.Exception(0x42)); got != "gateway target device failed to respond; unknown exception 0x42" {
		t.Errorf("Exception strings: %q", got)
	}
}
