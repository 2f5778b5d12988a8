package modbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// The four goburrow/modbus v0.1.0 defects of DESIGN.md. Each test runs the
// same scenario twice against the simulator: with bare goburrow, where it
// asserts the defect is there (if an upgrade fixes it, the test says so),
// and through Conn, where it asserts the defect cannot persist.

// TestDefectLateReplyDesync is defect (a): after one late reply goburrow
// reads every later reply one request behind.
func TestDefectLateReplyDesync(t *testing.T) {
	const late = time.Second
	setup := func(t *testing.T) string {
		s := newSim(t, simulator.Config{})
		u := addUnit(t, s, 1)
		// The first read of register 10 is answered after `late`.
		if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultDelay, Delay: late, Function: 3, Address: 10, Count: 1, Times: 1}); err != nil {
			t.Fatal(err)
		}
		return s.Addr().String()
	}
	addrs := []int{20, 30, 40, 50, 60}

	t.Run("goburrow", func(t *testing.T) {
		c, h := bareClient(t, setup(t), 1)
		h.Timeout = late / 5
		if _, err := c.ReadHoldingRegisters(10, 1); err == nil {
			t.Fatal("the late read succeeded; want a timeout")
		}
		h.Timeout = testTimeout
		for _, a := range addrs {
			got, err := c.ReadHoldingRegisters(uint16(a), 1)
			if err == nil {
				t.Fatalf("read %d after the late reply: % x, no error: defect (a) seems fixed in goburrow; update DESIGN.md and this test", a, got)
			}
			if !strings.Contains(err.Error(), "transaction id") {
				t.Fatalf("read %d: %v, want goburrow's transaction id mismatch", a, err)
			}
		}
		t.Logf("defect (a) reproduced: %d reads after one late reply all failed with a transaction id mismatch", len(addrs))
	})

	t.Run("conn", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: setup(t)})
		ctx, cancel := context.WithTimeout(readCtx(t), late/5)
		_, err := c.Read(ctx, 1, devices.HoldingRegisters, 10, 1)
		cancel()
		if err == nil {
			t.Fatal("the late read succeeded; want a timeout")
		}
		for _, a := range addrs {
			got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, uint16(a), 1)
			if err != nil || !bytes.Equal(got, wantRegs(1, a, 1)) {
				t.Fatalf("read %d after the late reply: % x, %v; want % x", a, got, err, wantRegs(1, a, 1))
			}
		}
	})
}

// TestDefectShortReply is defect (b): goburrow accepts a reply one register
// (or one byte of bits) short.
func TestDefectShortReply(t *testing.T) {
	setup := func(t *testing.T) string {
		s := newSim(t, simulator.Config{})
		u := addUnit(t, s, 1)
		if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultShortReply, Times: 2}); err != nil {
			t.Fatal(err)
		}
		return s.Addr().String()
	}

	t.Run("goburrow", func(t *testing.T) {
		c, _ := bareClient(t, setup(t), 1)
		got, err := c.ReadHoldingRegisters(0, 10)
		if err != nil {
			t.Fatalf("goburrow rejected the short reply (%v): defect (b) seems fixed; update DESIGN.md and this test", err)
		}
		if len(got) != 18 {
			t.Fatalf("got %d bytes, want the 18 of the short reply", len(got))
		}
		bits, err := c.ReadCoils(0, 10)
		if err != nil || len(bits) != 1 {
			t.Fatalf("coils: % x, %v; want the 1 byte of the short reply accepted", bits, err)
		}
		t.Log("defect (b) reproduced: 9 of 10 registers and 1 of 2 coil bytes accepted without error")
	})

	t.Run("conn", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: setup(t)})
		_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 10)
		var le *LengthError
		if !errors.As(err, &le) || !errors.Is(err, ErrReplyLength) {
			t.Fatalf("short register reply: %v, want a *LengthError", err)
		}
		if want := (LengthError{Unit: 1, Function: 3, Address: 0, Quantity: 10, Count: 18, Got: 18, Want: 20}); *le != want {
			t.Errorf("got %+v, want %+v", *le, want)
		}
		_, err = c.Read(readCtx(t), 1, devices.Coils, 0, 10)
		if !errors.As(err, &le) || le.Got != 1 || le.Want != 2 || le.Function != 1 {
			t.Fatalf("short coil reply: %v, want a *LengthError of 1 byte for 2", err)
		}
		for _, want := range []string{"unit 1", "function 1", "address 0", "quantity 10", "carries 1", "want 2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 10)
		if err != nil || !bytes.Equal(got, wantRegs(1, 0, 10)) {
			t.Fatalf("read after the short replies: % x, %v", got, err)
		}
	})
}

// TestDefectNoReconnect is defect (c): after the server drops the
// connection, goburrow keeps writing to the dead socket.
func TestDefectNoReconnect(t *testing.T) {
	setup := func(t *testing.T) *simulator.Server {
		s := newSim(t, simulator.Config{})
		addUnit(t, s, 1)
		// The second request drops the connection.
		if err := s.SetFaults(simulator.Fault{Kind: simulator.FaultDrop, Every: 2, Times: 1}); err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("goburrow", func(t *testing.T) {
		s := setup(t)
		c, _ := bareClient(t, s.Addr().String(), 1)
		if _, err := c.ReadHoldingRegisters(0, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadHoldingRegisters(0, 1); err == nil {
			t.Fatal("the dropped read succeeded")
		}
		for i := range 3 {
			if got, err := c.ReadHoldingRegisters(0, 1); err == nil {
				t.Fatalf("read %d after the drop: % x, no error: defect (c) seems fixed in goburrow; update DESIGN.md and this test", i, got)
			}
		}
		if n := s.Stats().Connections; n != 1 {
			t.Fatalf("goburrow opened %d connections, want 1 (no reconnect)", n)
		}
		t.Log("defect (c) reproduced: 3 reads after the drop failed on the dead connection")
	})

	t.Run("conn", func(t *testing.T) {
		s := setup(t)
		c := newConn(t, ConnConfig{Address: s.Addr().String()})
		if _, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); err != nil {
			t.Fatal(err)
		}
		_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1)
		if !errors.Is(err, ErrTransport) {
			t.Fatalf("dropped read: %v, want ErrTransport", err)
		}
		for i := range 3 {
			if got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, uint16(i), 1); err != nil || !bytes.Equal(got, wantRegs(1, i, 1)) {
				t.Fatalf("read %d after the drop: % x, %v", i, got, err)
			}
		}
		if n := s.Stats().Connections; n != 2 {
			t.Errorf("server saw %d connections, want 2", n)
		}
		if st := c.Stats(); st.Reconnects != 1 || st.Disconnects != 1 || st.Errors[KindTransport] != 1 {
			t.Errorf("stats %+v, want 1 reconnect, 1 disconnect, 1 transport error", st)
		}
	})
}

// TestDefectUnitRace is defect (d): goburrow's unit id is handler state, so
// concurrent reads of different units through one handler go to the wrong
// unit. Every unit holds different registers, so a read answered by the
// wrong unit shows in the data.
func TestDefectUnitRace(t *testing.T) {
	const units = 8
	setup := func(t *testing.T) string {
		s := newSim(t, simulator.Config{})
		for u := uint8(1); u <= units; u++ {
			addUnit(t, s, u)
		}
		return s.Addr().String()
	}

	t.Run("goburrow", func(t *testing.T) {
		// Two pollers share one handler, as goburrow's API invites. The
		// interleaving is forced with channels (so the race detector sees
		// no race); any scheduler may produce it: A sets unit 1, B sets
		// unit 2, A reads.
		c, h := bareClient(t, setup(t), 1)
		aSet, bSet := make(chan struct{}), make(chan struct{})
		var got []byte
		var err error
		var wg sync.WaitGroup
		wg.Go(func() {
			h.SlaveId = 1
			close(aSet)
			<-bSet
			got, err = c.ReadHoldingRegisters(10, 2)
		})
		wg.Go(func() {
			<-aSet
			h.SlaveId = 2
			close(bSet)
		})
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, wantRegs(1, 10, 2)) {
			t.Fatal("A read unit 1's registers: defect (d) seems fixed in goburrow; update DESIGN.md and this test")
		}
		if !bytes.Equal(got, wantRegs(2, 10, 2)) {
			t.Fatalf("A got % x, want unit 2's registers % x", got, wantRegs(2, 10, 2))
		}
		t.Log("defect (d) reproduced: a read for unit 1 returned unit 2's registers")
	})

	t.Run("conn", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: setup(t)})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 100 {
					u := uint8(1 + rng.IntN(units))
					a, n := rng.IntN(150), 1+rng.IntN(40)
					got, err := c.Read(readCtx(t), u, devices.HoldingRegisters, uint16(a), uint16(n))
					if err == nil && !bytes.Equal(got, wantRegs(u, a, n)) {
						err = fmt.Errorf("unit %d registers %d+%d: got another unit's data % x", u, a, n, got[:4])
					}
					if err != nil {
						errs <- err
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
	})
}

// TestConnExceptions: exception replies are per-request errors that never
// close the connection; busy (6) is retried BusyTries times.
func TestConnExceptions(t *testing.T) {
	s := newSim(t, simulator.Config{})
	u := addUnit(t, s, 1)
	c := newConn(t, ConnConfig{Address: s.Addr().String(), BusyTries: 3, BusyBackoff: time.Millisecond})

	exception := func(t *testing.T, err error, code devices.Exception) *ExceptionError {
		t.Helper()
		var ee *ExceptionError
		if !errors.As(err, &ee) || ee.Code != code {
			t.Fatalf("got %v, want exception %d", err, code)
		}
		return ee
	}
	requests := func() uint64 { return s.Stats().Requests[3] }

	t.Run("illegal data address", func(t *testing.T) {
		_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 190, 20)
		ee := exception(t, err, devices.ExceptionIllegalDataAddress)
		if ee.Unit != 1 || ee.Function != 3 || ee.UnitDown() || KindOf(err) != KindException {
			t.Errorf("got %+v", ee)
		}
		if !strings.Contains(err.Error(), "illegal data address") {
			t.Errorf("message %q does not name the exception", err)
		}
	})
	t.Run("busy twice then served", func(t *testing.T) {
		if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 2}); err != nil {
			t.Fatal(err)
		}
		before, retries := requests(), c.Stats().BusyRetries
		got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 5, 2)
		if err != nil || !bytes.Equal(got, wantRegs(1, 5, 2)) {
			t.Fatalf("got % x, %v", got, err)
		}
		if n := requests() - before; n != 3 {
			t.Errorf("sent %d requests, want 3 (2 busy + 1 served)", n)
		}
		if n := c.Stats().BusyRetries - retries; n != 2 {
			t.Errorf("%d busy retries, want 2", n)
		}
	})
	t.Run("busy forever", func(t *testing.T) {
		if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultException, Exception: devices.ExceptionServerDeviceBusy}); err != nil {
			t.Fatal(err)
		}
		defer u.ClearFaults()
		before := requests()
		_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 5, 2)
		exception(t, err, devices.ExceptionServerDeviceBusy)
		if n := requests() - before; n != 3 {
			t.Errorf("sent %d requests, want BusyTries = 3", n)
		}
	})
	t.Run("gateway target failed", func(t *testing.T) {
		_, err := c.Read(readCtx(t), 9, devices.HoldingRegisters, 0, 1) // no unit 9
		if ee := exception(t, err, devices.ExceptionGatewayTargetFailedToRespond); !ee.UnitDown() {
			t.Errorf("UnitDown() false for %v", ee)
		}
	})
	t.Run("no reconnect", func(t *testing.T) {
		if got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 3); err != nil || !bytes.Equal(got, wantRegs(1, 0, 3)) {
			t.Fatalf("got % x, %v", got, err)
		}
		if n := s.Stats().Connections; n != 1 {
			t.Errorf("%d connections after exceptions, want 1", n)
		}
		st := c.Stats()
		if st.Disconnects != 0 || st.Exceptions[devices.ExceptionServerDeviceBusy] != 5 || st.Exceptions[devices.ExceptionIllegalDataAddress] != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestConnFaults: every transport or framing fault closes the connection,
// and the next read is served on a new one.
func TestConnFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault simulator.Fault
		kind  ErrorKind
		want  error
	}{
		{"no reply", simulator.Fault{Kind: simulator.FaultNoReply}, KindTimeout, ErrTimeout},
		{"wrong transaction id", simulator.Fault{Kind: simulator.FaultWrongTransactionID}, KindFraming, ErrFraming},
		{"drop", simulator.Fault{Kind: simulator.FaultDrop}, KindTransport, ErrTransport},
		{"short", simulator.Fault{Kind: simulator.FaultShortReply}, KindLength, ErrReplyLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, simulator.Config{})
			u := addUnit(t, s, 1)
			timeout := testTimeout
			if tc.kind == KindTimeout {
				timeout = 200 * time.Millisecond // the request is never answered
			}
			c := newConn(t, ConnConfig{Address: s.Addr().String(), Timeout: timeout})
			if _, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); err != nil {
				t.Fatal(err)
			}
			tc.fault.Times = 1
			if err := u.SetFaults(tc.fault); err != nil {
				t.Fatal(err)
			}
			_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 4)
			if !errors.Is(err, tc.want) || KindOf(err) != tc.kind {
				t.Fatalf("got %v (kind %v), want %v", err, KindOf(err), tc.want)
			}
			if tc.kind != KindLength && !strings.Contains(err.Error(), "unit 1, function 3") {
				t.Errorf("message %q does not name unit and function", err)
			}
			got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 7, 4)
			if err != nil || !bytes.Equal(got, wantRegs(1, 7, 4)) {
				t.Fatalf("next read: % x, %v", got, err)
			}
			if n := s.Stats().Connections; n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// TestConnReconnectBackoff: failed connects start a wait during which reads
// fail at once; the Conn connects once the server is back.
func TestConnReconnectBackoff(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		c := newConn(t, ConnConfig{Address: closedAddr(t), ReconnectMin: time.Hour, ReconnectMax: time.Hour})
		_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1)
		if !errors.Is(err, ErrConnect) {
			t.Fatalf("first read: %v, want ErrConnect", err)
		}
		for range 3 {
			_, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1)
			if !errors.Is(err, ErrBackoff) || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("read during the wait: %v, want ErrBackoff naming the connect error", err)
			}
		}
		if st := c.Stats(); st.ConnectFailures != 1 || st.Errors[KindBackoff] != 3 {
			t.Errorf("stats %+v, want 1 connect failure, 3 backoff errors", st)
		}
	})

	t.Run("accept and close", func(t *testing.T) {
		// A server that accepts and closes at once: each connection breaks
		// before its first reply, so the Conn backs off instead of
		// redialling in a loop.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				nc.Close()
			}
		}()
		c := newConn(t, ConnConfig{Address: ln.Addr().String(), ReconnectMin: time.Hour, ReconnectMax: time.Hour})
		_, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1)
		if !errors.Is(err, ErrTransport) {
			t.Fatalf("first read: %v, want ErrTransport", err)
		}
		if _, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); !errors.Is(err, ErrBackoff) {
			t.Fatalf("second read: %v, want ErrBackoff", err)
		}
	})

	t.Run("server comes back", func(t *testing.T) {
		addr := closedAddr(t)
		c := newConn(t, ConnConfig{Address: addr, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 40 * time.Millisecond})
		for range 3 {
			if _, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); err == nil {
				t.Fatal("read without a server succeeded")
			}
		}
		s := newSim(t, simulator.Config{Listen: addr})
		addUnit(t, s, 1)
		var got []byte
		eventually(t, "a read after the server came back", func() bool {
			var err error
			got, err = c.Read(readCtx(t), 1, devices.HoldingRegisters, 3, 1)
			return err == nil
		})
		if !bytes.Equal(got, wantRegs(1, 3, 1)) {
			t.Fatalf("got % x", got)
		}
	})
}

// TestConnContext: a read honours its context and a closed Conn.
func TestConnContext(t *testing.T) {
	s := newSim(t, simulator.Config{})
	u := addUnit(t, s, 1)
	c := newConn(t, ConnConfig{Address: s.Addr().String()})

	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		before := s.Stats().Requests[3]
		_, err := c.Read(ctx, 1, devices.HoldingRegisters, 0, 1)
		if !errors.Is(err, context.Canceled) || KindOf(err) != KindCanceled {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if s.Stats().Requests[3] != before {
			t.Error("a canceled read was sent")
		}
	})
	t.Run("deadline shortens the timeout", func(t *testing.T) {
		if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultNoReply, Times: 1}); err != nil {
			t.Fatal(err)
		}
		// A Conn whose own timeout outlasts the test: only the ctx's
		// 100ms deadline can end the unanswered request.
		slow := newConn(t, ConnConfig{Address: s.Addr().String(), Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := slow.Read(ctx, 1, devices.HoldingRegisters, 0, 1)
			done <- err
		}()
		select {
		case err := <-done:
			if KindOf(err) != KindTimeout {
				t.Fatalf("unanswered read: %v, want a timeout", err)
			}
		case <-time.After(20 * time.Second): // the package's generous bound, not a speed
			t.Fatal("the ctx deadline did not end the request on the wire (the Conn's timeout is 1m)")
		}
		// Ended on the wire too, so the next read does not wait behind it.
		if got, err := slow.Read(readCtx(t), 1, devices.HoldingRegisters, 2, 1); err != nil || !bytes.Equal(got, wantRegs(1, 2, 1)) {
			t.Fatalf("next read: % x, %v", got, err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, r := range []readRequest{
			{unit: 1, table: 0, quantity: 1},
			{unit: 1, table: devices.HoldingRegisters, quantity: 0},
			{unit: 1, table: devices.HoldingRegisters, quantity: 126},
			{unit: 1, table: devices.Coils, quantity: 2001},
			{unit: 1, table: devices.InputRegisters, address: 65530, quantity: 7},
		} {
			if _, err := c.Read(readCtx(t), r.unit, r.table, r.address, r.quantity); !errors.Is(err, ErrInvalidRead) {
				t.Errorf("%+v: got %v, want ErrInvalidRead", r, err)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		c2 := newConn(t, ConnConfig{Address: s.Addr().String()})
		if _, err := c2.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); err != nil {
			t.Fatal(err)
		}
		if err := c2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c2.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := c2.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1); !errors.Is(err, ErrClosed) || KindOf(err) != KindClosed {
			t.Fatalf("read after Close: %v, want ErrClosed", err)
		}
	})
}

// TestConnObserver: the Observer sees every request and connect.
func TestConnObserver(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 1)
	obs := &recordingObserver{}
	c := newConn(t, ConnConfig{Name: "line-1", Address: s.Addr().String()}, WithObserver(obs))
	c.Read(readCtx(t), 1, devices.HoldingRegisters, 0, 1)
	c.Read(readCtx(t), 1, devices.HoldingRegisters, 500, 1)
	c.Read(readCtx(t), 1, devices.Coils, 0, 9)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"connect line-1 <nil>", "request line-1 1 3 none", "request line-1 1 3 exception", "request line-1 1 1 none"}
	if fmt.Sprint(obs.events) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", obs.events, want)
	}
}

type recordingObserver struct {
	mu     sync.Mutex
	events []string
}

func (o *recordingObserver) ObserveRequest(conn string, unit, fn uint8, rtt time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if rtt <= 0 {
		o.events = append(o.events, "request without round trip")
	}
	o.events = append(o.events, fmt.Sprintf("request %s %d %d %v", conn, unit, fn, KindOf(err)))
}

func (o *recordingObserver) ObserveConnect(conn string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, fmt.Sprintf("connect %s %v", conn, err))
}
