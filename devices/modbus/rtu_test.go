package modbus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/peers"
)

// RTU tests: a fake RTU device (Go, below) on one end of a socat
// pseudo-terminal pair, the client on the other.

// rtuRequest is a read request as the fake device received it.
type rtuRequest struct {
	n        int // 1 for the first request
	unit, fc uint8
	addr     int
	qty      int
}

// rtuAction is how the fake device answers one request.
type rtuAction struct {
	delay     time.Duration // wait before answering
	none      bool          // do not answer
	short     bool          // one register short, byte count consistent
	exception uint8         // answer this exception code, written in two pieces
	unit      uint8         // answer as this unit instead
}

// startFakeRTU serves reads of holding registers (regValue) on the pty at
// path until the test ends; act decides each answer.
func startFakeRTU(t *testing.T, path string, act func(rtuRequest) rtuAction) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		f.Close() // ends the blocked read
		<-done
	})
	go func() {
		defer close(done)
		var req [8]byte
		for n := 1; ; n++ {
			if _, err := io.ReadFull(f, req[:]); err != nil {
				return
			}
			if crc16(req[:6]) != binary.LittleEndian.Uint16(req[6:]) {
				continue
			}
			r := rtuRequest{n: n, unit: req[0], fc: req[1], addr: int(binary.BigEndian.Uint16(req[2:])), qty: int(binary.BigEndian.Uint16(req[4:]))}
			a := act(r)
			if a.delay > 0 {
				time.Sleep(a.delay)
			}
			if a.none {
				continue
			}
			unit := r.unit
			if a.unit != 0 {
				unit = a.unit
			}
			if a.exception != 0 {
				frame := rtuFrame(unit, r.fc|0x80, []byte{a.exception})
				f.Write(frame[:2])
				time.Sleep(5 * time.Millisecond)
				f.Write(frame[2:])
				continue
			}
			qty := r.qty
			if a.short {
				qty--
			}
			pdu := []byte{byte(2 * qty)}
			pdu = append(pdu, wantRegs(r.unit, r.addr, qty)...)
			f.Write(rtuFrame(unit, r.fc, pdu))
		}
	}()
}

func rtuFrame(unit, fc uint8, data []byte) []byte {
	b := append([]byte{unit, fc}, data...)
	return binary.LittleEndian.AppendUint16(b, crc16(b))
}

// crc16 is the Modbus RTU CRC.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// ptyPair returns the two ends of a socat pseudo-terminal pair.
func ptyPair(t *testing.T) (client, device string) {
	t.Helper()
	socat := peers.Program(t, "socat", "install it with: apt-get install socat")
	dir := t.TempDir()
	client, device = filepath.Join(dir, "client"), filepath.Join(dir, "device")
	startSocat(t, socat, client, device)
	return client, device
}

func rtuConn(t *testing.T, path string, timeout time.Duration) *Conn {
	return newConn(t, ConnConfig{Transport: RTU, Address: path, BaudRate: 115200, Timeout: timeout})
}

// TestDefectLateReplyRTU is defect (a) on a serial line, where it is worse:
// an RTU reply has no transaction id, so goburrow takes the late reply as
// the answer to the next request of the same unit and function and
// returns another address's registers without error.
func TestDefectLateReplyRTU(t *testing.T) {
	const timeout = 300 * time.Millisecond
	// A slow device: 50ms per answer, and the first one after twice the
	// client's timeout.
	lateFirst := func(r rtuRequest) rtuAction {
		if r.n == 1 {
			return rtuAction{delay: 2 * timeout}
		}
		return rtuAction{delay: 50 * time.Millisecond}
	}

	t.Run("goburrow", func(t *testing.T) {
		client, device := ptyPair(t)
		startFakeRTU(t, device, lateFirst)
		h := gmodbus.NewRTUClientHandler(client)
		h.BaudRate, h.Timeout, h.SlaveId = 115200, timeout, 1
		t.Cleanup(func() { h.Close() })
		c := gmodbus.NewClient(h)
		if _, err := c.ReadHoldingRegisters(10, 2); err == nil {
			t.Fatal("the late read succeeded")
		}
		wrong := 0
		for _, a := range []int{20, 30, 40} {
			got, err := c.ReadHoldingRegisters(uint16(a), 2)
			t.Logf("read %d: % x, %v", a, got, err)
			if err == nil && !bytes.Equal(got, wantRegs(1, a, 2)) {
				wrong++
			}
		}
		if wrong == 0 {
			t.Fatal("every read after the late reply got its own registers: defect (a) on RTU seems fixed in goburrow; update this test")
		}
		t.Logf("defect (a) reproduced on RTU: %d of 3 reads after a late reply returned another address's registers without error", wrong)
	})

	t.Run("conn", func(t *testing.T) {
		client, device := ptyPair(t)
		startFakeRTU(t, device, lateFirst)
		c := rtuConn(t, client, timeout)
		if _, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 10, 2); !errors.Is(err, ErrTimeout) {
			t.Fatalf("late read: %v, want ErrTimeout", err)
		}
		for _, a := range []int{20, 30, 40} {
			got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, uint16(a), 2)
			if err != nil || !bytes.Equal(got, wantRegs(1, a, 2)) {
				t.Fatalf("read %d after the late reply: % x, %v; want % x", a, got, err, wantRegs(1, a, 2))
			}
		}
	})
}

// TestRTUFaults: Conn's RTU transport rejects short replies, frames
// exceptions arriving in pieces, rejects replies from another unit, and
// recovers from each.
func TestRTUFaults(t *testing.T) {
	client, device := ptyPair(t)
	var mu sync.Mutex
	var next rtuAction
	startFakeRTU(t, device, func(r rtuRequest) rtuAction {
		mu.Lock()
		defer mu.Unlock()
		a := next
		next = rtuAction{}
		return a
	})
	c := rtuConn(t, client, 300*time.Millisecond)
	for _, tc := range []struct {
		name   string
		action rtuAction
		kind   ErrorKind
	}{
		{"short", rtuAction{short: true}, KindLength},
		{"exception in pieces", rtuAction{exception: 2}, KindException},
		{"another unit", rtuAction{unit: 7}, KindFraming},
		{"no reply", rtuAction{none: true}, KindTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			next = tc.action
			mu.Unlock()
			_, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 5, 10)
			if KindOf(err) != tc.kind {
				t.Fatalf("got %v (kind %v), want kind %v", err, KindOf(err), tc.kind)
			}
			var ee *ExceptionError
			if tc.kind == KindException && (!errors.As(err, &ee) || ee.Code != devices.ExceptionIllegalDataAddress) {
				t.Fatalf("got %v, want exception 2", err)
			}
			got, err := c.Read(readCtx(t), 1, devices.HoldingRegisters, 50, 3)
			if err != nil || !bytes.Equal(got, wantRegs(1, 50, 3)) {
				t.Fatalf("next read: % x, %v", got, err)
			}
		})
	}
	t.Run("units from many goroutines", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				u := uint8(1 + g%4)
				for i := range 10 {
					got, err := c.Read(readCtx(t), u, devices.HoldingRegisters, uint16(i), 4)
					if err != nil || !bytes.Equal(got, wantRegs(u, i, 4)) {
						t.Errorf("unit %d address %d: % x, %v", u, i, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
