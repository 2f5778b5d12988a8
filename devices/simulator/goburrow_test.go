package simulator

import (
	"bytes"
	"errors"
	"github.com/factorywire/factorywire/devices"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

// These tests reproduce, with the faults a poller must survive, the
// goburrow/modbus v0.1.0 defects listed in DESIGN.md. They pin goburrow's
// behaviour: if an upgrade fixes a defect, the test says so.

func TestGoburrowDesyncsAfterLateReply(t *testing.T) {
	s, u := faultServer(t, Config{})
	// The reply to the first read comes after the client gave up.
	if err := u.SetFaults(Fault{Kind: FaultDelay, Delay: 500 * time.Millisecond, Times: 1}); err != nil {
		t.Fatal(err)
	}
	c, h := newClient(t, s, 1)
	h.Timeout = 50 * time.Millisecond
	_, err := c.ReadHoldingRegisters(0, 1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("first read: %v, want a timeout", err)
	}
	// goburrow keeps the connection, so the next read gets the late
	// reply to the first one (transaction 1) instead of its own.
	h.Timeout = ioTimeout
	_, err = c.ReadHoldingRegisters(1, 1)
	if err == nil || !strings.Contains(err.Error(), "response transaction id '1' does not match request '2'") {
		t.Fatalf("second read: %v, want goburrow's transaction id mismatch (1 vs 2)", err)
	}
	// And it stays one reply behind: the third read gets the second's reply.
	_, err = c.ReadHoldingRegisters(2, 1)
	if err == nil || !strings.Contains(err.Error(), "response transaction id '2' does not match request '3'") {
		t.Fatalf("third read: %v, want goburrow's transaction id mismatch (2 vs 3)", err)
	}
}

func TestGoburrowAcceptsShortReply(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultShortReply}); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, s, 1)
	got, err := c.ReadHoldingRegisters(0, 3)
	if err != nil {
		t.Fatalf("goburrow rejected the short reply (%v): the defect is fixed, update DESIGN.md", err)
	}
	if want := []byte{0, 0x0A, 0, 0x0B}; !bytes.Equal(got, want) {
		t.Errorf("got % x, want the two registers of the short reply % x", got, want)
	}
}

func TestGoburrowWrongTransactionID(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultWrongTransactionID, Times: 1}); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, s, 1)
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil || !strings.Contains(err.Error(), "response transaction id '32769' does not match request '1'") {
		t.Fatalf("read: %v, want a transaction id mismatch", err)
	}
	if got, err := c.ReadHoldingRegisters(0, 1); err != nil || !bytes.Equal(got, []byte{0, 0x0A}) {
		t.Fatalf("read after the fault: % x, %v; want 00 0a", got, err)
	}
}

func TestGoburrowDrop(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultDrop, Times: 1}); err != nil {
		t.Fatal(err)
	}
	c, h := newClient(t, s, 1)
	if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
		t.Fatal("read on a dropped connection succeeded")
	}
	// goburrow does not reconnect by itself: the caller must Close.
	h.Close()
	if got, err := c.ReadHoldingRegisters(0, 1); err != nil || !bytes.Equal(got, []byte{0, 0x0A}) {
		t.Fatalf("read after reconnecting: % x, %v; want 00 0a", got, err)
	}
}

func TestGoburrowBusy(t *testing.T) {
	s, u := faultServer(t, Config{})
	if err := u.SetFaults(Fault{Kind: FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 2}); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, s, 1)
	for i := range 2 {
		_, err := c.ReadHoldingRegisters(0, 1)
		var me *modbus.ModbusError
		if !errors.As(err, &me) || me.ExceptionCode != modbus.ExceptionCodeServerDeviceBusy {
			t.Fatalf("read %d: %v, want exception 6", i, err)
		}
	}
	if got, err := c.ReadHoldingRegisters(0, 1); err != nil || !bytes.Equal(got, []byte{0, 0x0A}) {
		t.Fatalf("third read: % x, %v; want 00 0a", got, err)
	}
}
