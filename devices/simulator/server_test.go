package simulator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/goburrow/modbus"
)

func TestGoburrowFunctions(t *testing.T) {
	s := newServer(t, Config{})
	u := addUnit(t, s, 7, sizes100)
	if err := u.SetBits(devices.Coils, 10, []bool{true, false, true, true, false, false, false, false, true}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetBits(devices.DiscreteInputs, 98, []bool{true, true}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetRegisters(devices.HoldingRegisters, 0, []uint16{0x1234, 0xABCD, 0}); err != nil {
		t.Fatal(err)
	}
	if err := u.SetRegisters(devices.InputRegisters, 99, []uint16{0xFFFF}); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, s, 7)

	cases := []struct {
		name  string
		call  func() ([]byte, error)
		want  []byte
		check func(t *testing.T)
	}{
		{"read coils", func() ([]byte, error) { return c.ReadCoils(10, 9) }, []byte{0x0D, 0x01}, nil},
		{"read discrete inputs at the end of the table", func() ([]byte, error) { return c.ReadDiscreteInputs(97, 3) }, []byte{0x06}, nil},
		{"read holding registers", func() ([]byte, error) { return c.ReadHoldingRegisters(0, 3) }, []byte{0x12, 0x34, 0xAB, 0xCD, 0, 0}, nil},
		{"read input registers", func() ([]byte, error) { return c.ReadInputRegisters(99, 1) }, []byte{0xFF, 0xFF}, nil},
		{"read the whole register table", func() ([]byte, error) { return c.ReadHoldingRegisters(0, 100) }, append([]byte{0x12, 0x34, 0xAB, 0xCD}, make([]byte, 196)...), nil},
		{"write single coil", func() ([]byte, error) { return c.WriteSingleCoil(50, 0xFF00) }, []byte{0xFF, 0x00}, func(t *testing.T) {
			if b, _ := u.Bits(devices.Coils, 50, 1); !b[0] {
				t.Error("coil 50 is off after writing it on")
			}
		}},
		{"write single register", func() ([]byte, error) { return c.WriteSingleRegister(42, 0xBEEF) }, []byte{0xBE, 0xEF}, func(t *testing.T) {
			if r, _ := u.Registers(devices.HoldingRegisters, 42, 1); r[0] != 0xBEEF {
				t.Errorf("register 42 = %#x, want 0xbeef", r[0])
			}
		}},
		{"write multiple coils", func() ([]byte, error) { return c.WriteMultipleCoils(60, 10, []byte{0x81, 0x02}) }, []byte{0, 10}, func(t *testing.T) {
			b, _ := u.Bits(devices.Coils, 60, 10)
			want := []bool{true, false, false, false, false, false, false, true, false, true}
			if fmt.Sprint(b) != fmt.Sprint(want) {
				t.Errorf("coils 60..69 = %v, want %v", b, want)
			}
		}},
		{"write multiple registers", func() ([]byte, error) {
			return c.WriteMultipleRegisters(97, 3, []byte{0, 1, 0, 2, 0, 3})
		}, []byte{0, 3}, func(t *testing.T) {
			if r, _ := u.Registers(devices.HoldingRegisters, 97, 3); fmt.Sprint(r) != "[1 2 3]" {
				t.Errorf("registers 97..99 = %v, want [1 2 3]", r)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got % x, want % x", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	st := s.Stats()
	for fc := uint8(1); fc <= 16; fc++ {
		if fc > 6 && fc < 15 {
			continue
		}
		if st.Requests[fc] == 0 {
			t.Errorf("Stats().Requests[%d] = 0, want at least 1 (stats %+v)", fc, st)
		}
	}
}

func TestGoburrowException(t *testing.T) {
	s := newServer(t, Config{})
	addUnit(t, s, 1, sizes100)
	c, _ := newClient(t, s, 1)
	cases := []struct {
		name string
		call func() ([]byte, error)
		fc   byte
		code byte
	}{
		{"read past the end", func() ([]byte, error) { return c.ReadHoldingRegisters(99, 2) }, 0x83, 2},
		{"write past the end", func() ([]byte, error) { return c.WriteSingleCoil(100, 0) }, 0x85, 2},
		{"unsupported function 22", func() ([]byte, error) { return c.MaskWriteRegister(0, 0xFFFF, 0) }, 0x96, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			var me *modbus.ModbusError
			if !errors.As(err, &me) {
				t.Fatalf("error %v, want a *modbus.ModbusError", err)
			}
			if me.FunctionCode != tc.fc || me.ExceptionCode != tc.code {
				t.Errorf("exception function %#x code %d, want %#x code %d", me.FunctionCode, me.ExceptionCode, tc.fc, tc.code)
			}
		})
	}
}

func TestExceptions(t *testing.T) {
	s := newServer(t, Config{})
	addUnit(t, s, 1, Sizes{Coils: 16, DiscreteInputs: 2000, HoldingRegisters: 125, InputRegisters: 0})
	conn := dialRaw(t, s)
	cases := []struct {
		name string
		pdu  []byte
		want []byte // reply PDU
	}{
		{"unknown function", []byte{0x2B, 0x0E, 0x01, 0x00}, []byte{0xAB, 0x01}},
		{"function 0", []byte{0x00}, []byte{0x80, 0x01}},
		{"function with the exception bit", []byte{0x83, 0, 0, 0, 1}, []byte{0x83, 0x01}},
		{"read registers quantity 0", req(3, 0, 0), []byte{0x83, 0x03}},
		{"read registers quantity 126", req(3, 0, 126), []byte{0x83, 0x03}},
		{"read registers quantity 125", req(3, 0, 125), nil},
		{"read bits quantity 2001", req(2, 0, 2001), []byte{0x82, 0x03}},
		{"read bits quantity 2000", req(2, 0, 2000), nil},
		{"read bits quantity 0", req(1, 0, 0), []byte{0x81, 0x03}},
		{"read coils past the end", req(1, 15, 2), []byte{0x81, 0x02}},
		{"read a table of size 0", req(4, 0, 1), []byte{0x84, 0x02}},
		{"read at address 65535", req(3, 0xFFFF, 1), []byte{0x83, 0x02}},
		{"read with a short PDU", []byte{0x03, 0, 0, 0}, []byte{0x83, 0x03}},
		{"read with a long PDU", []byte{0x03, 0, 0, 0, 1, 0}, []byte{0x83, 0x03}},
		{"write coil with value 0x1234", req(5, 0, 0x1234), []byte{0x85, 0x03}},
		{"write coil past the end", req(5, 16, 0xFF00), []byte{0x85, 0x02}},
		{"write register past the end", req(6, 125, 1), []byte{0x86, 0x02}},
		{"write coils byte count too small", append(req(15, 0, 9), 1, 0xFF), []byte{0x8F, 0x03}},
		{"write coils data shorter than byte count", append(req(15, 0, 9), 2, 0xFF), []byte{0x8F, 0x03}},
		{"write coils quantity 1969", append(req(15, 0, 1969), 247), []byte{0x8F, 0x03}},
		{"write coils past the end", append(req(15, 10, 8), 1, 0xFF), []byte{0x8F, 0x02}},
		{"write registers quantity 0", append(req(16, 0, 0), 0), []byte{0x90, 0x03}},
		{"write registers quantity 124", append(req(16, 0, 124), 248), []byte{0x90, 0x03}},
		{"write registers byte count mismatch", append(req(16, 0, 2), 2, 0, 1), []byte{0x90, 0x03}},
		{"write registers past the end", append(req(16, 124, 2), 4, 0, 1, 0, 2), []byte{0x90, 0x02}},
		{"write registers header only", []byte{0x10, 0, 0, 0}, []byte{0x90, 0x03}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := conn.with(t)
			txid := uint16(i + 1)
			c.send(adu(txid, 1, tc.pdu...))
			got := c.recv()
			if tc.want == nil {
				if isException(got[headerLen:]) {
					t.Fatalf("got exception % x, want a normal reply", got)
				}
				return
			}
			if want := adu(txid, 1, tc.want...); !bytes.Equal(got, want) {
				t.Errorf("reply\n got % x\nwant % x", got, want)
			}
		})
	}
	if st := s.Stats(); st.Exceptions[devices.ExceptionIllegalDataValue] == 0 || st.Exceptions[devices.ExceptionIllegalDataAddress] == 0 || st.Exceptions[devices.ExceptionIllegalFunction] == 0 {
		t.Errorf("Stats().Exceptions = %v, want counts for codes 1, 2 and 3", st.Exceptions)
	}
}

func TestMissingUnit(t *testing.T) {
	cases := []struct {
		policy MissingUnitPolicy
		want   []byte // reply PDU to a read of unit 9; nil for none
	}{
		{MissingUnitTargetNoReply, []byte{0x83, 0x0B}},
		{MissingUnitPathUnavailable, []byte{0x83, 0x0A}},
		{MissingUnitSilent, nil},
	}
	for _, tc := range cases {
		t.Run(tc.policy.String(), func(t *testing.T) {
			s := newServer(t, Config{MissingUnit: tc.policy})
			u := addUnit(t, s, 1, sizes100)
			u.SetRegisters(devices.HoldingRegisters, 0, []uint16{0x0102})
			c := dialRaw(t, s)
			// The request for unit 1 after the one for unit 9 shows
			// that a silent server sent nothing for unit 9 and kept
			// the connection.
			c.send(adu(1, 9, req(3, 0, 1)...), adu(2, 1, req(3, 0, 1)...))
			if tc.want != nil {
				c.expect(adu(1, 9, tc.want...))
			}
			c.expect(adu(2, 1, 0x03, 0x02, 0x01, 0x02))
		})
	}
	t.Run("removed unit", func(t *testing.T) {
		s := newServer(t, Config{})
		addUnit(t, s, 3, sizes100)
		c := dialRaw(t, s)
		c.send(adu(1, 3, req(1, 0, 1)...))
		c.expect(adu(1, 3, 0x01, 0x01, 0x00))
		if !s.RemoveUnit(3) {
			t.Fatal("RemoveUnit(3) = false, want true")
		}
		if s.RemoveUnit(3) {
			t.Fatal("second RemoveUnit(3) = true, want false")
		}
		c.send(adu(2, 3, req(1, 0, 1)...))
		c.expect(adu(2, 3, 0x81, 0x0B))
	})
}

func TestUnitIDs(t *testing.T) {
	s := newServer(t, Config{})
	for _, id := range []uint8{0, 1, 247, 255} {
		u := addUnit(t, s, id, Sizes{HoldingRegisters: 1})
		u.SetRegisters(devices.HoldingRegisters, 0, []uint16{uint16(id)})
	}
	conn := dialRaw(t, s)
	for i, id := range []uint8{0, 1, 247, 255} {
		t.Run(fmt.Sprint("unit ", id), func(t *testing.T) {
			c := conn.with(t)
			c.send(adu(uint16(i), id, req(3, 0, 1)...))
			c.expect(adu(uint16(i), id, 3, 2, 0, id))
		})
	}
}

func TestPipelinedUnitsOnOneConnection(t *testing.T) {
	s := newServer(t, Config{})
	const units = 40
	for id := uint8(1); id <= units; id++ {
		u := addUnit(t, s, id, Sizes{HoldingRegisters: 4, Coils: 8})
		u.SetRegisters(devices.HoldingRegisters, 0, []uint16{uint16(id), 0, 0, 1000 + uint16(id)})
	}
	c := dialRaw(t, s)
	var frames [][]byte
	for i := range 3 * units {
		id := uint8(i%units + 1)
		switch i / units {
		case 0:
			frames = append(frames, adu(uint16(i), id, req(3, 0, 4)...))
		case 1:
			frames = append(frames, adu(uint16(i), id, req(6, 1, uint16(i))...))
		default:
			frames = append(frames, adu(uint16(i), id, req(3, 1, 1)...))
		}
	}
	c.send(frames...)
	for i := range 3 * units {
		id := uint8(i%units + 1)
		var want []byte
		switch i / units {
		case 0:
			want = adu(uint16(i), id, 3, 8, 0, id, 0, 0, 0, 0, byte((1000+uint16(id))>>8), byte(1000+uint16(id)))
		case 1:
			want = adu(uint16(i), id, req(6, 1, uint16(i))...)
		default:
			want = adu(uint16(i), id, 3, 2, 0, byte(i-units))
		}
		if got := c.recv(); !bytes.Equal(got, want) {
			t.Fatalf("reply %d\n got % x\nwant % x", i, got, want)
		}
	}
}

func TestConcurrentConnections(t *testing.T) {
	s := newServer(t, Config{})
	const clients, rounds = 16, 50
	u := addUnit(t, s, 1, Sizes{HoldingRegisters: clients})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c, _ := newClient(t, s, 1)
		wg.Go(func() {
			for r := range rounds {
				v := uint16(i<<8 | r)
				if _, err := c.WriteSingleRegister(uint16(i), v); err != nil {
					errs <- fmt.Errorf("client %d round %d: write: %w", i, r, err)
					return
				}
				got, err := c.ReadHoldingRegisters(uint16(i), 1)
				if err != nil {
					errs <- fmt.Errorf("client %d round %d: read: %w", i, r, err)
					return
				}
				if g := binary.BigEndian.Uint16(got); g != v {
					errs <- fmt.Errorf("client %d round %d: read %#x, want %#x", i, r, g, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	regs, err := u.Registers(devices.HoldingRegisters, 0, clients)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range regs {
		if want := uint16(i<<8 | (rounds - 1)); v != want {
			t.Errorf("register %d = %#x, want %#x", i, v, want)
		}
	}
	if st := s.Stats(); st.Connections != clients || st.Requests[3] != clients*rounds || st.Requests[6] != clients*rounds {
		t.Errorf("Stats() = %+v, want %d connections and %d reads and writes", st, clients, clients*rounds)
	}
}

func TestCloseWithClientsConnected(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u := addUnit(t, s, 1, sizes100)
	idle := dialRaw(t, s)
	busy := dialRaw(t, s)
	if err := u.SetFaults(Fault{Kind: FaultDelay, Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	busy.send(adu(1, 1, req(3, 0, 1)...))
	eventually(t, "the delayed request to arrive", func() bool { return s.Stats().Faults[FaultDelay] == 1 })
	// An idle connection that has sent half a frame.
	half := dialRaw(t, s)
	half.send([]byte{0, 1, 0})

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, c := range map[string]*rawClient{"idle": idle, "delayed": busy, "half frame": half} {
		if err := c.closed(); err != nil {
			t.Errorf("%s client: %v", name, err)
		}
	}
	t.Run("second Close", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("AddUnit after Close", func(t *testing.T) {
		if _, err := s.AddUnit(2, sizes100); !errors.Is(err, ErrClosed) {
			t.Errorf("AddUnit after Close: %v, want ErrClosed", err)
		}
	})
	t.Run("dial after Close", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
		if err == nil {
			nc.Close()
			t.Error("dial after Close succeeded, want connection refused")
		}
	})
}

func TestMalformedFrames(t *testing.T) {
	cases := []struct {
		name    string
		bytes   []byte
		halfEnd bool // close the client's write side after sending
		logs    string
	}{
		{"protocol id 1", []byte{0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1}, false, "protocol id is not 0: got 1"},
		{"length 1", []byte{0, 1, 0, 0, 0, 1, 1}, false, "MBAP length outside 2..254: got 1"},
		{"length 0", []byte{0, 1, 0, 0, 0, 0, 1}, false, "got 0"},
		{"length 255", []byte{0, 1, 0, 0, 0, 255, 1}, false, "MBAP length outside 2..254: got 255"},
		{"header cut short", []byte{0, 1, 0, 0}, true, "truncated frame: stream ended after 4 of 7 bytes"},
		{"body cut short", []byte{0, 1, 0, 0, 0, 6, 1, 3, 0}, true, "truncated frame: stream ended after 9 of 12 bytes"},
		{"body never completed", []byte{0, 1, 0, 0, 0, 6, 1, 3, 0}, false, "truncated frame: only 9 of 12 bytes arrived within the frame timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			s := newServer(t, Config{Logger: logs.logger(), FrameTimeout: 50 * time.Millisecond})
			addUnit(t, s, 1, sizes100)
			c := dialRaw(t, s)
			// A good request first: it is answered before the
			// connection is closed for the bad one.
			c.send(adu(9, 1, req(3, 0, 1)...), tc.bytes)
			if tc.halfEnd {
				c.nc.(*net.TCPConn).CloseWrite()
			}
			c.expect(adu(9, 1, 3, 2, 0, 0))
			c.expectClosed()
			eventually(t, "the bad frame to be counted", func() bool { return s.Stats().BadFrames == 1 })
			out := logs.String()
			if !strings.Contains(out, tc.logs) || !strings.Contains(out, "remote="+c.nc.LocalAddr().String()) {
				t.Errorf("log does not name the problem %q and the remote address %s:\n%s", tc.logs, c.nc.LocalAddr(), out)
			}
		})
	}
}

func TestAddUnitErrors(t *testing.T) {
	s := newServer(t, Config{})
	addUnit(t, s, 1, sizes100)
	cases := []struct {
		name  string
		id    uint8
		sizes Sizes
		want  error
	}{
		{"duplicate", 1, sizes100, ErrUnitExists},
		{"reserved 248", 248, sizes100, ErrUnitID},
		{"reserved 254", 254, sizes100, ErrUnitID},
		{"negative size", 2, Sizes{Coils: -1}, ErrSize},
		{"size 65537", 2, Sizes{InputRegisters: 65537}, ErrSize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.AddUnit(tc.id, tc.sizes); !errors.Is(err, tc.want) {
				t.Errorf("AddUnit(%d, %+v) = %v, want %v", tc.id, tc.sizes, err, tc.want)
			}
		})
	}
	t.Run("full 65536", func(t *testing.T) {
		u := addUnit(t, s, 2, Sizes{HoldingRegisters: 65536})
		if err := u.SetRegisters(devices.HoldingRegisters, 65535, []uint16{7}); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, s)
		c.send(adu(1, 2, req(3, 65535, 1)...))
		c.expect(adu(1, 2, 3, 2, 0, 7))
	})
}

func TestUnitAccessors(t *testing.T) {
	s := newServer(t, Config{})
	u := addUnit(t, s, 5, Sizes{Coils: 10, DiscreteInputs: 10, HoldingRegisters: 10, InputRegisters: 10})
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"registers in a bit table", func() error { return u.SetRegisters(devices.Coils, 0, []uint16{1}) }, ErrTable},
		{"bits in a register table", func() error { return u.SetBits(devices.InputRegisters, 0, []bool{true}) }, ErrTable},
		{"unknown table", func() error { _, err := u.Registers(0, 0, 1); return err }, ErrTable},
		{"registers past the end", func() error { return u.SetRegisters(devices.HoldingRegisters, 9, []uint16{1, 2}) }, ErrAddressRange},
		{"read bits past the end", func() error { _, err := u.Bits(devices.DiscreteInputs, 5, 6); return err }, ErrAddressRange},
		{"read registers at the end", func() error { _, err := u.Registers(devices.InputRegisters, 10, 0); return err }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("error names unit, table and addresses", func(t *testing.T) {
		err := u.SetRegisters(devices.HoldingRegisters, 9, []uint16{1, 2})
		want := "unit 5: holding_register 9..10: simulator: address out of range (the table holds 10 addresses"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want it to contain %q", err, want)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		if err := u.SetBits(devices.DiscreteInputs, 8, []bool{true, true}); err != nil {
			t.Fatal(err)
		}
		if b, err := u.Bits(devices.DiscreteInputs, 7, 3); err != nil || fmt.Sprint(b) != "[false true true]" {
			t.Errorf("Bits = %v, %v; want [false true true]", b, err)
		}
		if got := u.Sizes(); got != (Sizes{10, 10, 10, 10}) {
			t.Errorf("Sizes() = %+v", got)
		}
		if u.ID() != 5 || s.Unit(5) != u || s.Unit(6) != nil {
			t.Error("ID or Unit lookup wrong")
		}
	})
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"policy", Config{MissingUnit: 9}, "MissingUnit 9"},
		{"frame timeout", Config{FrameTimeout: -time.Second}, "FrameTimeout -1s"},
		{"tick", Config{TickPeriod: -time.Second}, "TickPeriod -1s"},
		{"listen", Config{Listen: "127.0.0.1:99999"}, "listen on 127.0.0.1:99999"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name %q", err, tc.want)
			}
		})
	}
}

// TestOnRequest: the hook sees every well-framed request, with the number
// of its connection in accept order and a receive time that does not go
// back within a connection; a malformed frame is not a request.
func TestOnRequest(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []Request
	)
	s := newServer(t, Config{FrameTimeout: 50 * time.Millisecond, OnRequest: func(r Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
	}})
	addUnit(t, s, 1, sizes100)
	addUnit(t, s, 2, sizes100)
	first := dialRaw(t, s)
	first.send(adu(1, 1, req(3, 0, 1)...), adu(2, 2, req(1, 0, 8)...))
	first.expect(adu(1, 1, 3, 2, 0, 0))
	first.expect(adu(2, 2, 1, 1, 0))
	second := dialRaw(t, s)
	second.send(adu(3, 2, req(4, 0, 1)...), []byte{0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1})
	second.expect(adu(3, 2, 4, 2, 0, 0))
	second.expectClosed()

	mu.Lock()
	defer mu.Unlock()
	want := []Request{{Conn: 1, Unit: 1, Function: 3}, {Conn: 1, Unit: 2, Function: 1}, {Conn: 2, Unit: 2, Function: 4}}
	if len(seen) != len(want) {
		t.Fatalf("OnRequest saw %+v, want %+v", seen, want)
	}
	for i, r := range seen {
		if r.Conn != want[i].Conn || r.Unit != want[i].Unit || r.Function != want[i].Function || r.Received.IsZero() {
			t.Errorf("request %d: %+v, want %+v with a receive time", i, r, want[i])
		}
	}
	if seen[1].Received.Before(seen[0].Received) {
		t.Errorf("receive times go back on connection 1: %v then %v", seen[0].Received, seen[1].Received)
	}
	if st := s.Stats(); st.Connections != 2 {
		t.Errorf("Stats().Connections = %d, want 2", st.Connections)
	}
}
