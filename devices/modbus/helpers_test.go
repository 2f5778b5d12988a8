package modbus

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// testTimeout bounds every request of a test that expects an answer: far
// above any honest round trip on a loaded machine.
const testTimeout = 5 * time.Second

// testLogger logs to the test's output with -v, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// newSim starts a simulator stopped at the end of the test.
func newSim(t testing.TB, cfg simulator.Config) *simulator.Server {
	t.Helper()
	s, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// regValue is the content of holding register addr of unit u in the
// tests: different for every unit and address.
func regValue(u uint8, addr int) uint16 { return uint16(int(u)*1000 + addr) }

// addUnit adds unit u with 200 holding registers holding regValue, 200
// input registers holding regValue+500, and 64 coils, every third set.
func addUnit(t testing.TB, s *simulator.Server, u uint8) *simulator.Unit {
	t.Helper()
	unit, err := s.AddUnit(u, simulator.Sizes{HoldingRegisters: 200, InputRegisters: 200, Coils: 64})
	if err != nil {
		t.Fatal(err)
	}
	hr, ir := make([]uint16, 200), make([]uint16, 200)
	for i := range hr {
		hr[i], ir[i] = regValue(u, i), regValue(u, i)+500
	}
	bits := make([]bool, 64)
	for i := range bits {
		bits[i] = i%3 == 0
	}
	if err := unit.SetRegisters(devices.HoldingRegisters, 0, hr); err != nil {
		t.Fatal(err)
	}
	if err := unit.SetRegisters(devices.InputRegisters, 0, ir); err != nil {
		t.Fatal(err)
	}
	if err := unit.SetBits(devices.Coils, 0, bits); err != nil {
		t.Fatal(err)
	}
	return unit
}

// wantRegs is the reply data of a read of n holding registers of unit u
// from addr.
func wantRegs(u uint8, addr, n int) []byte {
	b := make([]byte, 2*n)
	for i := range n {
		binary.BigEndian.PutUint16(b[2*i:], regValue(u, addr+i))
	}
	return b
}

// newConn opens a Conn to addr, closed at the end of the test.
func newConn(t testing.TB, cfg ConnConfig, opts ...Option) *Conn {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	c, err := NewConn(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bareClient is goburrow/modbus v0.1.0 used directly, as a poller without
// this package would.
func bareClient(t testing.TB, addr string, unit uint8) (gmodbus.Client, *gmodbus.TCPClientHandler) {
	t.Helper()
	h := gmodbus.NewTCPClientHandler(addr)
	h.Timeout = testTimeout
	h.SlaveId = unit
	t.Cleanup(func() { h.Close() })
	return gmodbus.NewClient(h), h
}

// readCtx is a context bounded by a generous deadline, so that a broken
// test fails instead of hanging.
func readCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 10ms until it holds or the generous deadline
// passes; it never asserts how fast something happens.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
