package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/internal/peers"
)

// A day per tick: the generated values hold still for the length of a test
// (one that crosses midnight UTC accepts the values of either tick).
const testTick = 24 * time.Hour

// startSimulate runs `gateway simulate args...` as a child (this test
// binary, see TestMain) and returns what it printed up to and including
// the unit table, and the address it serves (the tcp address, else the
// serial device). The test stops it with SIGTERM and checks that it exits
// cleanly.
func startSimulate(t *testing.T, args ...string) (addr, printed string) {
	t.Helper()
	cmd := command(nil, append([]string{"simulate", "--classes-dir", classesDir, "--tick-period", testTick.String()}, args...)...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("simulate after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("simulate did not stop within 10s of SIGTERM:\n%s", stderr.String())
		}
	})
	var out strings.Builder
	deadline := time.After(20 * time.Second)
	inTable := false
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("simulate exited before printing its unit table:\n%s%s", out.String(), stderr.String())
			}
			out.WriteString(line + "\n")
			if rest, ok := strings.CutPrefix(line, "simulator: modbus "); ok {
				transport, a, _ := strings.Cut(rest, " on ")
				if strings.HasPrefix(transport, "tcp") || strings.HasSuffix(transport, "_over_tcp") || addr == "" {
					addr = a
				}
			}
			if strings.HasPrefix(line, "UNIT") {
				inTable = true
			}
			if inTable && line != "" && !strings.HasPrefix(line, "UNIT") && !strings.HasPrefix(line, "fault") {
				// the first unit row: read the rest of the rows without waiting
				for more := true; more; {
					select {
					case l, ok := <-lines:
						more = ok
						out.WriteString(l + "\n")
					case <-time.After(200 * time.Millisecond):
						more = false
					}
				}
				return addr, out.String()
			}
		case <-deadline:
			t.Fatalf("simulate printed no unit table within 20s:\n%s%s", out.String(), stderr.String())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// probeJSONOf runs gateway probe --format json with args and decodes it.
func probeJSONOf(t *testing.T, args ...string) (probeJSON, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(append([]string{"probe", "--classes-dir", classesDir, "--format", "json"}, args...), &out)
	var got probeJSON
	if jerr := json.Unmarshal(out.Bytes(), &got); jerr != nil {
		t.Fatalf("probe %v: %v (%v):\n%s", args, jerr, err, out.String())
	}
	return got, err
}

// wantValues checks the probed fields against what the simulator
// generates for the class and seed at the current tick (or the one before,
// if the tick changed during the probe).
func wantValues(t *testing.T, got probeJSON, className string, seed uint64) {
	t.Helper()
	classes, err := devices.LoadDir(classesDir)
	if err != nil {
		t.Fatal(err)
	}
	dev := simulator.Device{Class: classes[className], Seed: seed}
	tick := time.Now().UnixNano() / int64(testTick)
	if len(got.Fields) != len(dev.Class.Fields) {
		t.Fatalf("%d fields, want the %d of %s", len(got.Fields), len(dev.Class.Fields), className)
	}
	for _, f := range got.Fields {
		now, _ := dev.Value(f.Name, tick)
		before, _ := dev.Value(f.Name, tick-1)
		if f.Value == nil || (f.Value.String() != now.String() && f.Value.String() != before.String()) {
			t.Errorf("%s = %v, want %s", f.Name, f.Value, now)
		}
	}
}

// mbpoll runs mbpoll with args and returns its output and error.
func mbpoll(t *testing.T, args ...string) (string, error) {
	t.Helper()
	prog := peers.Program(t, "mbpoll", "install it with: apt-get install mbpoll")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, append([]string{"-1", "-0", "-o", "2"}, args...)...).CombinedOutput()
	return string(out), err
}

// rawRegister is the register value a uint16 field of a simulated device
// holds: its engineering value over its scale.
func rawRegister(t *testing.T, v *devices.Value, scale float64) string {
	t.Helper()
	f, err := strconv.ParseFloat(v.String(), 64)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(int(math.Round(f / scale)))
}

// TestSimulateTCP: gateway simulate serves the devices it prints on the
// address it prints, gateway probe and mbpoll read the generated values,
// and an injected exception reaches both.
func TestSimulateTCP(t *testing.T) {
	addr, printed := startSimulate(t, "--listen", "127.0.0.1:0", "--device", "1=press", "--device", "2=power-meter",
		"--fault", "unit=1,kind=exception,exception=illegal-data-address,function=3,address=10,count=1")
	for _, want := range []string{"UNIT  CLASS", "\n1     press", "\n2     power-meter", "fault on unit 1: unit=1,kind=exception"} {
		if !strings.Contains(printed, want) {
			t.Errorf("simulate printed no %q:\n%s", want, printed)
		}
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("simulate printed address %q, want the port it listens on:\n%s", addr, printed)
	}

	t.Run("probe", func(t *testing.T) {
		got, err := probeJSONOf(t, "--address", addr, "--unit", "2", "--class", "power-meter")
		if err != nil || !got.OK {
			t.Fatalf("probe unit 2: %v, %+v", err, got)
		}
		wantValues(t, got, "power-meter", 2)
	})
	t.Run("probe sees the exception", func(t *testing.T) {
		got, err := probeJSONOf(t, "--address", addr, "--unit", "1", "--class", "press")
		if err == nil || got.OK || !strings.Contains(err.Error(), "exception 2 (illegal data address)") || !strings.Contains(err.Error(), "holding_register 10-") {
			t.Fatalf("probe unit 1: %v, want exception 2 on the read of holding registers from 10", err)
		}
		for _, f := range got.Fields { // the other reads are served
			if f.Name == "pressure_setpoint" && f.Value == nil {
				t.Errorf("pressure_setpoint has no value: the fault reached registers outside 10")
			}
		}
	})
	t.Run("mbpoll", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(addr)
		got, err := probeJSONOf(t, "--address", addr, "--unit", "1", "--class", "press")
		var setpoint *devices.Value
		for _, f := range got.Fields {
			if f.Name == "pressure_setpoint" {
				setpoint = f.Value
			}
		}
		if setpoint == nil {
			t.Fatalf("probe read no pressure_setpoint: %v", err)
		}
		out, err := mbpoll(t, "-m", "tcp", "-p", port, "-a", "1", "-t", "4", "-r", "1", "-c", "1", "127.0.0.1")
		if want := "[1]: \t" + rawRegister(t, setpoint, 0.01); err != nil || !strings.Contains(out, want) {
			t.Errorf("mbpoll holding register 1: %v, want %q:\n%s", err, want, out)
		}
		out, err = mbpoll(t, "-m", "tcp", "-p", port, "-a", "1", "-t", "4", "-r", "10", "-c", "1", "127.0.0.1")
		if err == nil || !strings.Contains(out, "Illegal data address") {
			t.Errorf("mbpoll holding register 10: %v, want Illegal data address:\n%s", err, out)
		}
	})
}

// ptyPair returns the two ends of a socat pseudo-terminal pair, stopped at
// the end of the test.
func ptyPair(t *testing.T) (client, device string) {
	t.Helper()
	socat := peers.Program(t, "socat", "install it with: apt-get install socat")
	dir := t.TempDir()
	client, device = filepath.Join(dir, "client"), filepath.Join(dir, "device")
	ctx, cancel := context.WithCancel(context.Background())
	sc := exec.CommandContext(ctx, socat, "pty,raw,echo=0,link="+client, "pty,raw,echo=0,link="+device)
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); sc.Wait() })
	for i := 0; ; i++ {
		_, errA := os.Stat(client)
		_, errB := os.Stat(device)
		if errA == nil && errB == nil {
			break
		}
		if i == 100 {
			t.Fatalf("socat made no pty links within 10s: %v, %v", errA, errB)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return client, device
}

// TestSimulateRTU: gateway simulate serves Modbus RTU on one end of a socat
// pseudo-terminal pair; gateway probe and mbpoll read it on the other.
func TestSimulateRTU(t *testing.T) {
	client, device := ptyPair(t)
	_, printed := startSimulate(t, "--serial", device, "--baud-rate", "115200", "--parity", "N", "--device", "7=press",
		"--fault", "unit=7,kind=exception,exception=server-device-busy,function=1")
	if !strings.Contains(printed, "modbus rtu on "+device) || !strings.Contains(printed, "\n7     press") {
		t.Fatalf("simulate printed:\n%s", printed)
	}
	rtu := []string{"--transport", "rtu", "--address", client, "--baud-rate", "115200", "--parity", "N", "--unit", "7", "--class", "press"}
	got, err := probeJSONOf(t, rtu...)
	if err == nil || !strings.Contains(err.Error(), "exception 6 (server device busy)") || !strings.Contains(err.Error(), "coil 0-3") {
		t.Fatalf("probe over rtu: %v, want exception 6 on the read of coils 0-3", err)
	}
	var setpoint *devices.Value
	for _, f := range got.Fields {
		if f.Name == "pressure_setpoint" {
			setpoint = f.Value
		}
	}
	if setpoint == nil {
		t.Fatalf("probe over rtu read no pressure_setpoint: %+v", got)
	}
	out, err := mbpoll(t, "-m", "rtu", "-b", "115200", "-P", "none", "-a", "7", "-t", "4", "-r", "1", "-c", "1", client)
	if want := "[1]: \t" + rawRegister(t, setpoint, 0.01); err != nil || !strings.Contains(out, want) {
		t.Errorf("mbpoll over rtu, holding register 1: %v, want %q:\n%s", err, want, out)
	}
	out, err = mbpoll(t, "-m", "rtu", "-b", "115200", "-P", "none", "-a", "7", "-t", "0", "-r", "0", "-c", "1", client)
	if err == nil || !strings.Contains(strings.ToLower(out), "busy") {
		t.Errorf("mbpoll over rtu, coil 0: %v, want the busy exception:\n%s", err, out)
	}
}

// TestSimulateTransports: gateway simulate serves RTU and ASCII over TCP
// and ASCII on a serial line as --transport says; gateway probe with the
// same --transport reads the generated values and the injected exception.
func TestSimulateTransports(t *testing.T) {
	for _, transport := range []string{"rtu_over_tcp", "ascii_over_tcp", "ascii"} {
		t.Run(transport, func(t *testing.T) {
			args := []string{"--transport", transport, "--device", "4=power-meter", "--device", "5=press",
				"--fault", "unit=5,kind=exception,exception=illegal-data-address,function=3,address=10,count=1"}
			where := "--listen"
			var client string
			if transport == "ascii" {
				var device string
				client, device = ptyPair(t)
				args = append(args, "--serial", device)
				where = device
			} else {
				args = append(args, "--listen", "127.0.0.1:0")
			}
			addr, printed := startSimulate(t, args...)
			if !strings.Contains(printed, "simulator: modbus "+transport+" on ") || (transport == "ascii" && !strings.Contains(printed, " on "+where)) {
				t.Fatalf("simulate printed:\n%s", printed)
			}
			if client != "" {
				addr = client
			}
			got, err := probeJSONOf(t, "--transport", transport, "--address", addr, "--unit", "4", "--class", "power-meter")
			if err != nil || !got.OK || got.Transport != transport {
				t.Fatalf("probe unit 4: %v, %+v", err, got)
			}
			wantValues(t, got, "power-meter", 4)
			_, err = probeJSONOf(t, "--transport", transport, "--address", addr, "--unit", "5", "--class", "press")
			if err == nil || !strings.Contains(err.Error(), "exception 2 (illegal data address)") || !strings.Contains(err.Error(), "holding_register 10-") {
				t.Fatalf("probe unit 5: %v, want exception 2 on the read of holding registers from 10", err)
			}
		})
	}
}

// TestSimulateUsageErrors: bad flags are usage errors naming the flag.
func TestSimulateUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no devices", nil, "no devices"},
		{"bad device", []string{"--device", "press"}, "want UNIT=CLASS"},
		{"unknown class", []string{"--device", "1=lathe"}, `class "lathe"`},
		{"unit taken", []string{"--devices", "1", "--classes", "press", "--device", "1=press"}, "unit 1 is already a press"},
		{"classes without devices", []string{"--device", "1=press", "--classes", "press"}, "go together"},
		{"bad fault", []string{"--device", "1=press", "--fault", "kind=melt"}, "kind=melt"},
		{"fault on no unit", []string{"--device", "1=press", "--fault", "unit=2,kind=drop"}, "no device is unit 2"},
		{"baud without serial", []string{"--listen", "127.0.0.1:0", "--device", "1=press", "--baud-rate", "9600"}, "--baud-rate: only with --serial"},
		{"unknown transport", []string{"--device", "1=press", "--transport", "udp"}, `--transport "udp": want tcp, rtu_over_tcp, ascii_over_tcp, rtu or ascii`},
		{"serial transport without serial", []string{"--device", "1=press", "--transport", "ascii"}, "--transport ascii: serves a serial line: give --serial DEV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(append([]string{"simulate", "--classes-dir", classesDir}, tc.args...), &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("simulate %q = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
}
