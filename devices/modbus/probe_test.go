package modbus

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// TestProbe: Probe returns each read's reply as the device sent it and the
// sample a poll makes of them; a refused read is a *ReadError naming the
// connection, unit and range, and the reads after it still run.
func TestProbe(t *testing.T) {
	s := newSim(t, simulator.Config{})
	unit := addUnit(t, s, 4)
	class, err := devices.Parse("probe.yaml", []byte(`class: probe
max_gap: 0
fields:
  - {name: a, table: holding_register, address: 5, type: uint16, unit: V}
  - {name: b, table: holding_register, address: 20, type: uint16}
  - {name: c, table: coil, address: 3, type: bool}
`))
	if err != nil {
		t.Fatal(err)
	}
	conn := newConn(t, ConnConfig{Name: "line", Address: s.Addr().String()}.WithDefaults())
	dev := Device{ID: "dev-4", Factory: "plant", Class: class, Conn: conn, Unit: 4}

	res, err := Probe(readCtx(t), dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reads) != 3 || !bytes.Equal(res.Reads[1].Data, wantRegs(4, 5, 1)) || !bytes.Equal(res.Reads[2].Data, wantRegs(4, 20, 1)) ||
		len(res.Reads[0].Bits()) != 1 || !res.Reads[0].Bits()[0] {
		t.Fatalf("reads %+v", res.Reads)
	}
	if got := res.Sample.Fields["a"]; got.Uint64() != uint64(regValue(4, 5)) {
		t.Fatalf("field a = %v, want %d", got, regValue(4, 5))
	}

	if err := unit.SetFaults(simulator.Fault{Kind: simulator.FaultException, Function: 3, Address: 5, Count: 1,
		Exception: devices.ExceptionIllegalDataAddress}); err != nil {
		t.Fatal(err)
	}
	res, err = Probe(readCtx(t), dev)
	var re *ReadError
	var ee *ExceptionError
	if !errors.As(err, &re) || !errors.As(err, &ee) || ee.Code != devices.ExceptionIllegalDataAddress {
		t.Fatalf("Probe = %v, want a *ReadError of exception 2", err)
	}
	want := "read holding_register 5 (1 register) of unit 4 on connection line (tcp " + s.Addr().String() + "): "
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want it to start with %q", err, want)
	}
	if res.Reads[1].Err == nil || res.Reads[2].Err != nil || res.Sample.Errors["a"] == "" || res.Sample.Fields["b"].Uint64() != uint64(regValue(4, 20)) {
		t.Fatalf("after the exception: reads %+v, sample %+v", res.Reads, res.Sample)
	}
}
