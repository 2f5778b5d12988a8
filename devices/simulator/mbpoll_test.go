package simulator

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/peers"
)

// TestMbpoll checks the simulator against a third-party client: mbpoll,
// which is libmodbus underneath.
func TestMbpoll(t *testing.T) {
	mbpoll := peers.Program(t, "mbpoll", "install it with: apt-get install mbpoll")
	s := newServer(t, Config{})
	u := addUnit(t, s, 17, sizes100)
	u.SetRegisters(devices.HoldingRegisters, 10, []uint16{1234, 65535, 7})
	u.SetRegisters(devices.InputRegisters, 0, []uint16{0x4049, 0x0FDB}) // float32 3.1415927, big-endian words
	u.SetBits(devices.DiscreteInputs, 5, []bool{true, false, true})
	_, port, err := net.SplitHostPort(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// run runs mbpoll with the options, then the host, then the values
	// to write (after "--", so negative numbers are values).
	run := func(t *testing.T, args []string, values ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		base := []string{"-m", "tcp", "-p", port, "-a", "17", "-0", "-1", "-o", "5"}
		argv := append(append(base, args...), "127.0.0.1")
		if len(values) > 0 {
			argv = append(append(argv, "--"), values...)
		}
		out, err := exec.CommandContext(ctx, mbpoll, argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"holding registers", []string{"-t", "4", "-r", "10", "-c", "3"}, []string{"[10]: \t1234", "[11]: \t65535", "[12]: \t7"}},
		{"input float", []string{"-t", "3:float", "-B", "-r", "0", "-c", "1"}, []string{"[0]: \t3.14159"}},
		{"discrete inputs", []string{"-t", "1", "-r", "5", "-c", "3"}, []string{"[5]: \t1", "[6]: \t0", "[7]: \t1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, tc.args)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("mbpoll output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("write holding registers", func(t *testing.T) {
		run(t, []string{"-t", "4:int", "-B", "-r", "40"}, "-2", "300")
		if r, _ := u.Registers(devices.HoldingRegisters, 40, 4); r[0] != 0xFFFF || r[1] != 0xFFFE || r[2] != 0 || r[3] != 300 {
			t.Errorf("registers 40..43 = %v, want the int32s -2 and 300 big-endian: [65535 65534 0 300]", r)
		}
	})
	t.Run("write coil", func(t *testing.T) {
		run(t, []string{"-t", "0", "-r", "3"}, "1")
		if b, _ := u.Bits(devices.Coils, 3, 1); !b[0] {
			t.Error("coil 3 is off after mbpoll wrote 1")
		}
	})
}

// TestMbpollRTUOverTCP checks the simulator's RTU over TCP against a
// third-party RTU master: mbpoll speaks RTU only on a serial device, so
// socat bridges a pseudo-terminal to the simulator's TCP port, as a serial
// device server in raw mode does in reverse. (mbpoll has no ASCII mode.)
func TestMbpollRTUOverTCP(t *testing.T) {
	mbpoll := peers.Program(t, "mbpoll", "install it with: apt-get install mbpoll")
	socat := peers.Program(t, "socat", "install it with: apt-get install socat")
	s := newServer(t, Config{Framing: FramingRTU})
	u := addUnit(t, s, 9, sizes100)
	u.SetRegisters(devices.HoldingRegisters, 20, []uint16{4321, 8})
	tty := filepath.Join(t.TempDir(), "tty")
	ctx, cancel := context.WithCancel(context.Background())
	bridge := exec.CommandContext(ctx, socat, "pty,raw,echo=0,link="+tty, "tcp:"+s.Addr().String())
	if err := bridge.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); bridge.Wait() })
	eventually(t, "socat's pty link", func() bool { _, err := os.Stat(tty); return err == nil })

	ctx2, cancel2 := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel2()
	out, err := exec.CommandContext(ctx2, mbpoll, "-m", "rtu", "-b", "19200", "-P", "none", "-a", "9", "-0", "-1", "-o", "5",
		"-t", "4", "-r", "20", "-c", "2", tty).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[20]: \t4321") || !strings.Contains(string(out), "[21]: \t8") {
		t.Fatalf("mbpoll over rtu over tcp: %v\n%s", err, out)
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel3()
	out, err = exec.CommandContext(ctx3, mbpoll, "-m", "rtu", "-b", "19200", "-P", "none", "-a", "9", "-0", "-1", "-o", "5",
		"-t", "4", "-r", "99", "-c", "2", tty).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Illegal data address") {
		t.Fatalf("mbpoll over rtu over tcp, holding 99+2: %v, want Illegal data address\n%s", err, out)
	}
}
