package simulator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goburrow/modbus"
)

// ioTimeout bounds every socket operation of a test, so that a server that
// fails to answer makes the test fail instead of hang.
const ioTimeout = 10 * time.Second

// newServer starts a server on a loopback port and closes it when the test
// ends.
func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// addUnit adds a unit or fails the test.
func addUnit(t testing.TB, s *Server, id uint8, sizes Sizes) *Unit {
	t.Helper()
	u, err := s.AddUnit(id, sizes)
	if err != nil {
		t.Fatalf("AddUnit(%d): %v", id, err)
	}
	return u
}

// sizes100 gives every table 100 addresses.
var sizes100 = Sizes{Coils: 100, DiscreteInputs: 100, HoldingRegisters: 100, InputRegisters: 100}

// newClient returns a goburrow client for one unit of s, closed when the
// test ends.
func newClient(t testing.TB, s *Server, unit uint8) (modbus.Client, *modbus.TCPClientHandler) {
	t.Helper()
	h := modbus.NewTCPClientHandler(s.Addr().String())
	h.SlaveId = unit
	h.Timeout = ioTimeout
	if err := h.Connect(); err != nil {
		t.Fatalf("connect to %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h), h
}

// rawClient speaks Modbus TCP byte by byte, to check exactly what the
// server sends.
type rawClient struct {
	t  testing.TB
	nc net.Conn
}

func dialRaw(t testing.TB, s *Server) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	if err := nc.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc}
}

// with returns the client reporting failures to t: a subtest must not
// fail its parent.
func (c *rawClient) with(t testing.TB) *rawClient { return &rawClient{t: t, nc: c.nc} }

// send writes the frames in one write, so the server sees them pipelined.
func (c *rawClient) send(frames ...[]byte) {
	c.t.Helper()
	if _, err := c.nc.Write(bytes.Join(frames, nil)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one ADU.
func (c *rawClient) recv() []byte {
	c.t.Helper()
	b, err := c.tryRecv()
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return b
}

func (c *rawClient) tryRecv() ([]byte, error) {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(c.nc, h); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	if n < 1 {
		return nil, errors.New("MBAP length 0 in reply")
	}
	b := make([]byte, 6+n)
	copy(b, h)
	_, err := io.ReadFull(c.nc, b[headerLen:])
	return b, err
}

// expect reads one ADU and compares it with want.
func (c *rawClient) expect(want []byte) {
	c.t.Helper()
	if got := c.recv(); !bytes.Equal(got, want) {
		c.t.Fatalf("reply\n got % x\nwant % x", got, want)
	}
}

// expectClosed checks that the server closed the connection without
// sending anything more.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	if err := c.closed(); err != nil {
		c.t.Fatal(err)
	}
}

// closed reads until the server closes the connection and returns an
// error if anything arrived first. A reset counts as closed: a socket
// closed with unread input sends RST instead of FIN.
func (c *rawClient) closed() error {
	b, err := io.ReadAll(c.nc)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("reading until the server closes: %v (got % x)", err, b)
	}
	if len(b) > 0 {
		return fmt.Errorf("got % x before the server closed the connection, want nothing", b)
	}
	return nil
}

// adu builds a request or reply ADU with protocol id 0.
func adu(txid uint16, unit uint8, pdu ...byte) []byte {
	return appendFrame(nil, txid, unit, pdu)
}

// req builds the PDU of a request made of a function code and 16-bit
// fields (address, quantity or value).
func req(fc uint8, fields ...uint16) []byte {
	b := []byte{fc}
	for _, f := range fields {
		b = binary.BigEndian.AppendUint16(b, f)
	}
	return b
}

// logBuffer collects slog output from the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond every few milliseconds for up to ioTimeout: for
// state the server updates after the reply a test waited for (a counter
// incremented as a connection closes). It bounds the wait, never asserts
// on its length.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
