package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

const classesDir = "../../configs/devices"

// simulate serves a press as unit 1 of a simulator whose values are fixed
// (a stopped clock), and returns the server and the class.
func simulate(t *testing.T) (*simulator.Server, *devices.Class) {
	t.Helper()
	class, err := devices.Load(filepath.Join(classesDir, "press.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s, err := simulator.New(simulator.Config{Clock: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.AddDevice(1, simulator.Device{Class: class, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return s, class
}

// writeConfig writes a gateway config with one connection to addr and
// the device press-01, unit 1, on it.
func writeConfig(t *testing.T, addr string) string {
	t.Helper()
	abs, err := filepath.Abs(classesDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := fmt.Sprintf(`factory: plant-a
data_dir: %s
classes_dir: %s
connections:
  - {name: line-1, transport: tcp, address: "%s", timeout: 300ms}
devices:
  - {id: press-01, class: press, connection: line-1, unit: 1, interval: 1s}
`, filepath.Join(dir, "data"), abs, addr)
	p := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProbePrintsEveryField: a probe of the simulator, by flags and by
// config, prints every field of the class with the value the simulator
// serves and its unit, and each read's registers in hex.
func TestProbePrintsEveryField(t *testing.T) {
	s, class := simulate(t)
	addr := s.Addr().String()
	unit := s.Unit(1)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flags", []string{"probe", "--address", addr, "--unit", "1", "--class", "press", "--classes-dir", classesDir}},
		{"connection flag", []string{"probe", "--connection", "tcp://" + addr, "--unit", "1", "--class", "press", "--classes-dir", classesDir}},
		{"config", []string{"probe", "--config", writeConfig(t, addr), "--device", "press-01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(tc.args, &out); err != nil {
				t.Fatalf("probe: %v\n%s", err, out.String())
			}
			text := out.String()
			lines := strings.Split(text, "\n")
			for _, f := range class.Fields {
				want, err := simulator.Device{Class: class, Seed: 7}.Value(f.Name, s.Tick())
				if err != nil {
					t.Fatal(err)
				}
				line := findLine(lines, "  "+f.Name+" ")
				fields := strings.Fields(line)
				if len(fields) < 2 || fields[1] != want.String() {
					t.Errorf("field %s: line %q, want value %s", f.Name, line, want)
				}
				if f.Unit != "" && (len(fields) < 3 || fields[2] != f.Unit) {
					t.Errorf("field %s: line %q, want unit %s", f.Name, line, f.Unit)
				}
			}
			for _, r := range class.Plan.Reads {
				if r.Table.Bits() {
					continue
				}
				regs, err := unit.Registers(r.Table, r.Address, r.Quantity)
				if err != nil {
					t.Fatal(err)
				}
				var hex []string
				for _, v := range regs {
					hex = append(hex, fmt.Sprintf("0x%04x", v))
				}
				want := fmt.Sprintf("%s %d-%d (4%04d-4%04d), %d registers: %s", r.Table, r.Address, int(r.Address)+int(r.Quantity)-1,
					int(r.Address)+1, int(r.Address)+int(r.Quantity), r.Quantity, strings.Join(hex, " "))
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			if !strings.Contains(text, "coil 0-3 (00001-00004), 4 bits: ") {
				t.Errorf("output lacks the coil read:\n%s", text)
			}
		})
	}
}

func findLine(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestProbeJSON: --format json has every field with its unit and the
// registers of each read.
func TestProbeJSON(t *testing.T) {
	s, class := simulate(t)
	var out bytes.Buffer
	if err := run([]string{"probe", "--address", s.Addr().String(), "--class", "press", "--classes-dir", classesDir, "--format", "json"}, &out); err != nil {
		t.Fatalf("probe: %v\n%s", err, out.String())
	}
	var got struct {
		OK    bool `json:"ok"`
		Reads []struct {
			Table     string   `json:"table"`
			Registers []string `json:"registers"`
			Bits      []bool   `json:"bits"`
		} `json:"reads"`
		Fields []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
			Unit  string          `json:"unit"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if !got.OK || len(got.Fields) != len(class.Fields) || len(got.Reads) != len(class.Plan.Reads) {
		t.Fatalf("ok %v, %d fields, %d reads, want %d and %d:\n%s", got.OK, len(got.Fields), len(got.Reads), len(class.Fields), len(class.Plan.Reads), out.String())
	}
	for i, f := range got.Fields {
		want, _ := simulator.Device{Class: class, Seed: 7}.Value(f.Name, s.Tick())
		if f.Name != class.Fields[i].Name || f.Unit != class.Fields[i].Unit || string(f.Value) != want.String() {
			t.Errorf("field %d: %s = %s %q, want %s = %s %q", i, f.Name, f.Value, f.Unit, class.Fields[i].Name, want, class.Fields[i].Unit)
		}
	}
	for i, r := range got.Reads {
		plan := class.Plan.Reads[i]
		if plan.Table.Bits() && len(r.Bits) != int(plan.Quantity) || !plan.Table.Bits() && len(r.Registers) != int(plan.Quantity) {
			t.Errorf("read %d (%s): %d registers, %d bits, want %d", i, r.Table, len(r.Registers), len(r.Bits), plan.Quantity)
		}
	}
}

// TestProbeFailures: a read the device refuses, and a connection that
// cannot be made, fail (exit status 1, not a usage error) with an error
// naming the exception or the address, the unit and the register range.
func TestProbeFailures(t *testing.T) {
	s, _ := simulate(t)
	if err := s.Unit(1).SetFaults(simulator.Fault{Kind: simulator.FaultException, Function: 3, Address: 10, Count: 1,
		Exception: devices.ExceptionIllegalDataAddress}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name   string
		args   []string
		want   []string
		output []string
	}{
		{"exception", []string{"probe", "--config", writeConfig(t, s.Addr().String()), "--device", "press-01"},
			[]string{"read holding_register 10-18 (9 registers) of unit 1 on connection line-1 (tcp " + s.Addr().String() + ")",
				"exception 2 (illegal data address)"},
			[]string{"holding_register 10-18 (40011-40019), 9 registers: FAILED: ", "  running  ", "(read failed)", "0x"}},
		{"refused", []string{"probe", "--address", closed, "--timeout", "300ms", "--class", "press", "--classes-dir", classesDir},
			[]string{"read coil 0-3 (4 bits) of unit 1 on tcp " + closed, "connect failed", "connection refused"},
			[]string{"not sent: the connection failed at an earlier read", "(not read)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out)
			var ue usageError
			if err == nil || errors.As(err, &ue) {
				t.Fatalf("probe: %v, want a failure (exit 1):\n%s", err, out.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			for _, want := range tc.output {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestProbeUsageErrors: mistakes in the flags exit with status 2 and name
// the flag.
func TestProbeUsageErrors(t *testing.T) {
	config := writeConfig(t, "127.0.0.1:1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"config without device", []string{"probe", "--config", config}, "--device ID is required with --config"},
		{"unknown device", []string{"probe", "--config", config, "--device", "press-99"}, `--device: ` + config + `: device "press-99": no device has that id (have press-01)`},
		{"device flags with config", []string{"probe", "--config", config, "--device", "press-01", "--unit", "2"}, "--unit: not with --config"},
		{"device without config", []string{"probe", "--device", "press-01"}, "--device: only with --config"},
		{"no address", []string{"probe", "--class", "press"}, "--address is required"},
		{"no class", []string{"probe", "--address", "127.0.0.1:1"}, "--class is required"},
		{"unknown class", []string{"probe", "--address", "127.0.0.1:1", "--class", "lathe", "--classes-dir", classesDir}, `--class "lathe": no register map in ` + classesDir + " has that class (have power-meter, press, temperature-controller)"},
		{"bad address", []string{"probe", "--address", "plc-7", "--class", "press", "--classes-dir", classesDir}, `--address: `},
		{"serial flag on tcp", []string{"probe", "--address", "127.0.0.1:1", "--baud-rate", "9600", "--class", "press", "--classes-dir", classesDir}, "--baud-rate: "},
		{"serial flag on rtu over tcp", []string{"probe", "--transport", "rtu_over_tcp", "--address", "127.0.0.1:1", "--parity", "N", "--class", "press", "--classes-dir", classesDir},
			"--parity: modbus: invalid config: connection \"127.0.0.1:1\": parity is set but transport is rtu_over_tcp"},
		{"unknown transport", []string{"probe", "--transport", "udp", "--address", "127.0.0.1:1", "--class", "press", "--classes-dir", classesDir}, `--transport: `},
		{"ascii over tcp without port", []string{"probe", "--transport", "ascii_over_tcp", "--address", "10.0.0.9", "--class", "press", "--classes-dir", classesDir}, `--address: `},
		{"unit out of range", []string{"probe", "--address", "127.0.0.1:1", "--unit", "300", "--class", "press"}, "--unit 300: want 0 to 247"},
		{"format", []string{"probe", "--format", "xml"}, `--format "xml"`},
		{"connection and address", []string{"probe", "--connection", "tcp://127.0.0.1:1", "--address", "127.0.0.1:2", "--class", "press"}, "--connection is --transport and --address in one"},
		{"connection without scheme", []string{"probe", "--connection", "127.0.0.1:1", "--class", "press"}, `--connection "127.0.0.1:1": want TRANSPORT://ADDRESS`},
		{"connection unknown transport", []string{"probe", "--connection", "udp://127.0.0.1:1", "--class", "press", "--classes-dir", classesDir}, `--transport: `},
		{"connection with config", []string{"probe", "--config", config, "--device", "press-01", "--connection", "tcp://127.0.0.1:1"}, "--connection: not with --config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestProbeEnvironmentTwins: the probe's flags read their environment
// twins.
func TestProbeEnvironmentTwins(t *testing.T) {
	s, _ := simulate(t)
	t.Setenv("FACTORYWIRE_GATEWAY_ADDRESS", s.Addr().String())
	t.Setenv("FACTORYWIRE_GATEWAY_CLASS", "press")
	t.Setenv("FACTORYWIRE_GATEWAY_CLASSES_DIR", classesDir)
	var out bytes.Buffer
	if err := run([]string{"probe"}, &out); err != nil {
		t.Fatalf("probe: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "unit 1 on tcp "+s.Addr().String()) {
		t.Fatalf("environment not applied:\n%s", out.String())
	}
}
