package modbus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/peers"
)

// Third-party Modbus servers read by Conn: modbus-serial 8.0.25 over TCP
// and over RTU on a socat pseudo-terminal pair, jsmodbus 5.0.0, whose
// short reply to an out-of-range read Conn must reject, and pymodbus
// 3.16.1 in every framing. The node scripts and the pinned
// package-lock.json are in testdata/node, the pymodbus server and its
// pinned requirements.txt in testdata/pymodbus.

// nodeDir holds package.json, package-lock.json and the server scripts.
const nodeDir = "testdata/node"

// nodeInstall installs the pinned node packages, from the repository root
// (as .ci/run does).
const nodeInstall = "npm ci --prefix devices/modbus/testdata/node --no-audit --no-fund"

// nodePeer returns the node binary, or skips (fails under
// FACTORYWIRE_REQUIRE_PEERS=1) if node or the pinned package is missing.
func nodePeer(t *testing.T, pkg, version string) string {
	t.Helper()
	node := peers.Program(t, "node", "install Node.js 20 and then the packages with: "+nodeInstall)
	raw, err := os.ReadFile(filepath.Join(nodeDir, "node_modules", pkg, "package.json"))
	if err != nil {
		peers.Missing(t, pkg+" is not installed; install it with: "+nodeInstall)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Version != version {
		peers.Missing(t, fmt.Sprintf("%s %q is installed, %s is pinned; reinstall with: %s", pkg, meta.Version, version, nodeInstall))
	}
	return node
}

// startProcess starts a peer, stopped (killed by its pid) at the end of
// the test. With wantLine it returns the first line the peer prints on
// stdout, waiting for it at most 20s.
func startProcess(t *testing.T, dir string, wantLine bool, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return startCmd(t, cmd, wantLine)
}

// startCmd is startProcess for a prepared command.
func startCmd(t *testing.T, cmd *exec.Cmd, wantLine bool) string {
	t.Helper()
	name, args := cmd.Path, cmd.Args[1:]
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		br := bufio.NewReader(stdout)
		line, err := br.ReadString('\n')
		if err == nil {
			lines <- strings.TrimSpace(line)
		}
		io.Copy(io.Discard, br)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", name, stderr.String())
		}
	})
	if !wantLine {
		return ""
	}
	select {
	case line := <-lines:
		return line
	case <-exited:
		t.Fatalf("%s %s exited before it was ready: %s", name, strings.Join(args, " "), stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s %s: not ready within 20s", name, strings.Join(args, " "))
	}
	return ""
}

// TestPeerModbusSerialTCP reads a modbus-serial 8.0.25 TCP server.
func TestPeerModbusSerialTCP(t *testing.T) {
	node := nodePeer(t, "modbus-serial", "8.0.25")
	// modbus-serial takes port 0 for its default, 502: pick a free one.
	addr := closedAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	if line := startNode(t, node, "modbus-serial-server.js", "tcp", port); line != "listening "+port {
		t.Fatalf("server said %q, want listening %s", line, port)
	}
	c := newConn(t, ConnConfig{Address: addr})
	readPeer(t, c, []uint8{1, 2, 17})
}

// TestPeerModbusSerialRTU reads a modbus-serial 8.0.25 RTU server over a
// socat pseudo-terminal pair, through goburrow's RTU transport.
func TestPeerModbusSerialRTU(t *testing.T) {
	node := nodePeer(t, "modbus-serial", "8.0.25")
	socat := peers.Program(t, "socat", "install it with: apt-get install socat")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	startSocat(t, socat, a, b)
	for _, tc := range []struct {
		baud   int
		parity string // ConnConfig.Parity
		node   string // serialport's name
	}{
		{19200, "E", "even"},
		{9600, "N", "none"},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.baud, tc.parity), func(t *testing.T) {
			if line := startNode(t, node, "modbus-serial-server.js", "rtu", b, fmt.Sprint(tc.baud), tc.node); line != "open" {
				t.Fatalf("server said %q, want open", line)
			}
			stop := 1
			if tc.parity == "N" {
				stop = 2
			}
			c := newConn(t, ConnConfig{Transport: RTU, Address: a, BaudRate: tc.baud, Parity: tc.parity, StopBits: stop, Timeout: 2 * time.Second})
			readPeer(t, c, []uint8{1, 3, 247})
		})
	}
}

// readPeer reads registers, bits and an illegal address from units of a
// peer serving regValue.
func readPeer(t *testing.T, c *Conn, units []uint8) {
	t.Helper()
	for _, u := range units {
		got, err := c.Read(readCtx(t), u, devices.HoldingRegisters, 3, 40)
		if err != nil || !bytes.Equal(got, wantRegs(u, 3, 40)) {
			t.Fatalf("unit %d holding 3+40: % x, %v", u, got, err)
		}
	}
	got, err := c.Read(readCtx(t), 2, devices.InputRegisters, 199, 1)
	if want := []byte{(2199 + 500) >> 8, (2199 + 500) & 0xff}; err != nil || !bytes.Equal(got, want) {
		t.Fatalf("input 199: % x, %v; want % x", got, err, want)
	}
	got, err = c.Read(readCtx(t), 1, devices.Coils, 0, 10)
	// Coils 0, 3, 6, 9 set: bits 0,3,6 of the first byte, bit 1 of the second.
	if want := []byte{0x49, 0x02}; err != nil || !bytes.Equal(got, want) {
		t.Fatalf("coils 0+10: % x, %v; want % x", got, err, want)
	}
	_, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 190, 20)
	var ee *ExceptionError
	if !errors.As(err, &ee) || ee.Code != devices.ExceptionIllegalDataAddress {
		t.Fatalf("holding 190+20: %v, want exception 2", err)
	}
	got, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 125)
	if err != nil || !bytes.Equal(got, wantRegs(1, 0, 125)) {
		t.Fatalf("holding 0+125 after the exception: %v", err)
	}
	if st := c.Stats(); st.Disconnects != 0 || st.Connects != 1 {
		t.Errorf("stats %+v, want one connection throughout", st)
	}
}

// TestPeerJsmodbusShortReply: jsmodbus 5.0.0 answers a read past its
// registers with a short reply; Conn reports it as a *LengthError.
func TestPeerJsmodbusShortReply(t *testing.T) {
	node := nodePeer(t, "jsmodbus", "5.0.0")
	line := startNode(t, node, "jsmodbus-server.js")
	port, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("server said %q, want listening <port>", line)
	}
	c := newConn(t, ConnConfig{Address: "127.0.0.1:" + port})
	if got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 10); err != nil || !bytes.Equal(got, wantRegs(1, 0, 10)) {
		t.Fatalf("holding 0+10: % x, %v", got, err)
	}
	_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 190, 20)
	var le *LengthError
	if !errors.As(err, &le) || le.Count != 20 || le.Got != 20 || le.Want != 40 {
		t.Fatalf("holding 190+20: %v, want a *LengthError of 20 bytes for 40", err)
	}
	if got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 150, 50); err != nil || !bytes.Equal(got, wantRegs(1, 150, 50)) {
		t.Fatalf("holding 150+50 after the short reply: % x, %v", got, err)
	}
}

// startNode runs a script of testdata/node and returns its first line.
func startNode(t *testing.T, node, script string, args ...string) string {
	t.Helper()
	return startProcess(t, nodeDir, true, node, append([]string{script}, args...)...)
}

// startSocat links a and b as the two ends of a pseudo-terminal pair.
func startSocat(t *testing.T, socat, a, b string) {
	t.Helper()
	startProcess(t, "", false, socat, "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	eventually(t, "socat's links", func() bool {
		_, errA := os.Stat(a)
		_, errB := os.Stat(b)
		return errA == nil && errB == nil
	})
}

// pymodbusVersion is the pymodbus testdata/pymodbus/requirements.txt pins.
const pymodbusVersion = "3.16.1"

// TestPeerPymodbus reads a pymodbus 3.16.1 server through every transport:
// Modbus TCP, RTU and ASCII over TCP, RTU and ASCII on a socat
// pseudo-terminal pair. Each reads registers and bits of several units,
// an exception reply (illegal data address) arriving intact, and a full
// 125-register read after it, on one connection throughout.
func TestPeerPymodbus(t *testing.T) {
	py := peers.Pymodbus(t)
	if py.Version != pymodbusVersion {
		peers.Missing(t, fmt.Sprintf("pymodbus %s is installed in %s, %s is pinned; reinstall with: %s", py.Version, py.Path, pymodbusVersion, peers.PythonInstall))
	}
	script, err := filepath.Abs("testdata/pymodbus/server.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		transport Transport
		framer    string // server.py's
	}{
		{TCP, "socket"},
		{RTUOverTCP, "rtu"},
		{ASCIIOverTCP, "ascii"},
		{RTU, "rtu"},
		{ASCII, "ascii"},
	} {
		t.Run(string(tc.transport), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			var cc ConnConfig
			if tc.transport.Serial() {
				socat := peers.Program(t, "socat", "install it with: apt-get install socat")
				dir := t.TempDir()
				a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
				startSocat(t, socat, a, b)
				// 8N2: pyserial cannot set parity or 7 data bits on a
				// Linux pseudo-terminal (tcsetattr: EINVAL); with no
				// parity the serial line specification asks for 2 stop
				// bits.
				cc = ConnConfig{Transport: tc.transport, Address: a, BaudRate: 19200, DataBits: 8, Parity: "N", StopBits: 2}
				cmd := py.Command(ctx, script, tc.framer, "serial", b, fmt.Sprint(cc.BaudRate), cc.Parity, fmt.Sprint(cc.DataBits), fmt.Sprint(cc.StopBits))
				if line := startCmd(t, cmd, true); line != "open" {
					t.Fatalf("server said %q, want open", line)
				}
			} else {
				line := startCmd(t, py.Command(ctx, script, tc.framer, "tcp"), true)
				port, ok := strings.CutPrefix(line, "listening ")
				if !ok {
					t.Fatalf("server said %q, want listening <port>", line)
				}
				cc = ConnConfig{Transport: tc.transport, Address: net.JoinHostPort("127.0.0.1", port)}
			}
			cc.Timeout = 2 * time.Second
			readPeer(t, newConn(t, cc), []uint8{1, 2, 17, 247})
		})
	}
}
